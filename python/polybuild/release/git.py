"""The git facts a release needs (clean tree, the release commit and its time) and the annotated tag it ends with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from polybuild.support.process import git


@dataclass(frozen=True)
class Commit:
    sha: str
    time: int  # committer time, seconds since 1970: the release's SOURCE_DATE_EPOCH


def uncommitted(root: Path) -> list[str]:
    """Files that differ from HEAD or are untracked (and not ignored): `git status --porcelain` lines."""
    out = git(root, "status", "--porcelain=v1", "--untracked-files=all").stdout
    return [line for line in out.splitlines() if line.strip()]


def head(root: Path) -> Commit:
    sha, _, epoch = git(root, "log", "-1", "--format=%H %ct").stdout.strip().partition(" ")
    return Commit(sha, int(epoch))


def tag_commit(root: Path, tag: str) -> str | None:
    """The commit a tag points at, or None when there is no such tag."""
    proc = git(root, "rev-parse", "-q", "--verify", f"refs/tags/{tag}^{{commit}}", check=False)
    return proc.stdout.strip() or None


def create_tag(root: Path, tag: str, message: str) -> None:
    """An annotated tag at HEAD (annotated: it records who cut the release, and `git describe` finds it)."""
    git(root, "tag", "-a", tag, "-m", message)
