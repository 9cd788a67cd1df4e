"""uv.lock freshness with the pinned uv: `uv lock --check`, run only by the uv version the project pins.

A lock written by one uv can read as stale to another (new lock revisions, resolver changes), so a different uv on
the machine is reported as a version mismatch, never as a stale lock; and the check never falls back to --frozen.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from polybuild.lockfiles.memo import environment
from polybuild.support.process import run_tool
from polybuild.support.toolchains import find

_NETWORK = ("network connectivity is disabled", "offline", "not found in the cache")
# Variables that would change what `uv lock --check` checks: never let them turn the check into a frozen read.
_UV_OVERRIDES = ("UV_FROZEN", "UV_NO_SYNC", "UV_OFFLINE", "UV_LOCKED")
_CHATTER = ("Using CPython", "Using PyPy", "Resolved ", "Audited ")  # uv's progress lines, not the error


@dataclass(frozen=True)
class Pin:
    spec: SpecifierSet
    source: str  # where it is written, for messages


@dataclass(frozen=True)
class Result:
    problems: list[str]
    notes: list[str]


def inputs(files: list[str], lock: str) -> list[str]:
    """What `uv lock --check` reads for a lock: the lock, every pyproject.toml in the tree (members and path
    dependencies), uv.toml files and Python version pins."""
    return [lock, *(p for p in files if p.rpartition("/")[2] in ("pyproject.toml", "uv.toml", ".python-version"))]


def identity() -> tuple[str, list[str]]:
    """The uv on PATH (its version) and the UV_* settings that change its answer (index URLs, hashed)."""
    uv = installed()
    return (f"uv {uv[1]} at {uv[0]}" if uv else "no uv"), environment(prefixes=("UV_",))


@functools.cache
def installed() -> tuple[str, Version] | None:
    """The uv on PATH and its version."""
    uv = find("uv")
    if uv is None:
        return None
    out = run_tool([uv, "--version"], "uv --version", check=False).stdout
    match = re.match(r"uv (\S+)", out)
    try:
        return (uv, Version(match.group(1))) if match else None
    except InvalidVersion:
        return None


def pins(root: Path, lock: str, configured: str | None, config_source: str) -> list[Pin] | str:
    """The uv versions the lock's project pins (polybuild config, [tool.uv] required-version, uv.toml); a string
    is a problem: a pin that does not parse, or a setting file that does not (at file:line)."""
    from polybuild.support.errors import ConfigError

    directory = (root / lock).parent
    found: list[tuple[str | None, str]] = [(configured, f"{config_source} lockfiles.uv-version")]
    pyproject, uv_toml = directory / "pyproject.toml", directory / "uv.toml"
    try:
        found.append((_read(root, pyproject).get("tool", {}).get("uv", {}).get("required-version"),
                      f"{_rel(root, pyproject)} [tool.uv] required-version"))
        found.append((_read(root, uv_toml).get("required-version"), f"{_rel(root, uv_toml)} required-version"))
    except ConfigError as exc:  # uv would not read it either: this lock's problem, located
        return f"{exc.message}; fix: correct it (uv reads it for this lock)"
    result = []
    for value, source in found:
        if value is None:
            continue
        try:
            result.append(Pin(SpecifierSet(_as_specifier(str(value))), source))
        except InvalidSpecifier:
            return f"{source}: '{value}' is not a version specifier; fix: write e.g. \"==0.13.9\" or \">=0.9\""
    return result


def _as_specifier(value: str) -> str:
    """A bare version pins exactly, as in uv's own required-version."""
    return f"=={value}" if re.fullmatch(r"\d+(\.\d+)*", value.strip()) else value


def check(root: Path, lock: str, configured: str | None, config_source: str) -> Result:
    """Problems of one uv.lock (workspace-relative path): uv present, the pinned version, the lock fresh."""
    found = pins(root, lock, configured, config_source)
    if isinstance(found, str):
        return Result([found], [])
    uv = installed()
    if uv is None:
        wanted = f" ({found[0].spec})" if found else ""
        return Result([f"{lock}: cannot check it: uv is not installed; fix: install uv{wanted} "
                       f"(https://docs.astral.sh/uv/)"], [])
    binary, version = uv
    for pin in found:
        if not pin.spec.contains(version, prereleases=True):
            return Result([f"{lock}: uv version mismatch, not a stale lock: uv {version} is installed but {pin.source} "
                           f"pins uv{pin.spec}; fix: install the pinned uv (`uv self update {_suggest(pin.spec)}` or "
                           f"`pip install 'uv{pin.spec}'`), or change the pin"], [])
    notes = [] if found else [f"{lock}: checked with uv {version}, but no uv version is pinned; pin it with [tool.uv] "
                              f"required-version so every machine and image builder reads the lock alike"]
    stale = _run_check(binary, root, lock)
    return Result([f"{lock}: {stale}"] if stale else [], notes)


def _run_check(uv: str, root: Path, lock: str) -> str | None:
    """`uv lock --check`, offline first (a fresh lock needs no index); None when the lock is fresh."""
    directory, where = (root / lock).parent, lock.rpartition("/")[0] or "."
    env = {k: v for k, v in os.environ.items() if k not in _UV_OVERRIDES}
    argv = [uv, "lock", "--check", "--no-progress"]
    proc = run_tool([*argv, "--offline"], f"checking {lock}", cwd=directory, env=env, check=False)
    if proc.returncode != 0 and "needs to be updated" not in proc.stderr and any(s in proc.stderr for s in _NETWORK):
        proc = run_tool(argv, f"checking {lock}", cwd=directory, env=env, check=False)
    if proc.returncode == 0:
        return None
    if "needs to be updated" in proc.stderr:
        return (f"out of date with its pyproject.toml (`uv lock --check` fails); fix: run `uv lock` in "
                f"{where} with the pinned uv and commit uv.lock")
    detail = " ".join(ln.strip() for ln in proc.stderr.splitlines()
                      if ln.strip() and not ln.startswith(_CHATTER))[:400]
    return f"`uv lock --check` failed: {detail}; fix: make `uv lock --check` pass in {where}"


def _suggest(spec: SpecifierSet) -> str:
    exact = [s.version for s in spec if s.operator in ("==", "===") and "*" not in s.version]
    return exact[0] if exact else "<version>"


def _read(root: Path, path: Path) -> dict:
    """A uv setting file next to the lock ({} when there is none); a broken one is a ConfigError at file:line."""
    from polybuild.support import tomlfile

    return tomlfile.load(path, _rel(root, path)).data if path.is_file() else {}


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()
