"""Lock-like package sets for Python projects without a uv.lock: `uv pip compile --format pylock.toml` for one target
platform and Python, cached in polybuild's cache under the digest of what decides the answer (the requirements, the
project's [tool.uv] settings, the platform). Resolving needs the index, so it happens only with `--fetch`; afterwards
the cached resolution is read offline, and the same requirements resolve the same way until they change."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from polybuild.support.errors import UserError

if TYPE_CHECKING:
    from polybuild.workspace import Target
    from polybuild.workspace.pythonlock import Target as Platform

TIMEOUT = 900  # seconds for one resolution (large ML stacks take minutes on a cold uv cache)
# uv's index settings from the environment: they change what resolves (e.g. a vendor index for packages that PyPI
# holds only as sdists that cannot be built here).
_INDEX_VARIABLES = ("UV_INDEX", "UV_DEFAULT_INDEX", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS")
# uv's names for target platforms (`--python-platform`), by polybuild os/arch.
_TRIPLES = {("linux", "amd64"): "x86_64", ("linux", "arm64"): "aarch64", ("darwin", "amd64"): "x86_64-apple-darwin",
            ("darwin", "arm64"): "aarch64-apple-darwin", ("windows", "amd64"): "x86_64-pc-windows-msvc",
            ("windows", "arm64"): "aarch64-pc-windows-msvc"}


def python_platform(platform: Platform) -> str:
    """uv's `--python-platform` for a target: manylinux at the configured glibc, musl, macOS or Windows."""
    os_name, arch = platform.platform.os, platform.platform.arch
    triple = _TRIPLES[(os_name, arch)]
    if os_name != "linux":
        return triple
    if platform.musl:
        return f"{triple}-unknown-linux-musl"
    return f"{triple}-manylinux_{platform.glibc[0]}_{platform.glibc[1]}"


def location(cache: Path, platform: Platform, requirements: list[str], target: Target) -> Path:
    """Where the resolution of these requirements for this platform is cached."""
    python = f"{platform.python[0]}.{platform.python[1]}"
    indexes = [os.environ.get(name, "") for name in _INDEX_VARIABLES]  # hashed, never stored in clear
    key = hashlib.sha256(json.dumps([requirements, _uv_settings(target), python_platform(platform), python,
                                     indexes]).encode())
    return cache / "resolved" / f"pylock.{key.hexdigest()[:32]}.toml"


def resolve(path: Path, platform: Platform, requirements: list[str], target: Target, label: str) -> None:
    """Resolve with uv (it needs the index) into the cache entry `path`."""
    _compile(requirements, target, label, path, f"{platform.python[0]}.{platform.python[1]}",
             python_platform(platform))


def _uv_settings(target: Target) -> dict:
    """The project's [tool.uv] table (indexes, overrides, constraints): it changes what resolves."""
    from polybuild.support import tomlfile

    return tomlfile.load(target.manifest, target.manifest.name).data.get("tool", {}).get("uv", {})


def _compile(requirements: list[str], target: Target, label: str, path: Path, python: str, triple: str) -> None:
    """Run uv in a scratch directory beside the cache entry and rename its output into place."""
    from polybuild.support.fs import move_into_place
    from polybuild.support.toolchains import require

    uv = require("uv", f"resolving the requirements of {label} (there is no uv.lock)")
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=path.parent, prefix=".resolve."))
    try:
        (scratch / "requirements.in").write_text("".join(f"{r}\n" for r in requirements), encoding="utf-8")
        out = scratch / "pylock.toml"
        argv = [uv, "pip", "compile", str(scratch / "requirements.in"), "--format", "pylock.toml", "-o", str(out),
                "--python-platform", triple, "--python-version", python, "--no-header", "--quiet"]
        # Run in the project's directory so its uv.toml / [tool.uv] index settings apply.
        env = {k: v for k, v in os.environ.items() if k not in ("UV_OFFLINE", "UV_FROZEN")}
        try:
            proc = subprocess.run(argv, cwd=target.dir, capture_output=True, text=True, env=env,
                                  stdin=subprocess.DEVNULL, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            raise UserError(f"{label}: uv did not resolve its requirements within {TIMEOUT} s") from None
        if proc.returncode != 0 or not out.is_file():
            detail = _excerpt(proc.stderr)
            raise UserError(f"{label}: uv cannot resolve its requirements for {triple}, Python {python}:\n{detail}",
                            hint="fix the requirements (or the extra) so they install together, or lock the project "
                            "with `uv lock`; packages that only another index holds as wheels need that index "
                            "(UV_EXTRA_INDEX_URL or [tool.uv] index)")
        move_into_place(out, path, durable=False)  # a resolution can be redone
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _excerpt(stderr: str, head: int = 4, tail: int = 10) -> str:
    """uv's own summary (its first lines: what failed, each cause) and the end (uv's hints, a build's last words):
    the middle of a failed build's output is left out (a placeholder sdist prints 100 lines of traceback)."""
    lines = stderr.strip().splitlines()
    if len(lines) <= head + tail:
        return "\n".join(lines)
    return "\n".join([*lines[:head], "  [...]", *lines[-tail:]])
