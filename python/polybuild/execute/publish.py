"""What polybuild published into the dist directory, so that dist/ holds exactly what the build report lists.

Every artifact a build task puts into dist/ is recorded in `<state-dir>/published.json` with its task. After a run:
a task that succeeded keeps only what it produced this time (an old-version wheel goes), a task that failed loses
its old artifacts (they no longer match its sources), and a task whose target no
longer exists loses them too. Files polybuild never wrote are never touched. The report lists every recorded
artifact, so it describes all of dist/ even after a build of a few targets.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polybuild.builders import BuildContext
    from polybuild.execute.scheduler import TaskResult
    from polybuild.workspace import Workspace

FORMAT = 1
FILE = "published.json"


def update(ctx: BuildContext, results: list[TaskResult]) -> list[dict[str, Any]]:
    """Bring dist/ and the record up to date after a run; every published artifact, this run's first."""
    from polybuild.support.fs import relative, write_atomic

    root = ctx.ws.root
    dist = relative(Path(os.path.normpath(ctx.ws.config.dist_dir)), root) + "/"
    record_path = ctx.state_dir / FILE
    published = _load(record_path, dist)
    before = json.dumps(published, sort_keys=True)
    ran: list[dict[str, Any]] = []
    for r in results:
        if r.task.action != "build":
            continue
        if r.status not in ("built", "cached", "failed"):
            continue  # not run (the build stopped early, or was cancelled): its artifacts are what they were
        fresh = [_entry(a, root) for a in r.artifacts]
        keep = {e["path"] for e in fresh}
        for path, old in list(published.items()):
            if old["task"] == r.task.id and path not in keep:
                _remove(root, dist, path)
                del published[path]
        for e in fresh:
            published[e["path"]] = e
        ran += fresh
    for path, old in list(published.items()):  # targets that are gone, and files deleted by hand
        if old["target"] not in ctx.ws.targets or not (root / path).is_file():
            _remove(root, dist, path)
            del published[path]
    if json.dumps(published, sort_keys=True) != before or not record_path.is_file():  # a no-op writes nothing
        write_atomic(record_path, json.dumps({"format": FORMAT, "artifacts": published}, indent=1, sort_keys=True),
                     durable=False)
    shown = {e["path"] for e in ran}
    return ran + [published[p] for p in sorted(published) if p not in shown]


def remove_all(ws: Workspace) -> list[tuple[str, int]]:
    """`polybuild clean`: delete every artifact the record lists (files polybuild never wrote stay), then the
    record; each removed path with its size. The caller holds the workspace lock."""
    from polybuild.support.fs import relative

    root = ws.root
    dist = relative(Path(os.path.normpath(ws.config.dist_dir)), root) + "/"
    record_path = ws.config.state_dir / FILE
    removed = []
    for path in sorted(_load(record_path, dist)):
        full = root / path
        if full.is_file() and not full.is_symlink():
            removed.append((path, full.stat().st_size))
        _remove(root, dist, path)
    record_path.unlink(missing_ok=True)
    return removed


def _entry(artifact: Any, root: Path) -> dict[str, Any]:
    from polybuild.support.fs import relative

    return {"target": artifact.target, "task": artifact.task, "variant": artifact.variant,
            "platform": artifact.platform, "path": relative(artifact.path, root),
            "sha256": artifact.sha256, "size": artifact.size}


def _load(path: Path, dist: str) -> dict[str, dict[str, Any]]:
    """The record; entries that are not plain files below dist/ are dropped (a damaged record only forgets)."""
    try:
        data = json.loads(path.read_bytes())
        artifacts = data["artifacts"] if data.get("format") == FORMAT else {}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}
    if not isinstance(artifacts, dict):
        return {}
    keys = {"target", "task", "variant", "platform", "path", "sha256", "size"}
    return {p: e for p, e in artifacts.items()
            if isinstance(e, dict) and set(e) == keys and e["path"] == p and _inside(p, dist)}


def _inside(path: str, dist: str) -> bool:
    return path.startswith(dist) and ".." not in path.split("/")


def _remove(root: Path, dist_prefix: str, path: str) -> None:
    """Delete a published file and the directories it leaves empty (up to dist/ itself)."""
    full = root / path
    full.unlink(missing_ok=True)
    parent = full.parent
    dist = root / dist_prefix
    while parent != dist and parent.is_relative_to(dist):
        try:
            parent.rmdir()
        except OSError:
            break
        parent = parent.parent
