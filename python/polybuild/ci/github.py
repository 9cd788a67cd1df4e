"""The GitHub Actions files polybuild writes to: step outputs (`$GITHUB_OUTPUT`) and the step summary
(`$GITHUB_STEP_SUMMARY`). Both are files the runner owns and reads after the step: we append, never rewrite."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from polybuild.support.errors import UserError

if TYPE_CHECKING:
    from polybuild.api import Outcome
    from polybuild.execute.scheduler import TaskResult
    from polybuild.workspace import Workspace


def output_lines(outputs: dict[str, str]) -> str:
    """Outputs in the runner's syntax: `name=value`, or `name<<DELIMITER` blocks for values with newlines. The
    delimiter is derived from the value (deterministic) and checked not to occur in it."""
    text = []
    for name, value in outputs.items():
        if "\n" not in value and "\r" not in value:
            text.append(f"{name}={value}\n")
            continue
        delimiter = "POLYBUILD_EOF_" + hashlib.sha256(value.encode()).hexdigest()[:16]
        if delimiter in value:
            raise UserError(f"output '{name}' contains its own delimiter")
        text.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
    return "".join(text)


def append(path: Path, text: str, what: str) -> None:
    """One write in append mode, so a partial line never interleaves with another step's."""
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise UserError(f"cannot write the {what} to {path}: {exc.strerror}",
                        hint=f"check the {what} file the runner set (or unset the variable outside Actions)") from exc


def set_outputs(outputs: dict[str, str]) -> bool:
    """Append to `$GITHUB_OUTPUT` when it is set; whether it was."""
    target = os.environ.get("GITHUB_OUTPUT")
    if not target:
        return False
    append(Path(target), output_lines(outputs), "step output")
    return True


def report_build(ws: Workspace, outcome: Outcome, title: str = "polybuild build") -> None:
    """In a GitHub Actions job: `::error` annotations for failed tasks (on stderr, where the runner reads them as
    well) and the Markdown summary appended to `$GITHUB_STEP_SUMMARY`. Outside Actions this does nothing."""
    from polybuild.ci.summary import ANNOTATION_LOG_LINES, annotations, markdown

    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if os.environ.get("GITHUB_ACTIONS") == "true" or summary:
        log_lines = 0 if outcome.output_logs == "none" else ANNOTATION_LOG_LINES  # none: not a line of the tools'
        for line in annotations(ws, outcome.results, log_lines):
            print(line, file=sys.stderr)
    if summary:
        append(Path(summary), markdown(ws, outcome.results, outcome.plan.skipped, title), "step summary")


def log_groups(results: list[TaskResult]) -> list[str]:
    """Each task's log folded in a `::group::` of the job log (a failure's tail is printed expanded after them).
    A log is what a child printed, or came from the cache: workflow commands in it are switched off
    (`::stop-commands::`), lest a line such as `::endgroup::` or `::add-mask::` in it act."""
    import secrets

    lines = []
    for r in results:
        if r.log is None or not r.log.is_file():
            continue
        token = secrets.token_hex(16)
        text = r.log.read_text(encoding="utf-8", errors="replace").rstrip("\n")
        lines += [f"::group::{r.task.id}", f"::stop-commands::{token}", text, f"::{token}::",
                  "::endgroup::"]
    return lines
