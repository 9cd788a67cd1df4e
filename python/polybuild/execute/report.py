"""The build report: `dist/build-report.json` for machines and the end-of-run summary for people.

`write` is the one place the report file is written. The no-op fast path puts back the text `replayed_text` made
when the run was recorded (the same report, every task cached), as the cache puts back outputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polybuild import __version__
from polybuild.support.fs import relative, write_atomic

if TYPE_CHECKING:
    from polybuild.builders import BuildContext
    from polybuild.execute.scheduler import TaskResult
    from polybuild.workspace import Workspace

LOG_TAIL_LINES = 25
FILE_NAME = "build-report.json"


def write(ws: Workspace, report: dict[str, Any]) -> Path:
    """Write the report into the dist directory; its path."""
    path = ws.config.dist_dir / FILE_NAME
    write_atomic(path, _text(report), durable=False)  # rewritten every run
    return path


def replayed_text(report: dict[str, Any]) -> str:
    """The report file a no-op rerun of the same command leaves: every task cached, no time spent."""
    return _text({**report, "duration_s": 0.0,
                  "tasks": [{**t, "status": "cached", "duration_s": 0.0} for t in report["tasks"]]})


def _text(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2) + "\n"


def input_digests(ctx: BuildContext, results: list[TaskResult]) -> dict[str, str]:
    """Per target, the tree digest of its files as git sees them: what a rebuild would start from.

    The files come from the run's fingerprints (already looked up for the cache keys), so nothing is hashed twice."""
    from polybuild.support.fingerprint import tree_digest_of
    from polybuild.workspace.files import under_dir

    digests = {}
    for target in {r.task.target.id: r.task.target for r in results}.values():
        if target.kind != "image":
            files = under_dir(ctx.ws.files, ctx.ws.rel(target.dir))
            digests[target.id] = tree_digest_of(ctx.fingerprints.entries(files))
    return digests


def build_report(ctx: BuildContext, results: list[TaskResult], duration: float, artifacts: list[dict]) -> dict:
    """The report of a run; `artifacts` are every artifact in dist/ (`published.update`), not only this run's."""
    root = ctx.ws.root
    failed = [r for r in results if r.status == "failed"]
    inputs = input_digests(ctx, results)
    return {
        "polybuild": __version__,
        "status": "failed" if failed else "ok",
        "version": ctx.version,
        "duration_s": round(duration, 3),
        "tasks": [
            {
                "id": r.task.id,
                "target": r.task.target.id,
                "action": r.task.action,
                "builder": r.task.builder,
                "variant": r.task.variant.name if r.task.variant else None,
                "platform": r.task.platform.name if r.task.platform else None,
                "status": r.status,
                "inputs_sha256": inputs.get(r.task.target.id),
                "duration_s": round(r.duration, 3),
                "log": relative(r.log, root) if r.log else None,
                **({"failed_command": r.failed_step} if r.failed_step else {}),
                **({"reason": r.reason} if r.reason else {}),
            }
            for r in results
        ],
        "artifacts": artifacts,
        "tools": tool_envs(ctx),
        "images": images(root, artifacts),
    }


def tool_envs(ctx: BuildContext) -> list[dict[str, Any]]:
    """The tool environments polybuild provisioned for this run's tasks: what was asked, the exact versions the
    committed lock pins (they are in those tasks' keys), that lock, and where the environment was made."""
    envs = sorted(ctx.toolchains.tool_envs(), key=lambda e: e.requirements)
    lock = relative(ctx.toolchains.pins.path, ctx.ws.root) if ctx.toolchains.pins else None
    return [{"requirements": list(env.requirements), "versions": env.pins(), "python": ctx.python, "lock": lock,
             "env": str(env.root)} for env in envs]


def images(root: Path, artifacts: list[dict]) -> list[dict[str, Any]]:
    """Each image in dist/ (`images/<name>.oci.tar`) with what its builder wrote beside it: the image digest (of
    its manifest or multi-platform index, what a registry knows it by), platforms and tags."""
    found = []
    for artifact in artifacts:
        if not artifact["path"].endswith(".oci.tar"):
            continue
        try:
            described = json.loads((root / (artifact["path"][:-len(".oci.tar")] + ".json")).read_text())
        except (OSError, ValueError):
            continue  # its description was deleted by hand: the artifact list still has the archive
        found.append({"image": described["image"], "target": artifact["target"], "path": artifact["path"],
                      "digest": described["digest"], "platforms": described["platforms"], "tags": described["tags"]})
    return found


def failure_facts(result: TaskResult, root: Path, tail_lines: int = LOG_TAIL_LINES) -> tuple[list[str], list[str]]:
    """What a failure report says of a failed task: `command:`, `reason:` and `log:` lines, and its log's tail."""
    facts, tail = [], []
    if result.failed_step:
        facts.append(f"command: {result.failed_step}")
    if result.reason:
        facts.append(f"reason: {result.reason}")
    if result.log and result.log.is_file() and not tail_lines:  # where the log is, nothing of what it says
        facts.append(f"log: {relative(result.log, root)}")
    elif result.log and result.log.is_file():
        tail = result.log.read_text(encoding="utf-8", errors="replace").splitlines()[-tail_lines:]
        facts.append(f"log: {relative(result.log, root)} (last {len(tail)} lines)")
    return facts, tail


def failure_details(result: TaskResult, root: Path, tail_lines: int = LOG_TAIL_LINES) -> str:
    """The failing target, its command and the tail of its log (none with `tail_lines=0`)."""
    facts, tail = failure_facts(result, root, tail_lines)
    return "\n".join([f"error: {result.task.id} failed", *(f"  {f}" for f in facts), *(f"  | {t}" for t in tail)])
