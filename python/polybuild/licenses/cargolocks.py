"""Cargo workspaces without a `Cargo.lock`: every one reported at once, or (with `[licenses] generate-cargo-locks`)
resolved in polybuild's cache, never in the tree.

Some repositories ignore nested locks on purpose (bindings resolved by their own ecosystem's tooling). Cargo writes
a lock next to the workspace's root manifest and has no stable option to put it elsewhere, so polybuild resolves a
shadow of the repository instead: real directories from the repository root down to each such workspace, every
other entry a symlink to the real one. Cargo joins relative paths lexically, so members and path dependencies
(`../../core`) resolve to the real files, and the lock it writes lands in the shadow directory in the cache. The
first resolution needs the registry (`cargo generate-lockfile`, then `cargo fetch`); later scans read the cached
lock offline, and Cargo updates it there when the manifests change.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from polybuild.support.errors import UserError

SWITCH = "[licenses] generate-cargo-locks = true"


def missing(roots: list[Path]) -> list[Path]:
    """The Cargo workspace roots that have no Cargo.lock on disk."""
    return [root for root in roots if not (root / "Cargo.lock").is_file()]


def missing_error(repo: Path, roots: list[Path]) -> UserError:
    """One error for every workspace without a lock, with the one command that creates them all."""
    manifests = [_relative(root / "Cargo.toml", repo) for root in roots]
    command = " && ".join(f"cargo generate-lockfile --manifest-path {shlex.quote(m)}" for m in manifests)
    listed = "\n".join(f"  {m}" for m in manifests)
    return UserError(f"{len(roots)} Cargo workspace(s) have no Cargo.lock, so what they ship is unknown:\n{listed}",
                     hint=f"create them with `{command}` and commit them; if the repository ignores these locks on "
                     f"purpose, set `{SWITCH}` in the polybuild config to resolve them in polybuild's cache instead")


@dataclass(frozen=True)
class Shadow:
    """A workspace resolved in the cache: the manifest cargo reads, inside a shadow of the repository at `root`."""

    manifest: Path
    root: Path
    repo: Path

    def real(self, path: Path) -> Path:
        """A path cargo reported inside the shadow, as the repository's path."""
        try:
            return self.repo / path.relative_to(self.root)
        except ValueError:
            return path


def shadows(repo: Path, roots: list[Path], cache: Path) -> dict[Path, Shadow]:
    """Workspace root -> its shadow, in a shadow of `repo` (one per repository) whose locks are cached."""
    shadow = cache / "cargo-locks" / hashlib.sha256(str(repo.resolve()).encode()).hexdigest()[:16]
    rels = [root.resolve().relative_to(repo.resolve()) for root in roots]
    real_dirs = {Path(*rel.parts[:i]) for rel in rels for i in range(len(rel.parts) + 1)}
    for rel in sorted(real_dirs):
        _mirror_dir(repo / rel, shadow / rel, {d.name for d in real_dirs if d.parent == rel and d != rel},
                    keep_lock=rel in rels)
    return {root: Shadow(shadow / rel / "Cargo.toml", shadow, repo) for root, rel in zip(roots, rels, strict=True)}


def generate(manifest: Path, run) -> None:
    """Resolve a shadow workspace once (the registry is needed) and download what it locks; `run(argv, manifest,
    offline)` is the inventory's cargo runner."""
    if (manifest.parent / "Cargo.lock").is_file():
        return
    from polybuild.support.toolchains import require

    cargo = require("cargo", f"a Cargo.lock for {manifest}")
    run([cargo, "generate-lockfile", "--manifest-path", str(manifest)], manifest, False)
    run([cargo, "fetch", "--locked", "--manifest-path", str(manifest)], manifest, False)


def _mirror_dir(real: Path, shadow: Path, real_children: set[str], keep_lock: bool) -> None:
    """`shadow` as a real directory whose entries link to `real`'s (except the directories on a path to a shadowed
    workspace, and the workspace's own Cargo.lock); links to entries that no longer exist are removed."""
    shadow.mkdir(parents=True, exist_ok=True)
    wanted = {entry.name for entry in real.iterdir()} - real_children - ({"Cargo.lock"} if keep_lock else set())
    for entry in shadow.iterdir():
        if entry.is_symlink() and entry.name not in wanted:
            entry.unlink()
    for name in sorted(wanted):
        link = shadow / name
        if not link.is_symlink() and not link.exists():
            os.symlink(real / name, link)


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)
