"""Command-line entry (registered in `polybuild.cli.main.FEATURE_COMMANDS`): `polybuild clean`.

It removes only what is polybuild's: the artifacts it published into dist/ (as its record lists them) and the
build report, the state directory, or the local cache; under the workspace lock, so it never races a build.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from polybuild.support.errors import UserError

if TYPE_CHECKING:
    from polybuild.workspace import Workspace

# What a polybuild cache directory holds at its top level (support/cachedir, cache/store, fastpath, helper, ...)
_CACHE_MARKERS = ("salt", "ac.sqlite", "cas")


def register(sub, parser_class: type[argparse.ArgumentParser]) -> None:
    """Add `polybuild clean` to the `polybuild` parser."""
    clean = sub.add_parser(
        "clean", help="remove polybuild's outputs, state or local cache (default: outputs and state)",
        description="Removes only what polybuild wrote: the artifacts it published into the dist directory and "
        "its build report (other files there stay), the state directory (.polybuild/), or the local cache.")
    clean.add_argument("--outputs", action="store_true", help="the published artifacts and the build report")
    clean.add_argument("--state", action="store_true", help="the state directory (logs, records, memos)")
    clean.add_argument("--cache", action="store_true", help="the local cache (shared by the workspaces using it)")
    clean.add_argument("--all", action="store_true", help="outputs, state and cache")
    clean.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from polybuild.api import load
    from polybuild.support.runlock import workspace_lock

    ws = load(Path(args.directory), args.config).ws
    chosen = {"outputs": args.outputs or args.all, "state": args.state or args.all, "cache": args.cache or args.all}
    if not any(chosen.values()):
        chosen.update(outputs=True, state=True)
    cache = _cache_dir(ws) if chosen["cache"] else None  # refused before anything is removed
    freed = 0
    with workspace_lock(ws.config.state_dir):
        if chosen["outputs"]:
            freed += _outputs(ws)
        if chosen["state"]:
            state = ws.config.state_dir
            freed += _remove_contents(state, ws.rel(state) + "/", keep={"lock", ".gitignore"})
    if cache is not None:
        freed += _remove_contents(cache, str(cache) + "/")
    print(f"polybuild: clean: freed {freed:,} bytes", file=sys.stderr)
    return 0


def _outputs(ws: Workspace) -> int:
    from polybuild.execute import publish
    from polybuild.execute.report import FILE_NAME

    removed = publish.remove_all(ws)
    report = ws.config.dist_dir / FILE_NAME
    if report.is_file() and not report.is_symlink():
        removed.append((ws.rel(report), report.stat().st_size))
        report.unlink()
    dist = ws.config.dist_dir
    if dist.is_dir() and not any(dist.iterdir()):
        dist.rmdir()
    size = sum(n for _, n in removed)
    print(f"removed {len(removed)} file(s) from {ws.rel(dist)}/ ({size:,} bytes)", file=sys.stderr)
    return size


def _cache_dir(ws: Workspace) -> Path:
    """The local cache, when it is one: never a directory holding the workspace, nor one polybuild did not make."""
    from polybuild.support.cachedir import for_workspace

    cache = Path(os.path.abspath(for_workspace(ws.root, ws.config["cache-dir"])))
    if ws.root.resolve().is_relative_to(cache.resolve()) or cache.resolve() == Path.home().resolve():
        raise UserError(f"not removing the cache directory {cache}: it holds the workspace (or your home)",
                        hint="point cache-dir or $POLYBUILD_CACHE_DIR at a directory of its own")
    if cache.is_dir() and any(cache.iterdir()) and not any((cache / m).exists() for m in _CACHE_MARKERS):
        raise UserError(f"not removing {cache}: it does not look like a polybuild cache (no salt, ac.sqlite or cas)",
                        hint="check cache-dir and $POLYBUILD_CACHE_DIR")
    return cache


def _remove_contents(directory: Path, shown: str, keep: frozenset[str] | set[str] = frozenset()) -> int:
    """Delete what `directory` holds (symlinks are removed, never followed), except `keep`; the bytes freed."""
    if not directory.is_dir():
        print(f"removed nothing from {shown} (it does not exist)", file=sys.stderr)
        return 0
    size = 0
    for entry in directory.iterdir():
        if entry.name in keep:
            continue
        size += _size(entry)
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    print(f"removed {shown} ({size:,} bytes)", file=sys.stderr)
    return size


def _size(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size
    total = 0
    for top, _, files in os.walk(path):  # does not follow symlinked directories
        total += sum(os.lstat(os.path.join(top, f)).st_size for f in files)
    return total
