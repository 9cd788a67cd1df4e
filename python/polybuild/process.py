"""Child processes that can all be stopped at once: on failure (fail-fast) or Ctrl-C, every running build is
terminated with its whole process group (cargo, rustc, linkers...), not just the direct child."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO


class Cancelled(Exception):
    """The run is stopping; the task did not finish."""


class ProcessGroup:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()
        self.cancelled = threading.Event()

    def run(self, argv: list[str], cwd: Path, env: dict[str, str], log: IO[bytes]) -> int:
        """Run to completion with output into `log`; raise Cancelled if the run is being stopped."""
        if self.cancelled.is_set():
            raise Cancelled
        # Spawn outside the lock so parallel tasks start in parallel; a cancel that raced us is honoured below.
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        with self._lock:
            self._running.add(proc)
        if self.cancelled.is_set():
            _signal_group(proc, signal.SIGTERM)
        try:
            code = proc.wait()
        finally:
            with self._lock:
                self._running.discard(proc)
        if self.cancelled.is_set() and code != 0:
            raise Cancelled
        return code

    def terminate_all(self, grace: float = 5.0) -> None:
        """SIGTERM every process group, then SIGKILL what is still alive after `grace` seconds."""
        self.cancelled.set()
        with self._lock:
            procs = list(self._running)
        for p in procs:
            _signal_group(p, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(p, signal.SIGKILL)
                p.wait()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


class TaskLog:
    """A task's output (its commands and what they print), held in an anonymous file and written to `path` only
    when it is worth reading: the task failed or printed something. A silent success creates no file; creating
    files is most of what a small task costs polybuild on a cold run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = _anonymous_file(path.parent)
        self._ours = 0  # bytes of our own `$ command` lines

    def command(self, text: str) -> None:
        self._ours += self.file.write(f"$ {text}\n".encode())

    def note(self, text: str) -> None:
        """A line that counts as output, such as a failure message."""
        self.file.write(f"{text}\n".encode())

    def finish(self, keep: bool) -> bytes | None:
        """The log's content if it is kept (written to `path`), else None (and no stale file at `path`)."""
        if self.file.closed:  # finished already
            return None
        try:
            if not keep and os.fstat(self.file.fileno()).st_size == self._ours:
                self.path.unlink(missing_ok=True)
                return None
            self.file.seek(0)
            data = self.file.read()
            self.path.write_bytes(data)
            return data
        finally:
            self.file.close()


def _anonymous_file(directory: Path) -> IO[bytes]:
    """Unbuffered, so our lines and the children's output (same file offset) stay in order."""
    if hasattr(os, "memfd_create"):
        return open(os.memfd_create("polybuild-log", os.MFD_CLOEXEC), "w+b", buffering=0)
    import tempfile

    return tempfile.TemporaryFile(dir=directory, buffering=0)
