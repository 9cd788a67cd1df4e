"""Where the user's cache lives; a module of its own so that the no-op fast path finds it without importing the
store."""

from __future__ import annotations

import os
from pathlib import Path

SALT_BYTES = 32


def default_dir() -> Path:
    """$POLYBUILD_CACHE_DIR, else $XDG_CACHE_HOME/polybuild, else ~/.cache/polybuild."""
    if os.environ.get("POLYBUILD_CACHE_DIR"):
        return Path(os.environ["POLYBUILD_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "polybuild"


def for_workspace(root: Path, configured: str | None) -> Path:
    """A workspace's cache: its `cache-dir` (relative to the workspace root), else the default."""
    if not configured:
        return default_dir()
    path = Path(configured).expanduser()
    return path if path.is_absolute() else root / path


def load_salt(path: Path) -> bytes:
    """The cache's random salt, created on first use: private (0600) and linked into place, so two builds starting
    together agree on one salt and none is ever replaced while in use."""
    import secrets

    from polybuild.support.fs import link_once, write_atomic

    try:
        salt = path.read_bytes()
    except FileNotFoundError:
        salt = b""
    if len(salt) == SALT_BYTES:
        return salt
    fresh = secrets.token_bytes(SALT_BYTES)
    if not link_once(path, fresh, mode=0o600) and len(path.read_bytes()) != SALT_BYTES:
        write_atomic(path, fresh, mode=0o600)  # a damaged one was in the way
    return path.read_bytes()
