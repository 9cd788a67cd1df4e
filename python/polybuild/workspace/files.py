"""The workspace's file listing: one `git ls-files` call (so .gitignore is honoured), or a walk outside git.

Every discoverer reads this one listing instead of walking the tree again.
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

# Never part of a workspace's sources when walking without git.
SKIP_DIRS = frozenset({
    ".git", ".hg", ".svn", "target", "node_modules", ".venv", "venv", "__pycache__", ".nox", ".tox", "dist",
    ".polybuild", ".mypy_cache", ".pytest_cache", ".ruff_cache",
})
WORKSPACE_MARKERS = ("polybuild.toml",)
# Never inputs even when present on disk: bytecode, coverage data, editor droppings.
SKIP_FILES = ("*.pyc", "*.pyo", ".coverage", ".coverage.*", ".DS_Store", "*.swp", "*.swo", "*~")
# Build tools' output directories (setuptools' build/): not walked unless git lists files in them (then a source
# directory that happens to have the name, such as a Go package `build`).
OUTPUT_DIRS = frozenset({"build", ".eggs", "htmlcov"})


@dataclass(frozen=True)
class Listing:
    files: list[str]  # sorted, relative to the root
    untracked: frozenset[str] | None  # files git does not track yet; None outside git
    # Tracked files a sparse checkout left out of the work tree (skip-worktree): path -> "mode blob-id" from the index
    absent: dict[str, str] = field(default_factory=dict)


def list_files(root: Path, exclude: list[str]) -> Listing:
    """Sorted POSIX paths relative to `root`, without excluded paths and nested polybuild workspaces."""
    tagged = _git_files(root)
    absent: dict[str, str] = {}
    if tagged is None:
        listing, untracked = _walk(root), None
    else:
        untracked = frozenset(p for p, (tag, _) in tagged.items() if tag == "?")
        absent = {p: blob for p, (tag, blob) in tagged.items() if tag == "S" and not os.path.lexists(root / p)}
        listing = [p for p in tagged if p not in absent]
    nested = _nested_workspaces(root, listing)

    def kept(p: str) -> bool:
        return not _excluded(p, exclude) and not _under(p, nested)

    return Listing(sorted(p for p in listing if kept(p)), untracked, {p: b for p, b in absent.items() if kept(p)})


def _git_files(root: Path) -> dict[str, tuple[str, str]] | None:
    """path -> (git's status tag ("?" untracked, "S" skip-worktree), "mode blob-id" from the index, or "" when
    untracked), from the run's one `git ls-files` call."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "-t", "--stage", "--cached", "--others", "--deleted", "--exclude-standard",
             "--deduplicate"],
            cwd=root, capture_output=True, check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    tagged: dict[str, tuple[str, str]] = {}
    deleted: set[str] = set()
    for entry in out.decode("utf-8", "surrogateescape").split("\0"):
        tag, _, rest = entry.partition(" ")
        if tag == "?":
            name, blob = rest, ""
        else:  # "mode blob-id stage\tpath"
            stage, _, name = rest.partition("\t")
            blob = " ".join(stage.split(" ")[:2])
        if tag == "R":  # tracked but deleted from the work tree (listed again, as "H")
            deleted.add(name)
        elif name:
            tagged.setdefault(name, (tag, blob))
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


@dataclass(frozen=True)
class DiskFiles:
    files: list[str]  # on disk under the walked directories but not in the listing (gitignored, generated)
    dirs: list[str]  # every directory walked: a file appearing in one of them changes what a build reads


def unlisted_files(root: Path, dirs: list[str], listing: list[str], skip_prefixes: tuple[str, ...],
                   exclude: list[str]) -> DiskFiles:
    """Files on disk below `dirs` (root-relative) that git's listing leaves out, such as gitignored generated code
    or a `_version.py`: a backend may pack them, so they are inputs too. Other tools' outputs and caches
    (`SKIP_DIRS`, polybuild's own `skip_prefixes`, `exclude`), nested repositories and nested polybuild workspaces
    are not walked."""
    listed = set(listing)
    listed_dirs = {p.rpartition("/")[0] for p in listing if "/" in p}
    found: list[str] = []
    walked: list[str] = []
    for top in _topmost(dirs):
        stack = [top]
        while stack:
            rel = stack.pop()
            try:
                entries = list(os.scandir(root / rel if rel != "." else root))
            except OSError:
                continue
            if rel != "." and any(e.name == ".git" for e in entries):
                continue  # a nested repository (a submodule, a vendored checkout)
            walked.append(rel)
            prefix = "" if rel == "." else rel + "/"
            for e in entries:
                path = prefix + e.name
                if e.is_dir(follow_symlinks=False):
                    if _walks_into(e.name, path, listed, skip_prefixes, exclude) and (
                            e.name not in OUTPUT_DIRS or any(d == path or d.startswith(path + "/")
                                                             for d in listed_dirs)):
                        stack.append(path)
                elif path not in listed and not any(fnmatch.fnmatchcase(e.name, p) for p in SKIP_FILES) \
                        and not _excluded(path, exclude):
                    found.append(path)
    return DiskFiles(sorted(found), sorted(walked))


def _walks_into(name: str, path: str, listed: set[str], skip_prefixes: tuple[str, ...], exclude: list[str]) -> bool:
    return not (name in SKIP_DIRS or name.endswith(".egg-info") or (path + "/").startswith(skip_prefixes)
                or any(f"{path}/{marker}" in listed for marker in WORKSPACE_MARKERS) or _excluded(path, exclude))


def _topmost(dirs: list[str]) -> list[str]:
    """The directories of `dirs` not inside another one of them."""
    if "." in dirs:
        return ["."]
    kept: set[str] = set()
    for d in sorted(set(dirs), key=len):
        parts = d.split("/")
        if not any("/".join(parts[:i]) in kept for i in range(1, len(parts))):
            kept.add(d)
    return sorted(kept)


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
