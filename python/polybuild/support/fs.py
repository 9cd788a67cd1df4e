"""Files written so that a reader, a crash or a second run never sees half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write via a temp file in the same directory and rename: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode() if isinstance(text, str) else text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; a report is meant to be read
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise



def relative(path: Path, root: Path) -> str:
    """`path` relative to `root` in POSIX form, or as it is when outside."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
