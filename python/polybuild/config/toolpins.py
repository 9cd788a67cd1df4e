"""The build-tool pins a workspace commits: the `[[tool]]` tables of its polybuild.lock, so that every machine and
every CI runner provisions the same tool versions and computes the same cache keys (MISSION.md §3.3: pin the tools
and use the same ones everywhere).

A requirement set with no pins (new, or changed in a pyproject's [build-system] requires) is resolved and written
into the lock, and said in one line; in locked mode (`CI` or `POLYBUILD_LOCKED` set to true) that is an error naming
the lock and the command that fixes it, never a silent resolve. `polybuild lock upgrade --tools` re-resolves every
set; `polybuild lock check` reports pins missing or no longer used."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from polybuild.config import includelock
from polybuild.config.includelock import LockFile, ToolEntry
from polybuild.support.errors import UserError

LOCKED_VARIABLES = ("CI", "POLYBUILD_LOCKED")
UPGRADE = "polybuild lock upgrade --tools"


def locked_mode(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the tool pins must already be committed: under CI, or when asked (`POLYBUILD_LOCKED=1`)."""
    return any(environ.get(name, "").strip().lower() in ("1", "true", "yes") for name in LOCKED_VARIABLES)


def python_range() -> str:
    """The Pythons the pins are resolved for (the requires-python of every `[[tool]]`)."""
    from polybuild.support.toolenvs import TOOLS_PYTHON

    return ">=" + ".".join(map(str, TOOLS_PYTHON))


class ToolPins:
    """The `[[tool]]` pins of one workspace's polybuild.lock, read when a tool is first provisioned."""

    def __init__(self, path: Path, display: str, tools_dir: Path, locked: bool,
                 in_use: Callable[[], set[tuple[str, ...]]] | None = None) -> None:
        self.path = path  # the workspace's polybuild.lock
        self.display = display
        self.tools_dir = tools_dir  # <cache>/tools: scratch space for resolving
        self.locked = locked
        self.in_use = in_use  # the requirement sets the workspace provisions now: pins of others are dropped
        self._lock = threading.Lock()

    @classmethod
    def of(cls, root: Path, config_file: Path | None, tools_dir: Path, locked: bool,
           in_use: Callable[[], set[tuple[str, ...]]] | None = None) -> ToolPins:
        """The pins beside the workspace's config file (the includes' lock), else in the root's polybuild.lock."""
        path = includelock.lock_path(config_file) if config_file else root / "polybuild.lock"
        display = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        return cls(path, display, tools_dir, locked, in_use)

    def read(self) -> LockFile:
        return includelock.read(self.path, self.display) or LockFile(None, {})

    def pinned(self, requirements: tuple[str, ...], python: str) -> str:
        """The committed pins of `requirements`; missing ones are resolved and written (an error in locked mode)."""
        key = tuple(sorted(set(requirements)))
        with self._lock:
            entry = self._current(self.read(), key)
            if entry is not None:
                return entry.pins
            if self.locked:
                raise self._missing(key)
            from polybuild.support.runlock import file_lock
            from polybuild.support.toolenvs import resolve

            with file_lock(self.tools_dir / "pinning.lock", f"polybuild: waiting for another polybuild run pinning "
                           f"build tools in {self.display}..."):
                lock = self.read()  # another run may have pinned them meanwhile
                entry = self._current(lock, key)
                if entry is None:
                    entry = ToolEntry(key, python_range(), resolve(key, python, self.tools_dir))
                    if self.in_use is not None:  # a set that changed replaces its old pins
                        used = self.in_use()
                        lock.tools = {k: v for k, v in lock.tools.items() if k in used}
                    lock.tools[key] = entry
                    includelock.write(self.path, lock)
                    print(f"polybuild: locked build tools {self.summary(entry)} into {self.display}", file=sys.stderr)
            return entry.pins

    def replace(self, sets: Iterable[tuple[str, ...]], python: str) -> list[ToolEntry]:
        """Re-resolve every requirement set in `sets` now and keep only those in the lock (`lock upgrade --tools`)."""
        from polybuild.support.toolenvs import resolve

        keys = sorted({tuple(sorted(set(s))) for s in sets})
        entries = [ToolEntry(key, python_range(), resolve(key, python, self.tools_dir)) for key in keys]
        with self._lock:
            lock = self.read()
            lock.tools = {e.requirements: e for e in entries}
            includelock.write(self.path, lock)
        return entries

    def problems(self, sets: Iterable[tuple[str, ...]]) -> list[str]:
        """`lock check`: a requirement set the workspace provisions with no current pins, and pins no set uses."""
        lock = self.read()
        wanted = {tuple(sorted(set(s))) for s in sets}
        out = [f"{self.display}: no pins for the build tools {', '.join(key)} (new or changed since it was "
               f"written); fix: run `{UPGRADE}` and commit {self.display}"
               for key in sorted(wanted) if self._current(lock, key) is None]
        out += [f"{self.display}: pins for {', '.join(key)}, which nothing in the workspace needs any more; fix: run "
                f"`{UPGRADE}` and commit {self.display}" for key in sorted(set(lock.tools) - wanted)]
        return out

    @staticmethod
    def summary(entry: ToolEntry) -> str:
        """The pins of the requirements themselves (`build==1.2, hatchling==1.27`), not of their dependencies."""
        from packaging.requirements import Requirement
        from packaging.utils import canonicalize_name

        from polybuild.support.toolenvs import pins_of

        pins = pins_of(entry.pins)
        names = sorted({canonicalize_name(Requirement(r).name) for r in entry.requirements})
        return ", ".join(f"{name}=={pins[name]}" for name in names if name in pins)

    def _current(self, lock: LockFile, key: tuple[str, ...]) -> ToolEntry | None:
        entry = lock.tools.get(key)
        return entry if entry is not None and entry.python == python_range() else None

    def _missing(self, key: tuple[str, ...]) -> UserError:
        stale = "they changed since it was written, or were never pinned" if self.read().tools else \
            "it pins no build tools"
        return UserError(f"{self.display} has no pins for the build tools {', '.join(key)} ({stale}); in CI "
                         f"(locked mode) polybuild does not resolve them itself",
                         hint=f"run `{UPGRADE}` (or a build) outside CI and commit {self.display}")
