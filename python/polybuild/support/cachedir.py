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
    """The cache's random salt, created on first use: written to a private (0600) temp file and linked into place,
    so two builds starting together agree on one salt and none is ever replaced while in use."""
    import secrets
    import tempfile

    try:
        salt = path.read_bytes()
    except FileNotFoundError:
        salt = b""
    if len(salt) == SALT_BYTES:
        return salt
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".salt.", suffix=".tmp")  # created 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(SALT_BYTES))
        try:
            os.link(tmp, path)
        except FileExistsError:  # another build made one first, or a damaged one is in the way
            if len(path.read_bytes()) != SALT_BYTES:
                os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path.read_bytes()
