"""Fault injection into the caches: a hostile HTTP remote (path-traversal digests, malformed entries, trickling
answers, 500s) and damaged local stores (page-level damage to ac.sqlite, wrong-shaped rows and records, directories
for blobs, tampered manifests). Each ends in a correct build, nothing written or deleted outside the workspace and the
cache, and at most one warning line per fault.

The builds are cheap on purpose: a tiny Go binary (a blob in `cas/`) and a `command` task whose small output lives
inline in its manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import polybuild_env, run_polybuild, write_tree
from polybuild.cache import records as records_module
from polybuild.cache.store import open_manifest, seal_manifest
from servers import Nginx
from test_cache import statuses

GEN = "import pathlib; pathlib.Path('gen.txt').write_text('generated\\n')"
WS = {
    "polybuild.toml": "version = '1.0.0'\nenv-inputs = ['DEMO_SECRET']\n\n"
                      f"[tasks.gen]\ncmd = {json.dumps([sys.executable, '-c', GEN])}\ninputs = ['main.go']\n"
                      "outputs = ['gen.txt']\nkinds = ['go']\n\n[targets.tool]\ninputs = ['*.go', 'go.mod']\n",
    "tool/go.mod": "module example.com/tool\n\ngo 1.22\n",
    "tool/main.go": 'package main\n\nfunc main() { println("tool") }\n',
}
TOOL_OUTPUT = "tool"


def warnings(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if "warning:" in line]


def polybuild(root: Path, *args: str, cache: Path, timeout: float = 120,
              **env: str) -> subprocess.CompletedProcess[str]:
    """A build (or `run gen`) that must succeed without a traceback."""
    proc = run_polybuild(*(args or ("build",)), cwd=root, env=polybuild_env(POLYBUILD_CACHE_DIR=str(cache), **env),
                         timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def tool_runs(root: Path) -> bool:
    out = subprocess.run([str(root / "dist" / "tool")], capture_output=True, text=True)
    return out.returncode == 0 and out.stderr.strip() == TOOL_OUTPUT


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "ws", WS)


# -- the local store -----------------------------------------------------------------------------------------------


def entries(cache: Path) -> dict[str, tuple[str, dict]]:
    """task -> (key, manifest) of every entry in the action cache."""
    with contextlib.closing(sqlite3.connect(cache / "ac.sqlite")) as db:
        rows = db.execute("SELECT key, manifest FROM ac").fetchall()
    return {(m := open_manifest(data))["task"]: (key, m) for key, data in rows}


def put_row(cache: Path, key: str, value: object) -> None:
    with contextlib.closing(sqlite3.connect(cache / "ac.sqlite")) as db, db:
        db.execute("UPDATE ac SET manifest = ? WHERE key = ?", (value, key))


def rewrite_entry(cache: Path, task: str, edit, sealed: bool = True) -> None:
    """Change a task's manifest; `sealed`: as a writer knowing the format would (a valid digest), else in place
    (the stored digest kept)."""
    key, manifest = entries(cache)[task]
    edit(manifest)
    resealed = seal_manifest(manifest)
    if not sealed:
        with contextlib.closing(sqlite3.connect(cache / "ac.sqlite")) as db:
            stored = db.execute("SELECT manifest FROM ac WHERE key = ?", (key,)).fetchone()[0]
        resealed = stored[:65] + resealed[65:]
    put_row(cache, key, resealed)


def flip_byte_in_path(cache: Path, task: str, path: str) -> None:
    key = entries(cache)[task][0]
    with contextlib.closing(sqlite3.connect(cache / "ac.sqlite")) as db:
        data = db.execute("SELECT manifest FROM ac WHERE key = ?", (key,)).fetchone()[0]
    needle = f'"path": "{path}"'.encode()
    assert needle in data
    at = data.index(needle) + len(needle) - 2
    put_row(cache, key, data[:at] + bytes([data[at] ^ 0x04]) + data[at + 1:])


def built_once(ws: Path, cache: Path) -> None:
    polybuild(ws, cache=cache)
    polybuild(ws, "run", "gen", cache=cache)
    assert (ws / "tool" / "gen.txt").read_text() == "generated\n"


def rebuilt_correctly(ws: Path, cache: Path, max_warnings: int = 1) -> None:
    """After a fault: both builds succeed and are correct, with at most one warning; then the cache is healed."""
    (ws / "dist" / "tool").unlink(missing_ok=True)
    (ws / "tool" / "gen.txt").unlink(missing_ok=True)
    build = polybuild(ws, cache=cache)
    run = polybuild(ws, "run", "gen", cache=cache)
    assert len(warnings(build)) + len(warnings(run)) <= max_warnings, build.stderr + run.stderr
    assert tool_runs(ws)
    assert (ws / "tool" / "gen.txt").read_text() == "generated\n"
    healed_build, healed_run = polybuild(ws, cache=cache), polybuild(ws, "run", "gen", cache=cache)
    assert set(statuses(healed_build).values()) == set(statuses(healed_run).values()) == {"cached"}
    assert not warnings(healed_build) and not warnings(healed_run)


def test_a_damaged_page_in_the_action_cache_is_set_aside(ws, private_cache):
    built_once(ws, private_cache)
    db = private_cache / "ac.sqlite"
    assert not Path(f"{db}-wal").exists()  # checkpointed at the last close: the damage reaches every reader
    with open(db, "r+b") as f:  # page 2, the table's root: the file opens, the first query fails
        f.seek(4096)
        f.write(os.urandom(4096))
    rebuilt_correctly(ws, private_cache)
    assert list(private_cache.glob("ac.sqlite.corrupt-*"))


WRONG_ROWS = {
    "an-integer": 42,
    "text": "a string",
    "no-keys": b'{"format": 3}',
    "a-list": b"[1, 2, 3]",
    "wrong-types": json.dumps({"format": 2, "artifacts": "tool", "inline": [], "log": 7}).encode(),  # tracebacks before
    "sealed-wrong-types": seal_manifest({"format": 3, "artifacts": "tool", "inline": [], "log": 7}),
    "sealed-a-list": seal_manifest([1]),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("value", [WRONG_ROWS["an-integer"], WRONG_ROWS["wrong-types"]],
                         ids=["an-integer", "wrong-types"])
def test_wrong_shaped_rows_are_a_miss(ws, private_cache, value):
    built_once(ws, private_cache)
    for key, _ in entries(private_cache).values():
        put_row(private_cache, key, value)
    rebuilt_correctly(ws, private_cache, max_warnings=2)  # one per damaged entry


def _set_path(path: object):
    return lambda m: m["artifacts"][0].update(path=path)


EDITS = {
    "digest-an-int": lambda m: m["artifacts"][0].update(sha256=5),
    "digest-traversal": lambda m: m["artifacts"][0].update(sha256="../../../victim.txt"),
    "no-size": lambda m: m["artifacts"][0].pop("size"),
    "size-a-bool": lambda m: m["artifacts"][0].update(size=True),
    "setuid": lambda m: m["artifacts"][0].update(mode=0o4755),
    "inline-bad-digest": lambda m: m.update(inline={"x": "y"}),
    "log-a-path": lambda m: m.update(log="../log"),
    "other-key": lambda m: m.update(key="0" * 64),  # stored under another key
    "no-task": lambda m: m.pop("task"),
    "file-and-directory": lambda m: m["artifacts"].append(dict(m["artifacts"][0],
                                                                path=m["artifacts"][0]["path"] + "/x")),
    "same-path-twice": lambda m: m["artifacts"].append(dict(m["artifacts"][0])),
    **{f"path-{p!r}": _set_path(p)
       for p in ["../../escaped", "/tmp/escaped", "./out", "a//b", "a/", "", ".", "a/../b", 5, None, "a\0b"]},
}


@pytest.mark.parametrize("edit", ["digest-an-int", "file-and-directory"])
def test_sealed_manifests_of_the_wrong_shape_are_a_miss(ws, private_cache, edit):
    edit = EDITS[edit]
    built_once(ws, private_cache)
    rewrite_entry(private_cache, "go:tool", edit)
    rewrite_entry(private_cache, "go:tool:gen", edit)
    rebuilt_correctly(ws, private_cache, max_warnings=2)


def test_a_flipped_byte_in_a_manifest_path_is_a_miss(ws, private_cache):
    built_once(ws, private_cache)
    flip_byte_in_path(private_cache, "go:tool", "tool")
    rebuilt_correctly(ws, private_cache)
    assert sorted(p.name for p in (ws / "dist").iterdir()) == ["build-report.json", "tool"]  # no dist/tonl


def test_an_emptied_artifact_list_is_a_miss(ws, private_cache):
    built_once(ws, private_cache)
    rewrite_entry(private_cache, "go:tool", lambda m: m.update(artifacts=[]), sealed=False)
    (ws / "dist" / "tool").unlink()
    proc = polybuild(ws, cache=private_cache)
    assert tool_runs(ws), proc.stderr
    assert len(warnings(proc)) == 1


@pytest.mark.parametrize("path", ["../../escaped", "/tmp/escaped-abs", ""])
def test_a_manifest_path_outside_the_output_directory_is_refused(ws, private_cache, tmp_path, path):
    built_once(ws, private_cache)
    if path.startswith("/"):
        path = str(tmp_path / "escaped-abs")
    rewrite_entry(private_cache, "go:tool", lambda m: m["artifacts"][0].update(path=path))
    rebuilt_correctly(ws, private_cache)
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "escaped-abs").exists()
    assert sorted(p.name for p in (ws / "dist").iterdir()) == ["build-report.json", "tool"]


def test_a_manifest_mode_with_special_bits_is_refused(ws, private_cache):
    built_once(ws, private_cache)
    rewrite_entry(private_cache, "go:tool", lambda m: m["artifacts"][0].update(mode=0o6777))
    rebuilt_correctly(ws, private_cache)
    assert (ws / "dist" / "tool").stat().st_mode & 0o7777 == 0o755


def test_a_traversal_digest_in_a_local_manifest_touches_nothing(tmp_path, ws):
    cache = tmp_path / "a" / "b" / "cache"
    victim = tmp_path / "a" / "victim.txt"  # what cas/./../../../victim.txt names
    built_once(ws, cache)
    victim.write_text("victim\n")
    rewrite_entry(cache, "go:tool", lambda m: m["artifacts"][0].update(sha256="../../../victim.txt"))
    rebuilt_correctly(ws, cache)
    assert victim.read_text() == "victim\n"


def test_a_directory_in_place_of_a_blob(ws, private_cache):
    built_once(ws, private_cache)
    digest = entries(private_cache)["go:tool"][1]["artifacts"][0]["sha256"]
    blob = private_cache / "cas" / digest[0] / digest
    blob.unlink()
    (blob / "inside").mkdir(parents=True)
    rebuilt_correctly(ws, private_cache)
    assert blob.is_file() and hashlib.sha256(blob.read_bytes()).hexdigest() == digest


@pytest.mark.parametrize("records", [
    [],
    {"format": records_module.FILE_FORMAT, "tasks": [], "libraries": {}},
    {"format": records_module.FILE_FORMAT, "tasks": {"go:tool": {"key": 1, "output": None, "parts": []}},
     "libraries": {}},
], ids=["a-list", "tasks-a-list", "record-wrong-types"])
def test_records_of_the_wrong_shape_are_set_aside(ws, private_cache, records):
    built_once(ws, private_cache)
    path = ws / ".polybuild" / "records.json"
    if isinstance(records, dict):  # keyed with this cache's salt, so that its shape is what is wrong
        records = {**records, "salt": json.loads(path.read_text()).get("salt")}
    path.write_text(json.dumps(records))
    proc = polybuild(ws, cache=private_cache)
    assert tool_runs(ws)
    assert len(warnings(proc)) <= 1
    explain = run_polybuild("explain", "tool", cwd=ws, env=polybuild_env(POLYBUILD_CACHE_DIR=str(private_cache)))
    assert explain.returncode == 0 and "Traceback" not in explain.stderr, explain.stderr
    assert explain.stdout.startswith("go:tool: ")


def test_records_hold_no_hash_of_a_secret_that_can_be_checked_offline(ws, private_cache):
    secret = "hunter2"
    polybuild(ws, cache=private_cache, DEMO_SECRET=secret)
    unsalted = hashlib.sha256(f"DEMO_SECRET={secret}".encode()).hexdigest()
    text = (ws / ".polybuild" / "records.json").read_text()
    assert unsalted not in text and secret not in text
    salt = private_cache / "salt"
    assert salt.stat().st_mode & 0o777 == 0o600 and len(salt.read_bytes()) >= 32
    # the records still say which variable changed
    explain = run_polybuild("explain", "tool", cwd=ws,
                            env=polybuild_env(POLYBUILD_CACHE_DIR=str(private_cache), DEMO_SECRET=secret))
    assert explain.stdout.strip() == "go:tool: up to date", explain.stderr
    explain = run_polybuild("explain", "tool", cwd=ws,
                            env=polybuild_env(POLYBUILD_CACHE_DIR=str(private_cache), DEMO_SECRET="other"))
    assert "  environment variable changed: DEMO_SECRET" in explain.stdout.splitlines(), explain.stdout
    # records keyed with a cleared cache's salt are not compared (nothing would look equal)
    for path in private_cache.iterdir():
        path.unlink() if path.is_file() else shutil.rmtree(path)
    explain = run_polybuild("explain", "tool", cwd=ws,
                            env=polybuild_env(POLYBUILD_CACHE_DIR=str(private_cache), DEMO_SECRET=secret))
    assert explain.stdout.strip() == "go:tool: would rebuild\n  never built in this workspace", explain.stdout


# -- a hostile remote ----------------------------------------------------------------------------------------------


class HostileRemote:
    """A real HTTP server on loopback answering every `GET /ac/<key>` with `entry`, `/cas/<digest>` from `blobs`,
    every request with `status` when set, and trickling one byte of the answer per `interval` when asked."""

    def __init__(self) -> None:
        self.entry: bytes = b""
        self.blobs: dict[str, bytes] = {}
        self.status: int | None = None
        self.trickle: str | None = None  # "headers" or "body"
        self.raw: bytes | None = None  # instead of HTTP
        self.interval = 0.5
        self.requests: list[str] = []
        self.stopping = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def _answer(self, method: str, path: str) -> tuple[int, bytes]:
        self.requests.append(f"{method} {path}")
        if self.status is not None:
            return self.status, b"failing"
        if path.startswith("/ac/") and method == "GET" and self.entry:
            return 200, self.entry
        blob = self.blobs.get(path.removeprefix("/cas/"))
        return (200, blob) if blob is not None and method == "GET" else (404, b"")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        remote = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _reply(self) -> None:
                status, body = remote._answer(self.command, self.path)
                head = (f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
                raw = remote.raw if remote.raw is not None else head + (body if self.command != "HEAD" else b"")
                slow_from = {"headers": 0, "body": len(head)}.get(remote.trickle or "", len(raw))
                try:
                    self.wfile.write(raw[:slow_from])
                    self.wfile.flush()
                    for i in range(slow_from, len(raw)):
                        if remote.stopping.wait(remote.interval):
                            return
                        self.wfile.write(raw[i:i + 1])
                        self.wfile.flush()
                except OSError:
                    pass
                self.close_connection = True

            def do_GET(self) -> None:
                self._reply()

            do_HEAD = do_GET

            def do_PUT(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._reply()

        return Handler

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def hostile():
    server = HostileRemote()
    yield server
    server.stop()


def digest_of(data: bytes) -> dict[str, str]:
    return {"hash": hashlib.sha256(data).hexdigest(), "sizeBytes": str(len(data))}


def action_result(*files: object, **extra: object) -> bytes:
    return json.dumps({"outputFiles": list(files), "exitCode": 0, **extra}).encode()


def test_a_traversal_digest_from_the_remote_deletes_nothing(tmp_path, ws, hostile):
    cache = tmp_path / "a" / "b" / "cache"
    victim = tmp_path / "a" / "victim.txt"  # what cas/./../../../victim.txt names
    victim.parent.mkdir(parents=True)
    victim.write_text("victim\n")
    hostile.entry = action_result({"path": "tool", "digest": {"hash": "../../../victim.txt", "sizeBytes": "7"},
                                   "isExecutable": True})
    proc = polybuild(ws, "build", "--remote", hostile.url, cache=cache)
    assert victim.read_text() == "victim\n"
    assert tool_runs(ws) and statuses(proc) == {"go:tool": "done"}
    assert len(warnings(proc)) == 1, proc.stderr


GOOD_BLOB = b"not the tool\n"
MALFORMED = {
    "no-digest": action_result({"path": "tool", "isExecutable": True}),
    "outputFiles-a-string": json.dumps({"outputFiles": "tool", "exitCode": 0}).encode(),
    "path-an-int": action_result({"path": 5, "digest": digest_of(GOOD_BLOB)}),
    "path-escapes": action_result({"path": "../../escaped", "digest": digest_of(GOOD_BLOB)}),
    "path-absolute": action_result({"path": "/tmp/escaped", "digest": digest_of(GOOD_BLOB)}),
    "path-not-normal": action_result({"path": "sub/../tool", "digest": digest_of(GOOD_BLOB)}),
    "digest-uppercase": action_result({"path": "tool", "digest": {"hash": "A" * 64, "sizeBytes": "1"}}),
    "digest-a-list": action_result({"path": "tool", "digest": ["x"]}),
    "size-negative": action_result({"path": "tool", "digest": {**digest_of(GOOD_BLOB), "sizeBytes": "-1"}}),
    "size-a-word": action_result({"path": "tool", "digest": {**digest_of(GOOD_BLOB), "sizeBytes": "lots"}}),
    "executable-a-string": action_result({"path": "tool", "digest": digest_of(GOOD_BLOB), "isExecutable": "yes"}),
    "log-a-string": action_result({"path": "tool", "digest": digest_of(GOOD_BLOB)}, stdoutDigest="log"),
    "same-path-twice": action_result({"path": "tool", "digest": digest_of(GOOD_BLOB)},
                                     {"path": "tool", "digest": digest_of(GOOD_BLOB)}),
    "not-json": b"\x00\xffgarbage",
    "a-list": b"[]",
}


@pytest.mark.parametrize("name", ["no-digest", "outputFiles-a-string", "path-an-int", "path-escapes"])
def test_a_malformed_remote_entry_is_a_miss_with_one_warning(tmp_path, ws, hostile, name):
    hostile.entry = MALFORMED[name]
    hostile.blobs[hashlib.sha256(GOOD_BLOB).hexdigest()] = GOOD_BLOB
    proc = polybuild(ws, "build", "--remote", hostile.url, cache=tmp_path / "cache")
    assert statuses(proc) == {"go:tool": "done"} and tool_runs(ws)
    assert len(warnings(proc)) == 1, proc.stderr
    assert not (tmp_path / "escaped").exists() and not Path("/tmp/escaped").exists()
    assert sorted(p.name for p in (ws / "dist").iterdir()) == ["build-report.json", "tool"]


NOT_HTTP = {"not-http": b"garbage\r\n\r\n", "cut-short": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{",
            "too-many-headers": b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 200 + b"\r\n"}


@pytest.mark.parametrize("raw", [NOT_HTTP["not-http"], NOT_HTTP["cut-short"]], ids=["not-http", "cut-short"])
def test_a_remote_not_speaking_http_is_one_warning(tmp_path, ws, hostile, raw):
    hostile.raw = raw
    proc = polybuild(ws, "build", "--remote", hostile.url, cache=tmp_path / "cache")
    assert statuses(proc) == {"go:tool": "done"} and tool_runs(ws)
    assert len(warnings(proc)) == 1, proc.stderr


@pytest.mark.parametrize("where", ["headers", "body"])
def test_a_trickling_remote_is_abandoned_at_the_deadline(tmp_path, ws, hostile, where):
    (ws / "polybuild.toml").write_text(WS["polybuild.toml"] + "\n[remote]\ntimeout = 2\n")
    hostile.entry = action_result({"path": "tool", "digest": digest_of(GOOD_BLOB)}) + b" " * 200
    hostile.trickle = where
    start = time.monotonic()
    proc = polybuild(ws, "build", "--remote", hostile.url, cache=tmp_path / "cache", timeout=60)
    assert time.monotonic() - start < 30  # bounded by the deadline, not by the server's patience
    assert statuses(proc) == {"go:tool": "done"} and tool_runs(ws)
    assert len(warnings(proc)) == 1 and "unavailable" in proc.stderr, proc.stderr


def test_a_failing_remote_with_many_retries_gives_up_in_bounded_time(tmp_path, ws, hostile):
    (ws / "polybuild.toml").write_text(WS["polybuild.toml"] + "\n[remote]\ntimeout = 2\nretries = 30\n")
    hostile.status = 500
    start = time.monotonic()
    proc = polybuild(ws, "build", "--remote", hostile.url, cache=tmp_path / "cache", timeout=60)
    assert time.monotonic() - start < 30
    assert statuses(proc) == {"go:tool": "done"} and tool_runs(ws)
    assert len(warnings(proc)) == 1 and "HTTP 500" in proc.stderr, proc.stderr
    assert 2 <= len(hostile.requests) <= 31  # it retried, and stopped


def test_a_corrupt_local_blob_is_never_uploaded(tmp_path, ws):
    cache = tmp_path / "cache"
    polybuild(ws, cache=cache)
    digest = entries(cache)["go:tool"][1]["artifacts"][0]["sha256"]
    blob = cache / "cas" / digest[0] / digest
    blob.write_bytes(b"X" + blob.read_bytes()[1:])
    for db in cache.glob("ac.sqlite*"):  # the entry is gone, the damaged blob stays
        db.unlink()
    nginx = Nginx(tmp_path / "nginx")
    try:
        polybuild(ws, "build", "--remote", nginx.url, "--remote-upload", cache=cache)
        uploaded = nginx.data / "cas" / digest
        assert not uploaded.exists() or hashlib.sha256(uploaded.read_bytes()).hexdigest() == digest
    finally:
        nginx.stop()


# -- every variant, in process: the real store on disk and the real hostile server, without a build ---------------


def test_every_tampered_manifest_is_a_miss_with_one_warning(tmp_path, capsys):
    from polybuild.cache.store import LocalStore
    from polybuild.cache.tasks import TaskCache, describe

    victim = tmp_path / "x" / "victim.txt"  # what cas/./../../../victim.txt names
    victim.parent.mkdir()
    victim.write_text("victim\n")
    base = tmp_path / "out"
    (base / "sub").mkdir(parents=True)
    (base / "sub" / "out").write_bytes(b"small output\n")
    (base / "big").write_bytes(os.urandom(200_000))
    store_dir = tmp_path / "x" / "y" / "store"
    cache = TaskCache(LocalStore(store_dir))
    outputs = [describe(base / "sub" / "out", base), describe(base / "big", base)]
    failures = []
    for name, edit in [*EDITS.items(), *((f"row-{n}", v) for n, v in WRONG_ROWS.items())]:
        key = hashlib.sha256(name.encode()).hexdigest()
        cache.save(key, "t", base, outputs, b"log\n")
        if callable(edit):
            stored = open_manifest(cache.store.ac.get(key))
            edit(stored)
            cache.store.ac.put(key, seal_manifest(stored))
        else:
            cache.store.ac.put(key, edit)
        capsys.readouterr()
        restored = cache.restore(key, "t", tmp_path / "dest", tmp_path / "t.log")
        err = capsys.readouterr().err
        quiet_miss = name in ("row-no-keys", "row-wrong-types")  # what an older polybuild wrote: a plain miss
        if restored is not None or err.count("warning:") != (0 if quiet_miss else 1) or "Traceback" in err:
            failures.append(f"{name}: {restored!r} {err!r}")
    assert not failures
    assert victim.read_text() == "victim\n"
    assert not (tmp_path / "escaped").exists() and not Path("/tmp/escaped").exists()
    assert not (tmp_path / "dest").exists() or not any(p.is_file() for p in (tmp_path / "dest").rglob("*"))


def test_every_malformed_remote_entry_is_a_miss_with_one_warning(tmp_path, hostile, capsys):
    from polybuild.cache.remote import RemoteCache
    from polybuild.cache.store import LocalStore

    hostile.blobs[hashlib.sha256(GOOD_BLOB).hexdigest()] = GOOD_BLOB
    failures = []
    for name, entry in [*MALFORMED.items(), *((f"raw-{n}", r) for n, r in NOT_HTTP.items())]:
        hostile.entry, hostile.raw = (None, entry) if name.startswith("raw-") else (entry, None)
        store = LocalStore(tmp_path / name / "store")
        capsys.readouterr()
        fetched = RemoteCache(hostile.url, timeout=2).fetch("0" * 64, store)
        err = capsys.readouterr().err
        if fetched is not None or err.count("warning:") != 1 or "Traceback" in err:
            failures.append(f"{name}: {fetched!r} {err!r}")
    assert not failures
    assert not (tmp_path / "escaped").exists() and not Path("/tmp/escaped").exists()


def test_a_redirecting_remote_is_one_warning_that_says_so(tmp_path, hostile, capsys):
    from polybuild.cache.remote import RemoteCache
    from polybuild.cache.store import LocalStore

    hostile.status = 301
    assert RemoteCache(hostile.url, timeout=2).fetch("0" * 64, LocalStore(tmp_path / "store")) is None
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "redirect" in err, err
