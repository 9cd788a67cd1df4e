"""Progress output: a live status line on a terminal, plain lines in CI and pipes, JSON lines for machines (the
events of docs/usage.md#json-events, checked against docs/events.schema.json by the tests)."""

from __future__ import annotations

import json
import shutil
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from polybuild.support.terminal import paint, tint

if TYPE_CHECKING:
    from collections.abc import Iterable

    from polybuild.execute.scheduler import TaskResult
    from polybuild.plan import Task

# The version of the JSON event stream, in its first event: raised when a field changes meaning or goes away (a
# new event or field is no reason: readers ignore what they do not know).
EVENTS_SCHEMA = 1
STATUSES = ("built", "cached", "failed", "cancelled", "skipped")

_MARK = {"built": "done", "cached": "cached", "failed": "FAILED", "cancelled": "stopped", "skipped": "skipped"}


class PlainReporter:
    """One line per event; what CI logs want."""

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        self.total = total
        self.finished = 0
        self.stream = stream
        self.start = time.monotonic()
        self._commands_off: str | None = None  # in GitHub Actions, the token that turns workflow commands back on

    def _print(self, text: str) -> None:
        self.stream.write(text + "\n")  # one write: stderr writes through, and a line must not go out in halves
        self.stream.flush()

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

    def task_output(self, task: Task, lines: list[str]) -> None:
        """Lines a child printed (--output-logs full), each prefixed with its task as turbo does: `rust:core: ...`.
        In GitHub Actions, workflow commands are off from the first such line to the end of the run, lest a
        line such as `::add-mask::` or `::endgroup::` printed by a tool act."""
        if self._commands_off is None and _in_github_actions():
            import secrets

            self._commands_off = secrets.token_hex(16)
            self._print(f"::stop-commands::{self._commands_off}")
        prefix = tint(task.id + ":", task.id, self.stream)
        self._print("\n".join(f"{prefix} {line}" for line in lines))

    def close(self) -> None:
        if self._commands_off is not None:
            self._print(f"::{self._commands_off}::")
            self._commands_off = None


class LiveReporter(PlainReporter):
    """Finished tasks scroll by; one status line at the bottom shows what runs now and for how long."""

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        super().__init__(total, stream)
        self.counts = dict.fromkeys(_MARK, 0)
        self._status = ""

    def _print(self, text: str) -> None:
        self._clear()
        super()._print(text)

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
        super().close()
        self.stream.flush()


class JsonReporter:
    """JSON lines on stdout: the plan (with the schema version) first, what left the plan, one event per task start
    and finish, the children's lines with --output-logs full; the command line adds the summary last."""

    def __init__(self, total: int, skipped: Iterable[tuple[str, str]] = (), stream: TextIO = sys.stdout) -> None:
        self.stream = stream
        emit(plan_event(total), stream)
        for skipped_id, reason in skipped:
            emit(skip_event(skipped_id, reason), stream)

    def task_started(self, task: Task) -> None:
        emit({"event": "start", "task": task.id}, self.stream)

    def task_finished(self, result: TaskResult) -> None:
        emit(finish_event(result.task.id, result.task.target.id, result.status, result.duration,
                          [str(a.path) for a in result.artifacts], result.reason,
                          str(result.log) if result.log else None), self.stream)

    def task_output(self, task: Task, lines: list[str]) -> None:
        self.stream.write("".join(json.dumps({"event": "output", "task": task.id, "line": line}) + "\n"
                                  for line in lines))
        self.stream.flush()

    def tick(self, running: dict[str, float]) -> None:
        return None

    def close(self) -> None:
        return None


def emit(event: dict[str, Any], stream: TextIO | None = None) -> None:
    """One event, one line, flushed: a reader sees each as it happens."""
    stream = stream or sys.stdout
    stream.write(json.dumps(event) + "\n")
    stream.flush()


def plan_event(total: int) -> dict[str, Any]:
    from polybuild import __version__

    return {"event": "plan", "schema": EVENTS_SCHEMA, "polybuild": __version__, "tasks": total}


def skip_event(skipped_id: str, reason: str) -> dict[str, Any]:
    """A target (or an image's task) that left the plan, with the reason its `note: skipped` line gives."""
    return {"event": "skip", "id": skipped_id, "reason": reason}


def finish_event(task: str, target: str, status: str, duration: float, artifacts: list[str], reason: str | None,
                 log: str | None) -> dict[str, Any]:
    return {"event": "finish", "task": task, "target": target, "status": status, "duration_s": round(duration, 3),
            "artifacts": artifacts, "reason": reason, "log": log}


def summary_event(statuses: Iterable[str], skipped: int, artifacts: int, exit_code: int, wall_time: float,
                  report: str | None) -> dict[str, Any]:
    """The last event of a run: how many tasks ended in each status, what left the plan, the exit code."""
    counts = dict.fromkeys(STATUSES, 0)
    for status in statuses:
        counts[status] += 1
    return {"event": "summary", "status": "ok" if exit_code == 0 else "failed", "exit_code": exit_code,
            "counts": counts, "tasks": sum(counts.values()), "skipped_targets": skipped, "artifacts": artifacts,
            "wall_time_s": round(wall_time, 3), "report": report}


def _in_github_actions() -> bool:
    import os

    return os.environ.get("GITHUB_ACTIONS") == "true"


def make_reporter(total: int, json_mode: bool, skipped: Iterable[tuple[str, str]] = ()
                  ) -> PlainReporter | JsonReporter:
    import os

    if json_mode:
        return JsonReporter(total, skipped)
    if sys.stderr.isatty() and not os.environ.get("CI") and os.environ.get("TERM") != "dumb":
        return LiveReporter(total)
    return PlainReporter(total)
