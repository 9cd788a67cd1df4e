"""The remote cache over the Remote Execution API, against the real buildbox-casd (tests/reapi_server.py).

Two checkouts share results through casd; the failures a cache meets (server down, killed mid-run, a connection cut
mid-transfer, a blob that does not match its digest, an entry naming blobs the server lacks) each end in a correct
local build, at most one warning line, and nothing half-written in dist/ or the local store.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from conftest import polybuild_env, run_polybuild, write_tree
from reapi_server import Casd
from servers import free_port
from test_cache import statuses

pytest.importorskip("grpc", reason="the REAPI client needs polybuild[remote] (grpcio, protobuf)")

# A file larger than a batch (4 MiB when the server states no limit) goes through ByteStream both ways.
BIG = 5 * 1024 * 1024 + 17
GEN = ("import os, pathlib, signal\n"
       "pid = os.environ.get('KILL_CASD')\n"
       "pid and os.kill(int(pid), signal.SIGKILL)\n"
       "pathlib.Path('gen.txt').write_text('generated\\n')\n"
       f"pathlib.Path('big.bin').write_bytes(bytes(range(256)) * ({BIG} // 256) + b'x' * ({BIG} % 256))\n")
WS = {
    "polybuild.toml": "version = '1.0.0'\n\n"
                      f"[tasks.gen]\ncmd = {json.dumps([sys.executable, '-c', GEN])}\ninputs = ['main.go']\n"
                      "outputs = ['gen.txt', 'big.bin']\nkinds = ['go']\n\n"
                      "[targets.tool]\ninputs = ['*.go', 'go.mod']\n",
    "tool/go.mod": "module example.com/tool\n\ngo 1.22\n",
    "tool/main.go": 'package main\n\nfunc main() { println("tool") }\n',
}


@pytest.fixture
def casd(tmp_path: Path):
    server = Casd(tmp_path / "casd")
    yield server
    server.stop()


def checkout(tmp_path: Path, name: str) -> Path:
    return write_tree(tmp_path / name, WS)


def polybuild(root: Path, *args: str, cache: Path, ok: bool = True, **env: str):
    proc = run_polybuild(*args, cwd=root, env=polybuild_env(POLYBUILD_CACHE_DIR=str(cache), **env), timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def warnings(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if "warning:" in line]


def outputs(root: Path, only: str = "") -> dict[str, bytes]:
    """The build's and the gen task's outputs (`only`: those under that directory)."""
    files = [root / "dist" / "tool", root / "tool" / "gen.txt", root / "tool" / "big.bin"]
    return {str(f.relative_to(root)): f.read_bytes() for f in files if str(f.relative_to(root)).startswith(only)}


def store_is_sound(cache: Path) -> None:
    """Every blob in the local store is whole: its content hashes to its name; no temporary file is left."""
    for blob in (cache / "cas").rglob("*") if (cache / "cas").exists() else []:
        if blob.is_file():
            assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name, blob
    assert not list(cache.glob(".download-*"))


def build_and_upload(tmp_path: Path, url: str) -> dict[str, bytes]:
    """A first checkout builds and runs `gen`, uploading; its outputs."""
    first = checkout(tmp_path, "a")
    polybuild(first, "build", "--remote", url, "--remote-upload", cache=tmp_path / "cache-a")
    polybuild(first, "run", "gen", "--remote", url, "--remote-upload", cache=tmp_path / "cache-a")
    return outputs(first)


def test_generated_protos_are_current():
    """The committed message code is what tests/reapi_protos.py generates from the pinned protos."""
    pytest.importorskip("grpc_tools")
    import reapi_protos

    for name, text in reapi_protos.generate().items():
        assert (reapi_protos.OUTPUT / name).read_text() == text, f"{name} is stale: run python tests/reapi_protos.py"


def test_second_checkout_restores_everything_from_casd(tmp_path, casd):
    built = build_and_upload(tmp_path, casd.url)
    assert len(built["tool/big.bin"]) == BIG
    second = checkout(tmp_path, "b")
    restored = polybuild(second, "build", "--remote", casd.url, cache=tmp_path / "cache-b")
    ran = polybuild(second, "run", "gen", "--remote", casd.url, cache=tmp_path / "cache-b")
    assert set(statuses(restored).values()) == {"cached"}, restored.stderr
    assert set(statuses(ran).values()) == {"cached"}, ran.stderr
    assert outputs(second) == built  # byte for byte, the big file through ByteStream included
    assert (second / "dist" / "tool").stat().st_mode & 0o111
    assert not warnings(restored) and not warnings(ran)
    store_is_sound(tmp_path / "cache-b")


def test_action_digest_is_a_function_of_the_key_alone(tmp_path, casd):
    """The Action (and so the action-cache key) depends on polybuild's key only: no path, time or machine. With the
    round trip above (two checkouts in different directories sharing hits) this is what makes hits shared."""
    from polybuild.cache.reapi.action import COMMAND_NAME, action_for_key
    from polybuild.cache.reapi.protos import remote_execution_pb2 as re

    key = hashlib.sha256(b"a task key").hexdigest()
    keyed = action_for_key(key)
    assert keyed.digest == action_for_key(key).digest
    assert keyed.digest != action_for_key(hashlib.sha256(b"another").hexdigest()).digest
    blobs = {d.hash: data for d, data in keyed.blobs}
    action = re.Action.FromString(blobs[keyed.digest.hash])
    command = re.Command.FromString(blobs[action.command_digest.hash])
    assert list(command.arguments) == [COMMAND_NAME, key] and not command.environment_variables
    # what a build uploads is a complete Action: its blobs are in casd's CAS next to the action-cache entry
    build_and_upload(tmp_path, casd.url)
    assert [e for e in (casd.storage / "actioncache").rglob("*") if e.is_file()], "no action-cache entry"


def test_server_down_at_start_costs_one_warning(tmp_path):
    root = checkout(tmp_path, "a")
    url = f"grpc://127.0.0.1:{free_port()}"
    proc = polybuild(root, "build", "--remote", url, "--remote-upload", cache=tmp_path / "cache")
    assert set(statuses(proc).values()) == {"done"}
    assert len(warnings(proc)) == 1 and "unavailable" in warnings(proc)[0], proc.stderr


def test_server_killed_mid_run(tmp_path, casd):
    """The task kills casd while the build runs: later uploads fail once, quietly; the build succeeds."""
    root = checkout(tmp_path, "a")
    polybuild(root, "build", "--remote", casd.url, "--remote-upload", cache=tmp_path / "cache")
    proc = polybuild(root, "run", "gen", "--remote", casd.url, "--remote-upload", cache=tmp_path / "cache",
                     KILL_CASD=str(casd.proc.pid))
    assert casd.proc.wait(timeout=10) is not None
    assert statuses(proc) and set(statuses(proc).values()) == {"done"}
    assert len(warnings(proc)) == 1 and "unavailable" in warnings(proc)[0], proc.stderr
    store_is_sound(tmp_path / "cache")


def test_blob_not_matching_its_digest_is_ignored(tmp_path, casd):
    built = build_and_upload(tmp_path, casd.url)
    damaged = casd.blob_path(hashlib.sha256(built["tool/gen.txt"]).hexdigest())
    assert damaged.is_file()
    damaged.chmod(0o644)
    damaged.write_bytes(b"GENERATED\n")  # same name and size, other content: a bad disk or a hostile server
    second = checkout(tmp_path, "b")
    proc = polybuild(second, "run", "gen", "--remote", casd.url, cache=tmp_path / "cache-b")
    assert set(statuses(proc).values()) == {"done"}, proc.stderr  # built locally
    assert outputs(second, "tool/")["tool/gen.txt"] == b"generated\n"
    assert len(warnings(proc)) == 1 and "does not match its digest" in warnings(proc)[0], proc.stderr
    store_is_sound(tmp_path / "cache-b")


@pytest.mark.parametrize("loss", ["deleted", "truncated"])
def test_entry_naming_missing_blobs_is_a_miss(tmp_path, casd, loss):
    """casd answers an entry whose blob file is gone with NOT_FOUND (a plain miss); one whose blob file is cut short
    it still returns, then has no such blob to read (ByteStream): a miss with a warning."""
    built = build_and_upload(tmp_path, casd.url)
    blob = casd.blob_path(hashlib.sha256(built["tool/big.bin"]).hexdigest())
    if loss == "deleted":
        blob.unlink()
    else:
        blob.chmod(0o644)
        blob.write_bytes(built["tool/big.bin"][:1000])
    second = checkout(tmp_path, "b")
    proc = polybuild(second, "run", "gen", "--remote", casd.url, cache=tmp_path / "cache-b")
    assert set(statuses(proc).values()) == {"done"}, proc.stderr
    assert outputs(second, "tool/")["tool/big.bin"] == built["tool/big.bin"]
    expected = [] if loss == "deleted" else ["which the server does not have"]
    assert len(warnings(proc)) == len(expected), proc.stderr
    assert all(e in w for w, e in zip(warnings(proc), expected, strict=True)), proc.stderr
    store_is_sound(tmp_path / "cache-b")


class CutProxy:
    """A TCP relay to the real server that cuts every connection once `down` bytes came back from it, or `up`
    bytes went to it: the network (or the server) failing in the middle of a download or an upload."""

    def __init__(self, port: int, *, down: int | None = None, up: int | None = None) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"grpc://127.0.0.1:{self.listener.getsockname()[1]}"
        self.port, self.down, self.up = port, down, up
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.port))
            threading.Thread(target=self._pipe, args=(client, server, self.up), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, self.down), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, limit: int | None) -> None:
        moved = 0
        try:
            while data := src.recv(65536):
                moved += len(data)
                if limit is not None and moved > limit:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.listener.close()


def test_connection_cut_mid_download(tmp_path, casd):
    built = build_and_upload(tmp_path, casd.url)
    proxy = CutProxy(casd.port, down=2 * 1024 * 1024)  # inside the 5 MiB blob's ByteStream read
    try:
        second = checkout(tmp_path, "b")
        proc = polybuild(second, "run", "gen", "--remote", proxy.url, cache=tmp_path / "cache-b")
    finally:
        proxy.close()
    assert set(statuses(proc).values()) == {"done"}, proc.stderr
    assert outputs(second, "tool/")["tool/big.bin"] == built["tool/big.bin"]
    assert len(warnings(proc)) == 1, proc.stderr
    store_is_sound(tmp_path / "cache-b")


def test_connection_cut_mid_upload(tmp_path, casd):
    """The upload of the 5 MiB blob is cut: one warning, the build succeeds, and the server holds no entry naming
    what it lacks (a second checkout builds it again, correctly)."""
    first = checkout(tmp_path, "a")
    proxy = CutProxy(casd.port, up=2 * 1024 * 1024)
    try:
        proc = polybuild(first, "run", "gen", "--remote", proxy.url, "--remote-upload", cache=tmp_path / "cache-a")
    finally:
        proxy.close()
    assert set(statuses(proc).values()) == {"done"}, proc.stderr
    assert len(warnings(proc)) == 1 and "unavailable" in warnings(proc)[0], proc.stderr
    second = checkout(tmp_path, "b")
    again = polybuild(second, "run", "gen", "--remote", casd.url, cache=tmp_path / "cache-b")
    assert set(statuses(again).values()) == {"done"} and not warnings(again), again.stderr
    assert outputs(second, "tool/") == outputs(first, "tool/")


def test_bad_reapi_config_is_a_located_error(tmp_path):
    root = checkout(tmp_path, "a")
    (root / "polybuild.toml").write_text(WS["polybuild.toml"] + "\n[remote]\nurl = 'grpc://127.0.0.1:1'\n"
                                         "headers = { authorization = 'Bearer s3cret' }\n")
    proc = polybuild(root, "build", cache=tmp_path / "cache", ok=False)
    assert proc.returncode == 2, proc.stderr
    assert "polybuild.toml:14:" in proc.stderr and "env:NAME" in proc.stderr and "s3cret" not in proc.stderr, \
        proc.stderr
    (root / "polybuild.toml").write_text(WS["polybuild.toml"] + "\n[remote]\nurl = 'grpc://cache.internal'\n")
    proc = polybuild(root, "build", cache=tmp_path / "cache", ok=False)
    assert proc.returncode == 2 and "host and port" in proc.stderr, proc.stderr
    (root / "polybuild.toml").write_text(WS["polybuild.toml"] + "\n[remote]\nurl = 'grpc://127.0.0.1:1'\n"
                                         "execute = ['go-test']\n")
    proc = polybuild(root, "build", cache=tmp_path / "cache", ok=False)
    assert proc.returncode == 2 and "'go-test' tasks cannot run remotely" in proc.stderr, proc.stderr
    assert "polybuild.toml:14:" in proc.stderr and "can: go, command" in proc.stderr


class RecordingServer:
    """A gRPC server (grpcio's own) standing in for a REAPI server with other capabilities than casd's: it answers
    GetCapabilities with `caps`, first fails each method with the codes in `failures`, answers every other call
    with NOT_FOUND, and records the metadata of each call."""

    def __init__(self, caps: Any = None, failures: dict[str, list[Any]] | None = None) -> None:
        import grpc

        from polybuild.cache.reapi.protos import remote_execution_pb2 as re

        self.metadata: list[dict[str, str]] = []
        self.calls: list[str] = []
        sha256 = re.CacheCapabilities(digest_functions=[re.DigestFunction.SHA256])
        caps = caps or re.ServerCapabilities(cache_capabilities=sha256)
        self.pending = pending = {name: list(codes) for name, codes in (failures or {}).items()}

        def answer(method: str, context: grpc.ServicerContext) -> bytes:
            name = method.rsplit("/", 1)[-1]
            self.calls.append(name)
            self.metadata.append(dict(context.invocation_metadata()))
            if pending.get(name):
                context.abort(pending[name].pop(0), "injected")
            if name == "GetCapabilities":
                return caps.SerializeToString()
            context.abort(grpc.StatusCode.NOT_FOUND, "not here")

        class Handler(grpc.GenericRpcHandler):
            def service(self, details):
                return grpc.unary_unary_rpc_method_handler(lambda _, context: answer(details.method, context))

        from concurrent.futures import ThreadPoolExecutor

        self.server = grpc.server(ThreadPoolExecutor(max_workers=2), handlers=[Handler()])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.url = f"grpc://127.0.0.1:{self.port}"
        self.server.start()

    def stop(self) -> None:
        self.server.stop(None)


def test_unavailable_and_resource_exhausted_are_retried_with_backoff():
    import grpc

    from polybuild.cache.reapi.client import ReapiClient, ReapiUnavailable

    flaky = [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED]
    server = RecordingServer(failures={"GetCapabilities": flaky})
    try:
        client = ReapiClient(f"127.0.0.1:{server.port}", retries=2)
        assert client.capabilities().sha256  # third attempt
        assert server.calls == ["GetCapabilities"] * 3
        server.pending["GetCapabilities"] = [grpc.StatusCode.UNAVAILABLE]
        with pytest.raises(ReapiUnavailable, match="UNAVAILABLE"):
            ReapiClient(f"127.0.0.1:{server.port}", retries=0).capabilities()
        refused = RecordingServer(failures={"GetCapabilities": [grpc.StatusCode.PERMISSION_DENIED]})
        try:  # not retried: the same answer would come back
            with pytest.raises(ReapiUnavailable, match="PERMISSION_DENIED"):
                ReapiClient(f"127.0.0.1:{refused.port}", retries=2).capabilities()
            assert refused.calls == ["GetCapabilities"]
        finally:
            refused.stop()
    finally:
        server.stop()


def doctor(root: Path, **env: str):
    return run_polybuild("doctor", cwd=root, env=polybuild_env(**env))


def test_doctor_shows_the_servers_capabilities(tmp_path):
    server = Casd(tmp_path / "casd", execute=True)
    try:
        root = checkout(tmp_path, "a")
        proc = doctor(root, POLYBUILD_REMOTE_URL=server.url)
    finally:
        server.stop()
    line = next(line for line in proc.stdout.splitlines() if "remote cache" in line)
    assert line.split()[0] == "ok" and "digest functions" in line and "SHA256" in line and \
        "execution enabled" in line and "max batch size" in line, proc.stdout
    assert "Traceback" not in proc.stderr


def test_doctor_fails_when_the_server_lacks_what_config_asks(tmp_path):
    from polybuild.cache.reapi.protos import remote_execution_pb2 as re

    sha1_only = re.ServerCapabilities(cache_capabilities=re.CacheCapabilities(
        digest_functions=[re.DigestFunction.SHA1],
        action_cache_update_capabilities=re.ActionCacheUpdateCapabilities(update_enabled=False)))
    server = RecordingServer(caps=sha1_only)
    try:
        root = checkout(tmp_path, "a")
        (root / "polybuild.toml").write_text(WS["polybuild.toml"] + f"\n[remote]\nurl = '{server.url}'\n"
                                             "upload = true\n")
        proc = doctor(root)
    finally:
        server.stop()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "lacks SHA256 digests" in proc.stdout and "action-cache updates" in proc.stdout, proc.stdout
    assert "digest functions SHA1" in proc.stdout


def test_header_values_come_from_the_environment_and_are_never_shown(tmp_path):
    server = RecordingServer()
    try:
        root = checkout(tmp_path, "a")
        (root / "polybuild.toml").write_text(WS["polybuild.toml"] + f"\n[remote]\nurl = '{server.url}'\n"
                                             "headers = { authorization = 'env:REAPI_TOKEN', x-unset = 'env:NOPE' }\n")
        proc = polybuild(root, "build", cache=tmp_path / "cache", REAPI_TOKEN="Bearer very-secret-token")
    finally:
        server.stop()
    assert set(statuses(proc).values()) == {"done"} and not warnings(proc), proc.stderr
    assert server.metadata and all(m.get("authorization") == "Bearer very-secret-token" and "x-unset" not in m
                                   for m in server.metadata)
    assert "very-secret-token" not in proc.stderr + proc.stdout
    assert not [p for p in (root / ".polybuild").rglob("*") if p.is_file() and b"very-secret" in p.read_bytes()]


# -- remote execution -----------------------------------------------------------------------------------------------

REMOTE_GEN = ("import os, pathlib, sys\n"
              "print('stdout of the action')\n"
              "print('stderr of the action', file=sys.stderr)\n"
              "code = int(os.environ.get('EXIT', '0'))\n"
              "code and sys.exit(code)\n"
              "pathlib.Path('out').mkdir(exist_ok=True)\n"
              "pathlib.Path('out/gen.txt').write_text(pathlib.Path('main.go').read_text().upper())\n"
              "pathlib.Path('out/cwd.txt').write_text(os.path.basename(os.getcwd()))\n"
              "pathlib.Path('run.sh').write_text('#!/bin/sh\\necho hi\\n')\n"
              "os.chmod('run.sh', 0o755)\n")


def exec_checkout(tmp_path: Path, name: str, remote: str = "", exit_code: int = 0, prelude: str = "",
                  extra: str = "") -> Path:
    """A workspace whose `gen` task runs /usr/bin/python3 (in casd's sandbox too); `remote`: executed there."""
    config = ("version = '1.0.0'\n\n[targets.tool]\ninputs = ['*.go', 'go.mod']\n\n"
              f"[targets.tool.tasks.gen]\ncmd = {json.dumps(['/usr/bin/python3', '-c', prelude + REMOTE_GEN])}\n"
              f"inputs = ['main.go']\noutputs = ['out/*.txt', 'run.sh']\nenv = {{ EXIT = '{exit_code}' }}\n")
    if remote:
        config += (f"\n[remote]\nurl = '{remote}'\nexecute = ['command']\nplatform = {{ OSFamily = 'linux' }}\n"
                   + extra)
    return write_tree(tmp_path / name, {**WS, "polybuild.toml": config})


def gen_outputs(root: Path) -> dict[str, tuple[bytes, int]]:
    files = [root / "tool" / "out" / "gen.txt", root / "tool" / "out" / "cwd.txt", root / "tool" / "run.sh"]
    return {f.name: (f.read_bytes(), f.stat().st_mode & 0o777) for f in files}


@pytest.fixture(scope="module")
def casd_exec(tmp_path_factory):
    server = Casd(tmp_path_factory.mktemp("casd-exec"), execute=True)
    yield server
    server.stop()


def test_command_task_runs_on_the_remote_executor(tmp_path, casd_exec):
    """The same task run by casd's executor (buildbox-run in bubblewrap) and locally: identical outputs, the
    remote stdout and stderr in the task's log; nothing uploaded to the cache (no upload asked), yet casd holds the
    executed action's result."""
    remote, local = exec_checkout(tmp_path, "remote", casd_exec.url), exec_checkout(tmp_path, "local")
    before = {p for p in (casd_exec.storage / "actioncache").rglob("*") if p.is_file()}
    ran = polybuild(remote, "run", "gen", cache=tmp_path / "cache-remote")
    polybuild(local, "run", "gen", cache=tmp_path / "cache-local")
    assert set(statuses(ran).values()) == {"done"} and not warnings(ran), ran.stderr
    assert gen_outputs(remote) == gen_outputs(local)
    assert gen_outputs(remote)["gen.txt"][0] == WS["tool/main.go"].upper().encode()
    assert gen_outputs(remote)["run.sh"][1] & 0o111
    log = (remote / ".polybuild" / "logs").glob("*gen*.log")
    text = "".join(p.read_text() for p in log)
    assert "stdout of the action" in text and "stderr of the action" in text, text
    after = {p for p in (casd_exec.storage / "actioncache").rglob("*") if p.is_file()}
    assert after - before, "casd executed nothing"


def test_remote_command_failure_is_a_local_failure(tmp_path, casd_exec):
    root = exec_checkout(tmp_path, "remote", casd_exec.url, exit_code=3)
    proc = polybuild(root, "run", "gen", cache=tmp_path / "cache", ok=False)
    assert proc.returncode == 1, proc.stderr
    assert "exited with status 3" in proc.stderr and "stderr of the action" in proc.stderr, proc.stderr
    assert not (root / "tool" / "out").exists()


def test_server_without_execution_runs_the_task_locally_with_one_warning(tmp_path, casd):
    root = exec_checkout(tmp_path, "a", casd.url)
    proc = polybuild(root, "run", "gen", cache=tmp_path / "cache")
    assert set(statuses(proc).values()) == {"done"}, proc.stderr
    assert len(warnings(proc)) == 1 and "running the task locally" in warnings(proc)[0], proc.stderr
    assert gen_outputs(root)["cwd.txt"][0] == b"tool"


def test_doctor_fails_when_execution_is_asked_and_not_enabled(tmp_path, casd):
    root = exec_checkout(tmp_path, "a", casd.url)
    proc = doctor(root)
    assert proc.returncode == 1 and "lacks remote execution" in proc.stdout, proc.stdout


def test_remote_action_past_its_timeout_fails_the_task(tmp_path, casd_exec):
    root = exec_checkout(tmp_path, "remote", casd_exec.url, prelude="import time; time.sleep(30)\n",
                         extra="execute-timeout = 1\n")
    proc = polybuild(root, "run", "gen", cache=tmp_path / "cache", ok=False)
    assert proc.returncode == 1, proc.stderr
    assert "execute-timeout (1s)" in proc.stderr and "exited with status 124" in proc.stderr, proc.stderr
    assert not warnings(proc)


def kill_when_running_an_action(server: Casd, timeout: float = 60) -> None:
    """Kill casd once it has started buildbox-run (a child process) for an action."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end and server.proc.poll() is None:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == server.proc.pid:
                    server.kill()
                    return
            except (OSError, IndexError, ValueError):
                continue
        time.sleep(0.05)


def test_server_killed_mid_execution_runs_the_task_locally(tmp_path):
    server = Casd(tmp_path / "casd", execute=True)
    try:
        root = exec_checkout(tmp_path, "a", server.url, prelude="import time; time.sleep(3)\n")
        killer = threading.Thread(target=kill_when_running_an_action, args=(server,))
        killer.start()
        proc = polybuild(root, "run", "gen", cache=tmp_path / "cache")
        killer.join()
        killed = server.proc.poll()
    finally:
        server.stop()
    assert killed == -9, "casd was not killed while it ran the action"
    assert set(statuses(proc).values()) == {"done"}, proc.stderr
    assert len(warnings(proc)) == 1 and "running the task locally" in warnings(proc)[0], proc.stderr
    assert gen_outputs(root)["gen.txt"][0] == WS["tool/main.go"].upper().encode()


def test_grpc_url_without_grpc_installed_says_what_to_install(tmp_path):
    """polybuild without the [remote] extra: a grpc:// remote is a usage error naming the extra, not a traceback."""
    root = checkout(tmp_path, "a")
    hide_grpc = "import sys; sys.modules['grpc'] = None; from polybuild.cli.main import main; sys.exit(main())"
    proc = subprocess.run([sys.executable, "-c", hide_grpc, "build", "--remote", "grpc://127.0.0.1:1"], cwd=root,
                          env=polybuild_env(POLYBUILD_CACHE_DIR=str(tmp_path / "cache")), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "polybuild[remote]" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


SPAN = ("import pathlib, time\n"
        "start = time.time(); time.sleep(1.5)\n"
        "pathlib.Path('out').mkdir(exist_ok=True)\n"
        "pathlib.Path('out/span.txt').write_text(f'{start} {time.time()}')\n")


def spans(tmp_path: Path, url: str, name: str, *args: str) -> list[tuple[float, float]]:
    """Three remote tasks of 1.5 s each, run with `args`; when each ran (on the same clock: casd is local)."""
    argv = json.dumps(["/usr/bin/python3", "-c", SPAN])
    files = {"polybuild.toml": f"version = '1.0.0'\n\n[tasks.span]\ncmd = {argv}\ninputs = ['main.go']\n"
                               "outputs = ['out/*.txt']\nkinds = ['go']\n\n"
                               f"[remote]\nurl = '{url}'\nexecute = ['command']\n"}
    for i in range(3):
        files[f"m{i}/go.mod"] = f"module example.com/m{i}\n\ngo 1.22\n"
        # `name` in the input: another run's actions differ (casd would answer the same ones from its cache)
        files[f"m{i}/main.go"] = f"package main\n\nfunc main() {{ println({i}, \"{name}\") }}\n"
    root = write_tree(tmp_path / name, files)
    proc = polybuild(root, "run", "span", *args, cache=tmp_path / f"cache-{name}")
    assert set(statuses(proc).values()) == {"done"} and not warnings(proc), proc.stderr
    return sorted(tuple(map(float, (root / f"m{i}" / "out" / "span.txt").read_text().split())) for i in range(3))


def overlapping(runs: list[tuple[float, float]]) -> bool:
    return any(later[0] < earlier[1] for earlier, later in itertools.pairwise(runs))


def test_remote_jobs_run_more_remote_tasks_than_local_jobs(tmp_path, casd_exec):
    assert not overlapping(spans(tmp_path, casd_exec.url, "one", "-j", "1"))
    assert overlapping(spans(tmp_path, casd_exec.url, "more", "-j", "1", "--remote-jobs", "2"))


def test_remote_output_is_shown_live_like_local_output(tmp_path, casd_exec):
    """--output-logs full: the remote command's lines go to the terminal prefixed with its task, as a local one's."""
    root = exec_checkout(tmp_path, "remote", casd_exec.url)
    proc = polybuild(root, "run", "gen", "--output-logs", "full", cache=tmp_path / "cache")
    assert "go:tool:gen: stdout of the action" in proc.stderr.splitlines(), proc.stderr
    assert "go:tool:gen: stderr of the action" in proc.stderr.splitlines(), proc.stderr
