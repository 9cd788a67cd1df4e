"""Progress output: a live status line on a terminal, plain lines in CI and pipes, JSON lines for machines."""

from __future__ import annotations

import json
import shutil
import sys
import time
from typing import TYPE_CHECKING, TextIO

from polybuild.support.terminal import paint

if TYPE_CHECKING:
    from polybuild.execute.scheduler import TaskResult
    from polybuild.plan import Task

_MARK = {"built": "done", "cached": "cached", "failed": "FAILED", "cancelled": "stopped", "skipped": "skipped"}


class PlainReporter:
    """One line per event; what CI logs want."""

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        self.total = total
        self.finished = 0
        self.stream = stream
        self.start = time.monotonic()

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def task_started(self, task: Task) -> None:
        self._print(f"[{self.finished}/{self.total}] start  {task.id}")

    def task_finished(self, result: TaskResult) -> None:
        self.finished += 1
        extra = f" ({result.reason})" if result.reason and result.status != "built" else ""
        mark = _MARK[result.status]
        padding = " " * max(7 - len(mark), 1)  # the ids line up; a 7-letter mark still gets its space
        self._print(f"[{self.finished}/{self.total}] {paint(mark, self.stream)}{padding}{result.task.id}"
                    f"  {result.duration:.1f}s{extra}")

    def tick(self, running: dict[str, float]) -> None:
        return None

    def close(self) -> None:
        return None


class LiveReporter(PlainReporter):
    """Finished tasks scroll by; one status line at the bottom shows what runs now and for how long."""

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        super().__init__(total, stream)
        self.counts = dict.fromkeys(_MARK, 0)
        self._status = ""

    def _print(self, text: str) -> None:
        self._clear()
        print(text, file=self.stream, flush=True)

    def _clear(self) -> None:
        if self._status:
            self.stream.write("\r\x1b[2K")
            self._status = ""

    def task_started(self, task: Task) -> None:
        return None

    def task_finished(self, result: TaskResult) -> None:
        self.counts[result.status] += 1
        super().task_finished(result)

    def tick(self, running: dict[str, float]) -> None:
        now = time.monotonic()
        busy = ", ".join(f"{tid} {now - start:.0f}s" for tid, start in sorted(running.items(), key=lambda x: x[1]))
        line = (f"[{self.finished}/{self.total}] {now - self.start:.0f}s  done {self.counts['built']}"
                f"  cached {self.counts['cached']}  failed {self.counts['failed']}  running: {busy or '-'}")
        line = line[: shutil.get_terminal_size().columns - 1]
        if line == self._status:
            return
        self._clear()
        self._status = line
        self.stream.write(self._status)
        self.stream.flush()

    def close(self) -> None:
        self._clear()
        self.stream.flush()


class JsonReporter:
    """JSON lines on stdout: one event per task start and finish."""

    def __init__(self, total: int, stream: TextIO = sys.stdout) -> None:
        self.stream = stream
        self._emit({"event": "plan", "tasks": total})

    def _emit(self, obj: dict) -> None:
        self.stream.write(json.dumps(obj) + "\n")
        self.stream.flush()

    def task_started(self, task: Task) -> None:
        self._emit({"event": "start", "task": task.id})

    def task_finished(self, result: TaskResult) -> None:
        self._emit({"event": "finish", "task": result.task.id, "status": result.status,
                    "duration_s": round(result.duration, 3),
                    "artifacts": [str(a.path) for a in result.artifacts]})

    def tick(self, running: dict[str, float]) -> None:
        return None

    def close(self) -> None:
        return None


def make_reporter(total: int, json_mode: bool) -> PlainReporter | JsonReporter:
    import os

    if json_mode:
        return JsonReporter(total)
    if sys.stderr.isatty() and not os.environ.get("CI") and os.environ.get("TERM") != "dumb":
        return LiveReporter(total)
    return PlainReporter(total)
