"""Where the user's cache lives; a module of its own so that the no-op fast path finds it without importing the
store."""

from __future__ import annotations

import os
from pathlib import Path


def default_dir() -> Path:
    """$POLYBUILD_CACHE_DIR, else $XDG_CACHE_HOME/polybuild, else ~/.cache/polybuild."""
    if os.environ.get("POLYBUILD_CACHE_DIR"):
        return Path(os.environ["POLYBUILD_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "polybuild"


def configured_dir(root: Path, configured: str | None) -> Path:
    """The cache of a workspace: its `cache-dir` (relative to the root, `~` expanded), else the default."""
    path = Path(configured).expanduser() if configured else default_dir()
    return path if path.is_absolute() else root / path
