"""What a CI job shows of a build: a Markdown step summary (per task: status, duration, artifact digests) and
`::error` annotations on the manifest of each failing target."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from polybuild.execute.report import failure_facts

if TYPE_CHECKING:
    from polybuild.execute.scheduler import TaskResult
    from polybuild.workspace import Target, Workspace

_ICON = {"built": "✅ built", "cached": "♻️ cached", "failed": "❌ failed", "cancelled": "⏹️ cancelled",
         "skipped": "⏭️ skipped"}
ANNOTATION_LOG_LINES = 10


def markdown(ws: Workspace, results: list[TaskResult], skipped: list[tuple[str, str]], title: str) -> str:
    """The step summary of one run: a count line, a table of tasks and the full artifact digests."""
    counts = {s: sum(r.status == s for r in results) for s in _ICON}
    total = sum(r.duration for r in results)
    lines = [f"### {title}", "",
             f"**{', '.join(f'{n} {s}' for s, n in counts.items() if n) or 'nothing to do'}** "
             f"({total:.1f} s of task time)", ""]
    if results:
        lines += ["| target | task | status | duration | artifacts |", "|---|---|---|--:|---|"]
        for r in sorted(results, key=lambda r: r.task.id):
            artifacts = "<br>".join(f"`{_rel(ws, a.path)}` `{a.sha256[:12]}`" for a in r.artifacts)
            lines.append(f"| `{r.task.target.id}` | `{_cell(r.task.id)}` | {_ICON.get(r.status, r.status)} | "
                         f"{r.duration:.1f} s | {artifacts} |")
    for task_id, reason in skipped:
        lines.append(f"\n- skipped `{task_id}`: {_cell(reason)}")
    artifacts = sorted((_rel(ws, a.path), a.sha256, a.size) for r in results for a in r.artifacts)
    if artifacts:
        lines += ["", f"<details><summary>Artifact digests ({len(artifacts)})</summary>", "", "```"]
        lines += [f"{sha}  {path}  ({size:,} bytes)" for path, sha, size in artifacts]
        lines += ["```", "", "</details>"]
    return "\n".join(lines) + "\n\n"


def annotations(ws: Workspace, results: list[TaskResult], log_lines: int = ANNOTATION_LOG_LINES) -> list[str]:
    """One `::error file=...,line=...::` workflow command per failed task, at its target's manifest, with the last
    `log_lines` of its log."""
    out = []
    for r in results:
        if r.status != "failed":
            continue
        path, line = manifest_location(ws, r.task.target)
        facts, tail = failure_facts(r, ws.root, log_lines)
        message = [f"{r.task.id} failed", *facts, *tail]
        props = f"file={_prop(path)},line={line},title={_prop(f'polybuild: {r.task.id} failed')}"
        out.append(f"::error {props}::{_data(chr(10).join(message))}")
    return out


def manifest_location(ws: Workspace, target: Target) -> tuple[str, int]:
    """The manifest (workspace-relative) and the line declaring the target: `[package]`, `[project]`, `module`,
    or the image's table in the config."""
    patterns = {
        "rust": r"\[package\]",
        "py": r"\[project\]",
        "go": r"module\s",
        "image": rf"\[(tool\.polybuild\.)?images\.\"?{re.escape(target.name)}\"?\]",
    }
    pattern = re.compile(patterns.get(target.kind, r"$^"))
    line = 1
    try:
        for n, text in enumerate(Path(target.manifest).read_text(encoding="utf-8").splitlines(), 1):
            if pattern.match(text.strip()):
                line = n
                break
    except (OSError, UnicodeDecodeError):
        pass
    return _rel(ws, Path(target.manifest)), line


def _rel(ws: Workspace, path: Path) -> str:
    return ws.rel(path) if Path(path).is_relative_to(ws.root) else str(path)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _data(text: str) -> str:
    """Escape a workflow command's message (GitHub's own rules: %, CR, LF)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")
