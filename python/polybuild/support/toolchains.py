"""Finding toolchains, and saying how to install the ones that are missing."""

from __future__ import annotations

import functools
import os
import shutil
import sys
from pathlib import Path

from polybuild.support.errors import UserError

INSTALL_HINTS = {
    "cargo": "install Rust with rustup (https://rustup.rs), then make sure ~/.cargo/bin is on PATH",
    "rustc": "install Rust with rustup (https://rustup.rs)",
    "go": "install Go from https://go.dev/dl/ (or your package manager) and put it on PATH",
    "maturin": "pip install maturin (in the environment that runs polybuild)",
    "git": "install git",
}


@functools.cache
def find(tool: str) -> str | None:
    """The tool's path: PATH first, then next to the running interpreter (a venv's bin/ need not be on PATH)."""
    found = shutil.which(tool)
    if found:
        return found
    candidate = Path(sys.executable).parent / tool
    return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None


def require(tool: str, needed_by: str) -> str:
    """The tool's path, or a UserError naming who needs it and how to install it."""
    path = find(tool)
    if path is None:
        raise UserError(f"{tool} is not installed (needed by {needed_by})", hint=INSTALL_HINTS.get(tool))
    return path

