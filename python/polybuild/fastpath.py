"""The no-op fast path: when nothing polybuild reads has changed since the last successful run of the same
command, answer from that run's summary without discovery, graph, keys or git.

"Nothing changed" is decided like git's index does, by `stat`: every file of the last listing and every directory
holding one (a file added, removed or renamed changes its directory), every output, the toolchain binaries and
package directories the run used, polybuild itself, and a digest of the whole environment. A summary is recorded
only when none of those changed within the last two seconds (the racy-clean rule), so an edit made right after a
run can never be missed. Any difference, or any doubt, means the normal path, which then records a new summary.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

FORMAT = 2  # 2: in the user's cache, with the report's place
_RACY_NS = 2_000_000_000
# Variables that differ between shells without changing any build.
_VOLATILE_ENV = frozenset({"_", "PWD", "OLDPWD", "SHLVL", "COLUMNS", "LINES", "TERM_SESSION_ID", "WINDOWID"})


def _sig(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _env_digest() -> str:
    items = sorted((k, v) for k, v in os.environ.items() if k not in _VOLATILE_ENV)
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()


def _summary_path(command: list[str], env: str) -> Path:
    """One summary per command (it holds the directory and config file) and environment, so alternating
    environments do not evict each other. In the user's cache, so that finding it needs no config."""
    from polybuild.cachedir import default_dir

    name = hashlib.sha256(json.dumps([command, env]).encode()).hexdigest()[:32] + ".json"
    return default_dir() / "fastpath" / name


def _own_files() -> list[str]:
    """polybuild's own modules: a different polybuild must not trust an old summary."""
    package = Path(__file__).parent
    return sorted(str(p) for p in package.rglob("*.py"))


def tool_paths(tools: set[str], python: str) -> list[str]:
    """Files whose change means a toolchain may have changed: the binaries and where their versions live."""
    paths = {os.path.realpath(sys.executable), os.path.realpath(python)}
    for tool in tools:
        found = shutil.which(tool)
        if found:
            paths.add(os.path.realpath(found))
    if tools & {"rustc", "cargo", "maturin"}:
        rustup = Path(os.environ.get("RUSTUP_HOME") or Path.home() / ".rustup")
        paths.update(str(p) for p in [rustup / "settings.toml", rustup / "toolchains", rustup / "update-hashes"])
        if (rustup / "update-hashes").is_dir():
            paths.update(str(p) for p in (rustup / "update-hashes").iterdir())
    if tools & {"python", "backend", "pytest", "maturin"}:
        paths.update(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))  # pip installs change these
    return sorted(paths)


def record(root: Path, command: list[str], files: list[str], outputs: list[str], other_files: list[str],
           summary: dict[str, Any]) -> None:
    """Remember a successful run, unless something it read is too fresh to be trusted by stat alone. `files` are
    the workspace's (relative to `root`); `other_files` toolchains and config files, anywhere."""
    now = time.time_ns()
    if any(_racy(_sig(p), now) for p in outputs):  # the run just wrote them: no need to stat everything else
        return
    top = str(root)
    listed = [os.path.join(top, f) for f in files]
    dirs = {top} | {p.rpartition("/")[0] for p in listed}
    watched = sorted({*listed, *dirs, *outputs, *other_files, *_own_files()})
    sigs = [_sig(p) for p in watched]
    if any(_racy(s, now) for s in sigs):
        return
    env = _env_digest()
    data = {"format": FORMAT, "command": command, "env": env, "paths": watched, "sigs": sigs, "summary": summary}
    path = _summary_path(command, env)
    from polybuild.report import write_atomic

    write_atomic(path, json.dumps(data, separators=(",", ":")))


def _racy(sig: list[int] | None, now: int) -> bool:
    """Changed within the last two seconds: a later change in the same tick could go unnoticed by stat."""
    return sig is not None and now - max(sig[1], sig[2]) < _RACY_NS


def check(command: list[str]) -> dict[str, Any] | None:
    """The last run's summary if nothing it depended on changed, else None."""
    env = _env_digest()
    try:
        data = json.loads(_summary_path(command, env).read_bytes())
    except (OSError, ValueError):
        return None
    if data.get("format") != FORMAT or data.get("command") != command or data.get("env") != env:
        return None
    if data["paths"] != sorted({*data["paths"], *_own_files()}):
        return None
    for path, sig in zip(data["paths"], data["sigs"], strict=True):
        if _sig(path) != sig:
            return None
    return data["summary"]
