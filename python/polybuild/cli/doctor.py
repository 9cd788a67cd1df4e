"""`polybuild doctor`: which toolchains are found (and their versions) and which hashing core is active."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from polybuild import __version__
from polybuild.support.toolchains import find

_VERSION_ARGS = {
    "cargo": ["--version"],
    "rustc": ["--version"],
    "maturin": ["--version"],
    "go": ["version"],
    "git": ["--version"],
}


def _version(path: str, args: list[str]) -> str:
    try:
        out = subprocess.run([path, *args], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"(cannot run: {exc})"
    return out.strip().splitlines()[0] if out.strip() else "(no version output)"


def report(directory: Path) -> str:
    from polybuild.support import fingerprint

    lines = [f"polybuild {__version__} on Python {sys.version.split()[0]} ({sys.executable})"]
    backend = fingerprint.backend()
    lines.append(f"hashing core: {backend}" + ("" if backend == "native" else
                                               " (pure-Python fallback; install polybuild-core for speed)"))
    for tool, args in _VERSION_ARGS.items():
        path = find(tool)
        lines.append(f"{tool:<8} {_version(path, args) if path else 'not found'}" + (f"  ({path})" if path else ""))
    return "\n".join(lines)
