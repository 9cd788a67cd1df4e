"""Finding toolchains, and saying how to install the ones that are missing."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from polybuild.support.errors import UserError

INSTALL_HINTS = {
    "cargo": "install Rust with rustup (https://rustup.rs), then make sure ~/.cargo/bin is on PATH",
    "rustc": "install Rust with rustup (https://rustup.rs)",
    "go": "install Go from https://go.dev/dl/ (or your package manager) and put it on PATH",
    "maturin": "pip install maturin (in the environment that runs polybuild)",
    "git": "install git",
    "uv": "pip install uv (polybuild provisions missing build tools with it)",
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


_PYTHON_PROBE = ("import sys, sysconfig; print(sys.version); print(sys.implementation.name, "
                 "sysconfig.get_config_var('SOABI'), sysconfig.get_platform())")


@dataclass(frozen=True)
class PythonFacts:
    """What an interpreter says of itself: `sys.version`, then its implementation, SOABI and platform."""

    output: str  # what the probe printed (stdout, then stderr), or why it could not start: cache keys hash this
    ran: bool  # the probe exited 0

    @property
    def version(self) -> tuple[int, int] | None:
        """(major, minor), from `sys.version`'s leading X.Y; None when the interpreter did not answer."""
        match = re.match(r"(\d+)\.(\d+)", self.output) if self.ran else None
        return (int(match[1]), int(match[2])) if match else None


@functools.cache
def python_facts(python: str) -> PythonFacts:
    """The one probe of an interpreter (`python.interpreter`, a CI job's Python), run once per process: the cache
    keys of Python builds, the lock check's default Python version and CI's interpreter lookup all read it."""
    try:
        proc = subprocess.run([python, "-c", _PYTHON_PROBE], capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return PythonFacts(f"python: {exc}", ran=False)
    return PythonFacts(proc.stdout + proc.stderr, ran=proc.returncode == 0)
