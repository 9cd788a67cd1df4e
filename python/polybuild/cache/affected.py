"""`polybuild affected --since REF`: the targets whose inputs changed since REF, and everything depending on them.

Changed files come from one `git diff --name-only --relative REF` (committed and uncommitted changes) plus the untracked
files of the run's listing; each is mapped to the targets whose inputs contain it.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

from polybuild.support.errors import UserError

if TYPE_CHECKING:
    from polybuild.graph import TargetGraph
    from polybuild.workspace import Workspace


@dataclass
class Affected:
    since: str
    changed_files: list[str]
    targets: list[str]  # changed targets and their dependents, dependencies first


def changed_files(ws: Workspace, since: str) -> list[str]:
    if ws.untracked is None:
        raise UserError(f"{ws.root} is not a git checkout", hint="affected targets are computed with git")
    proc = subprocess.run(["git", "diff", "--name-only", "--relative", "-z", "--no-renames", since], cwd=ws.root,
                          capture_output=True)
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()
        raise UserError(f"cannot compare with '{since}': {detail[0] if detail else 'git diff failed'}",
                        hint="pass a commit, branch or tag that exists here (e.g. origin/main, HEAD~1)")
    diffed = {p for p in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if p}
    own = ws.config.output_prefixes  # polybuild's dist/ and state: never inputs, so never changes
    return sorted(p for p in diffed | ws.untracked if not p.startswith(own))


def affected(ws: Workspace, graph: TargetGraph, since: str) -> Affected:
    import networkx as nx

    from polybuild.cache.inputs import InputIndex

    files = changed_files(ws, since)
    config_files = {ws.rel(f) for f in (ws.config.file.path, *ws.config.inputs)} if ws.config.file else set()
    if config_files.intersection(files):
        hit = set(ws.targets)  # the config shapes every target's build
    else:
        index = InputIndex(ws, graph)
        owners: dict[str, set[str]] = {}
        for t in ws.targets.values():
            for f in index.files(t):
                owners.setdefault(f, set()).add(t.id)
        hit = set()
        for f in files:
            hit |= owners.get(f) or _owner_by_directory(ws, f)
    digraph = graph.to_networkx()
    for tid in list(hit):
        hit |= nx.ancestors(digraph, tid)
    return Affected(since, files, graph.order(hit))


def _owner_by_directory(ws: Workspace, path: str) -> set[str]:
    """A deleted file is in no listing: it belongs to the target with the deepest directory containing it."""
    best, depth = set(), -1
    for t in ws.targets.values():
        d = ws.rel(t.dir)
        if t.kind != "image" and (d == "." or path.startswith(d + "/")):
            n = 0 if d == "." else d.count("/") + 1
            if n > depth:
                best, depth = {t.id}, n
            elif n == depth:
                best.add(t.id)
    return best
