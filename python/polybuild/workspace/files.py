"""The workspace's file listing: one `git ls-files` call (so .gitignore is honoured), or a walk outside git.

Every discoverer reads this one listing instead of walking the tree again.
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Never part of a workspace's sources when walking without git.
SKIP_DIRS = frozenset({
    ".git", ".hg", ".svn", "target", "node_modules", ".venv", "venv", "__pycache__", ".nox", ".tox", "dist",
    ".polybuild", ".mypy_cache", ".pytest_cache", ".ruff_cache",
})
WORKSPACE_MARKERS = ("polybuild.toml",)


@dataclass(frozen=True)
class Listing:
    files: list[str]  # sorted, relative to the root
    untracked: frozenset[str] | None  # files git does not track yet; None outside git


def list_files(root: Path, exclude: list[str]) -> Listing:
    """Sorted POSIX paths relative to `root`, without excluded paths and nested polybuild workspaces."""
    tagged = _git_files(root)
    if tagged is None:
        listing, untracked = _walk(root), None
    else:
        listing = list(tagged)
        untracked = frozenset(p for p, tag in tagged.items() if tag == "?")
    nested = _nested_workspaces(root, listing)
    return Listing(sorted(p for p in listing if not _excluded(p, exclude) and not _under(p, nested)), untracked)


def _git_files(root: Path) -> dict[str, str] | None:
    """path -> git's status tag ("?" for untracked), from the run's one `git ls-files` call."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "-t", "--cached", "--others", "--deleted", "--exclude-standard",
             "--deduplicate"],
            cwd=root, capture_output=True, check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    tagged: dict[str, str] = {}
    deleted: set[str] = set()
    for entry in out.decode("utf-8", "surrogateescape").split("\0"):
        tag, _, name = entry.partition(" ")
        if tag == "R":  # tracked but deleted from the work tree (listed again, as "H")
            deleted.add(name)
        elif name:
            tagged.setdefault(name, tag)
    for name in deleted:
        tagged.pop(name, None)
    return tagged


def _walk(root: Path) -> list[str]:
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        rel = os.path.relpath(dirpath, root)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        found.extend(prefix + f for f in filenames)
    return found


def _nested_workspaces(root: Path, listing: list[str]) -> list[str]:
    """Directories below the root with their own polybuild config: built on their own, not as part of this one."""
    nested = []
    for p in listing:
        d, _, name = p.rpartition("/")
        if not d:
            continue
        if name in WORKSPACE_MARKERS or (name == "pyproject.toml" and _declares_workspace(root / p)):
            nested.append(d)
    return nested


def _declares_workspace(pyproject: Path) -> bool:
    try:
        return "\n[tool.polybuild]" in "\n" + pyproject.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False


def _under(path: str, dirs: list[str]) -> bool:
    return any(path.startswith(d + "/") for d in dirs)


def _excluded(path: str, patterns: list[str]) -> bool:
    """A pattern excludes a path when it matches the path or one of its parent directories."""
    if not patterns:
        return False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatchcase(p, pat.rstrip("/")) for pat in patterns for p in prefixes)


def under_dir(listing: list[str], rel_dir: str) -> list[str]:
    """The listed files inside `rel_dir` ("." for the root), relative to the root."""
    if rel_dir in ("", "."):
        return listing
    prefix = rel_dir.rstrip("/") + "/"
    return [p for p in listing if p.startswith(prefix)]


def head_revision(root: Path) -> str | None:
    """The commit checked out at `root`, read from .git without starting git (None outside a checkout)."""
    for d in (root, *root.parents):
        git = d / ".git"
        if git.is_file():  # a worktree or submodule: "gitdir: <path>"
            git = (d / git.read_text().split(":", 1)[1].strip()).resolve()
        if not git.is_dir():
            continue
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        common = git / "commondir"
        bases = [git, (git / common.read_text().strip()).resolve()] if common.is_file() else [git]
        for base in bases:
            if (base / ref).is_file():
                return (base / ref).read_text().strip()
            packed = base / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split(" ", 1)[0]
        return None
    return None
