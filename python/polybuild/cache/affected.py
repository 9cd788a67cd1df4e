"""`polybuild affected [--since REF]`: the targets whose inputs changed since REF, and everything depending on them.
Without REF, the base is the merge base of HEAD with the default branch (`origin/HEAD`'s branch, else main or master).

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
    base: str | None = None  # how `since` was found when none was given: "merge base with origin/main"

    @property
    def described(self) -> str:
        """`<ref>`, or `<ref> (merge base with <branch>)` when polybuild chose it."""
        return f"{self.since} ({self.base})" if self.base else self.since


def _git(ws: Workspace, *args: str) -> str | None:
    """A git query's output, or None when git says no."""
    proc = subprocess.run(["git", *args], cwd=ws.root, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return proc.stdout.strip() if proc.returncode == 0 else None


def default_branch(ws: Workspace) -> str:
    """The branch changes are compared with: `origin/HEAD`'s, else main or master (local, then origin's)."""
    head = _git(ws, "symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD")
    if head:
        return head
    for ref in ("main", "master", "origin/main", "origin/master"):
        if _git(ws, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}") is not None:
            return ref
    raise UserError("cannot tell which branch to compare with: there is no origin/HEAD, and no main or master branch",
                    hint="pass the base explicitly (--since REF, or build --affected REF), or set origin/HEAD with "
                    "`git remote set-head origin --auto`")


def merge_base(ws: Workspace) -> tuple[str, str]:
    """(the merge base of HEAD with the default branch, how it was found)."""
    branch = default_branch(ws)
    base = _git(ws, "merge-base", "HEAD", branch)
    if not base:
        raise UserError(f"HEAD and {branch} have no common commit to compare with",
                        hint="pass the base explicitly (--since REF, or build --affected REF)")
    return base, f"merge base with {branch}"


def _require_git(ws: Workspace) -> None:
    if ws.untracked is None:
        raise UserError(f"{ws.root} is not a git checkout", hint="affected targets are computed with git")


def changed_files(ws: Workspace, since: str) -> list[str]:
    _require_git(ws)
    proc = subprocess.run(["git", "diff", "--name-only", "--relative", "-z", "--no-renames", since], cwd=ws.root,
                          capture_output=True)
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()
        raise UserError(f"cannot compare with '{since}': {detail[0] if detail else 'git diff failed'}",
                        hint="pass a commit, branch or tag that exists here (e.g. origin/main, HEAD~1)")
    diffed = {p for p in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if p}
    own = ws.config.output_prefixes  # polybuild's dist/ and state: never inputs, so never changes
    return sorted(p for p in diffed | ws.untracked if not p.startswith(own))


def affected(ws: Workspace, graph: TargetGraph, since: str | None) -> Affected:
    """What changed since `since` (None: since the merge base with the default branch) affects."""
    import networkx as nx

    from polybuild.cache.inputs import InputIndex

    base = None
    if since is None:
        _require_git(ws)
        since, base = merge_base(ws)
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
    return Affected(since, files, graph.order(hit), base)


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
