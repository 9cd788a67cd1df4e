"""Lockfile preflight: every Cargo.lock, go.sum and uv.lock is fresh, every locked Python package has a
wheel (or an sdist) for each target platform, and the build tools pinned in polybuild.lock are current.

Kept light (the CLI imports this package to register its command): the work lives in `preflight` and the
per-ecosystem modules, imported when called.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from polybuild.api import Loaded


@dataclass
class LockReport:
    """What the preflight found: `problems` are full user-facing lines (file, what is wrong, how to fix); `digests`
    maps each lockfile's workspace-relative path to the sha256 of its bytes (for the release manifest)."""

    problems: list[str] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # worth saying, not failures (an unpinned uv, a Python swap)
    checked: list[str] = field(default_factory=list)  # the targets the wheels were checked for ("linux/arm64, ...")
    remembered: list[str] = field(default_factory=list)  # locks answered from the cache: unchanged since they passed

    @property
    def ok(self) -> bool:
        return not self.problems


def preflight(loaded: Loaded, platforms: Sequence[str] = (), pythons: Sequence[str] = (), *,
              use_cache: bool = True) -> LockReport:
    """Check every lockfile of the workspace (polybuild.lock's tool pins too), and the wheels of every uv.lock for
    each platform and Python (default: the config's `platforms`, else the host; `lockfiles.python`, else the
    interpreter's version); checks that passed before on the same inputs, tools and platform are not re-run unless
    `use_cache` is False."""
    from polybuild.lockfiles import tools
    from polybuild.lockfiles.preflight import check

    report = check(loaded.ws, list(platforms), list(pythons), use_cache=use_cache)
    report.problems += tools.check(loaded)  # the build tools pinned in polybuild.lock
    return report
