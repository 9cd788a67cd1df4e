"""Child processes that can all be stopped at once: on failure (fail-fast), Ctrl-C, SIGTERM or SIGHUP, every
running build is terminated with its whole process group (cargo, rustc, linkers...), not just the direct child.

If polybuild itself dies without a chance to clean up (kill -9, the OOM killer), a supervisor process kills the
groups it leaves behind: it learns each group as it starts and ends through a pipe, and kills the live ones when the
pipe closes. This is sturdier than PR_SET_PDEATHSIG, which fires when the *thread* that forked the child exits (tasks
are started from worker threads), reaches only the direct child (not rustc under cargo), and needs a `preexec_fn`
(unsafe with threads, and it rules out the fast vfork spawn).

Short tool runs whose output polybuild reads (`cargo metadata`, `go version -m`, git) go through `run_tool` and
`git`: argv lists only, output captured, a missing or failing tool reported as a UserError.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from polybuild.support.errors import UserError
from polybuild.support.fs import write_atomic


def run_tool(argv: list[str], what: str, *, cwd: Path | None = None, env: Mapping[str, str] | None = None,
             check: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run a tool to completion with its output captured as text and no stdin (it must never wait for input).
    `what` names the step for the user. A tool that cannot be started or runs past `timeout` seconds is a
    UserError; so is, with `check`, a non-zero exit, showing the tool's stderr (else stdout): what a tool says
    about the user's project is the user's to fix, and needs no traceback."""
    try:
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              timeout=timeout)
    except OSError as exc:
        from polybuild.support.toolchains import INSTALL_HINTS

        raise UserError(f"{what}: cannot run {argv[0]}: {exc.strerror}",
                        hint=INSTALL_HINTS.get(os.path.basename(argv[0]))) from None
    except subprocess.TimeoutExpired:
        raise UserError(f"{what}: {os.path.basename(argv[0])} did not finish within {timeout:g} s") from None
    if check and proc.returncode != 0:
        detail = proc.stderr.strip() or proc.stdout.strip()
        raise UserError(f"{what} failed:\n{detail}")
    return proc


def git(root: Path, *args: str, check: bool = True, env: Mapping[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    """`git ARGS` in `root`, as `run_tool` runs a tool (`check=False` to read the exit status yourself)."""
    return run_tool(["git", *args], f"git {' '.join(args)} in {root}", cwd=root, env=env, check=check)


class Cancelled(Exception):
    """The run is stopping; the task did not finish."""


class ProcessGroup:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()
        self.cancelled = threading.Event()

    def run(self, argv: list[str], cwd: Path, env: dict[str, str], log: IO[bytes],
            echo: Callable[[list[str]], None] | None = None) -> int:
        """Run to completion with output into `log`; raise Cancelled if the run is being stopped. With `echo`,
        the output also goes to `echo` as it comes, in whole lines (through a pipe, which the child then writes
        to instead of the log file)."""
        if self.cancelled.is_set():
            raise Cancelled
        # Spawn outside the lock so parallel tasks start in parallel; a cancel that raced us is honoured below.
        supervisor = _supervisor()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=log if echo is None else subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        supervisor.started(proc.pid)
        with self._lock:
            self._running.add(proc)
        if self.cancelled.is_set():
            _signal_group(proc, signal.SIGTERM)
        try:
            if echo is not None:
                try:
                    _tee_lines(proc, log, echo)
                except BaseException:  # e.g. the output's reader left: the child must not outlive the run
                    _signal_group(proc, signal.SIGTERM)
                    raise
            code = proc.wait()
        finally:
            with self._lock:
                self._running.discard(proc)
            supervisor.ended(proc.pid)
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


_LONGEST_LINE = 65536  # a longer run of output without a newline is passed on in pieces of this size
_DRAIN_SECONDS = 1.0  # how long what a child left behind may still write to its pipe after the child exited


def _tee_lines(proc: subprocess.Popen[bytes], log: IO[bytes], echo: Callable[[list[str]], None]) -> None:
    """Copy the child's output into `log` as it comes and hand the whole lines of each read to `echo` (a last
    line without its newline at the end). Reading stops at end of file, or once the child has exited and nothing
    more arrives for a moment: a process it left running in the background may hold the pipe open for ever."""
    import select

    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    pending = b""
    exited = None  # when the child was seen to have exited
    try:
        while True:
            readable = select.select([fd], [], [], 0.2)[0]
            if exited is None and proc.poll() is not None:
                exited = time.monotonic()
            if exited is not None and (not readable or time.monotonic() - exited > _DRAIN_SECONDS):
                break
            if not readable:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            log.write(chunk)
            *lines, pending = (pending + chunk).split(b"\n")
            while len(pending) >= _LONGEST_LINE:
                lines.append(pending[:_LONGEST_LINE])
                pending = pending[_LONGEST_LINE:]
            if lines:
                echo([_text(line) for line in lines])
        if pending:
            echo([_text(pending)])
    finally:
        proc.stdout.close()


def _text(line: bytes) -> str:
    return line.rstrip(b"\r").decode("utf-8", errors="replace")


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


# The supervisor: it ignores the signals a terminal or CI sends to polybuild's group (and runs in a session of its
# own, out of reach of a kill aimed at that group), so it outlives polybuild; it exits when the pipe closes, that is
# when polybuild has exited, after terminating the groups still listed ("+pgid" when started, "-pgid" when ended).
_SUPERVISOR = """
import os, signal, time
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
    signal.signal(s, signal.SIG_IGN)
groups, pending = set(), b""
while chunk := os.read(0, 65536):
    *lines, pending = (pending + chunk).split(b"\\n")
    for line in lines:
        (groups.add if line[:1] == b"+" else groups.discard)(int(line[1:]))
def signal_all(sig):
    for g in list(groups):
        try:
            os.killpg(g, sig)
        except ProcessLookupError:
            groups.discard(g)
signal_all(signal.SIGTERM)
deadline = time.monotonic() + 5
while groups and time.monotonic() < deadline:
    time.sleep(0.1)
    signal_all(0)
signal_all(signal.SIGKILL)
"""


class _Supervisor:
    """polybuild's end of the supervisor's pipe; started once per process, with the first child."""

    def __init__(self) -> None:
        read, self._write = os.pipe()  # both close-on-exec: no child holds the pipe open
        try:
            self._process = subprocess.Popen([sys.executable, "-I", "-S", "-c", _SUPERVISOR], stdin=read,
                                             start_new_session=True)
        finally:
            os.close(read)

    def started(self, pgid: int) -> None:
        self._send(f"+{pgid}\n")

    def ended(self, pgid: int) -> None:
        self._send(f"-{pgid}\n")

    def _send(self, line: str) -> None:
        with contextlib.suppress(OSError):  # a supervisor that is gone only loses the kill -9 safety net
            os.write(self._write, line.encode())  # one small write: atomic on a pipe, so threads cannot interleave


_supervisor_lock = threading.Lock()
_the_supervisor: _Supervisor | None = None


def _supervisor() -> _Supervisor:
    global _the_supervisor
    with _supervisor_lock:
        if _the_supervisor is None:
            _the_supervisor = _Supervisor()
        return _the_supervisor


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
            write_atomic(self.path, data, durable=False)
            return data
        finally:
            self.file.close()


def _anonymous_file(directory: Path) -> IO[bytes]:
    """Unbuffered, so our lines and the children's output (same file offset) stay in order."""
    if hasattr(os, "memfd_create"):
        return open(os.memfd_create("polybuild-log", os.MFD_CLOEXEC), "w+b", buffering=0)
    import tempfile

    return tempfile.TemporaryFile(dir=directory, buffering=0)
