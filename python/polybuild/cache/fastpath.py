"""The no-op fast path: when nothing polybuild reads has changed since the last successful run of the same
command, answer from that run's summary without discovery, graph, keys or git.

"Nothing changed" is decided like git's index does, by `stat`: every file of the last listing (and those on disk
that builds read though git ignores them), every directory above one up to the root and every directory walked for
them (a file or directory added, removed or renamed changes its parent, e.g. a new `main` package in a directory
that held only subdirectories), every output, the toolchain binaries and package directories the run used,
polybuild itself, and the values of exactly the environment variables the cache keys read, plus those that locate
toolchains or configure polybuild (an unrelated variable does not matter). A summary is recorded
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

from polybuild.support.fs import racy, write_atomic

FORMAT = 5  # 4: the environment digest is keyed with the cache's salt; 5: the report as the text to put back
# Variables that locate the toolchains, their caches and polybuild's own cache, besides those in cache keys.
TOOL_ENV = frozenset({
    "PATH", "HOME", "XDG_CACHE_HOME", "RUSTUP_HOME", "RUSTUP_TOOLCHAIN", "CARGO_HOME", "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET", "GOROOT", "GOPATH", "GOTOOLCHAIN", "GOOS", "GOARCH", "CGO_ENABLED", "VIRTUAL_ENV",
    "PYTHONPATH", "PYTHONHOME", "DOCKER_HOST", "CONTAINER_HOST",
})
MAX_SUMMARIES = 64  # the least recently written beyond this are removed


def _sig(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _env_names(key_names: set[str]) -> list[str]:
    """The variables a summary depends on: the cache keys', the toolchain-locating ones and polybuild's own."""
    return sorted(key_names | TOOL_ENV | {k for k in os.environ if k.startswith("POLYBUILD_")})


def _env_digest(names: list[str]) -> str:
    """Keyed with the cache's salt, like the records: the values may be secrets (env-inputs), and a plain digest of
    them could be checked offline against guesses."""
    import hmac

    from polybuild.support.cachedir import load_salt

    items = [(k, os.environ.get(k)) for k in names]
    return hmac.digest(load_salt(_summaries().parent / "salt"), json.dumps(items).encode(), "sha256").hex()


def _summaries() -> Path:
    """In the user's cache, so that finding a summary needs no config."""
    from polybuild.support.cachedir import default_dir

    return default_dir() / "fastpath"


def _summary_path(command: list[str]) -> Path:
    """One summary per command (it holds the directory and config file)."""
    return _summaries() / (hashlib.sha256(json.dumps(command).encode()).hexdigest()[:32] + ".json")


def _prune() -> None:
    """Keep the `MAX_SUMMARIES` most recently written summaries: one per command would otherwise grow forever."""
    try:
        found = [(p.stat().st_mtime_ns, p) for p in _summaries().glob("*.json")]
    except OSError:
        return
    for _, old in sorted(found, reverse=True)[MAX_SUMMARIES:]:
        old.unlink(missing_ok=True)


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


def record(root: Path, command: list[str], files: list[str], dirs: list[str], outputs: list[str],
           other_files: list[str], env_names: set[str], summary: dict[str, Any]) -> None:
    """Remember a successful run, unless something it read is too fresh to be trusted by stat alone. `files` and
    `dirs` are the workspace's (relative to `root`); `other_files` toolchains and config files, anywhere;
    `env_names` the variables the run's cache keys read."""
    now = time.time_ns()
    if any(_racy(_sig(p), now) for p in outputs):  # the run just wrote them: no need to stat everything else
        return
    top = str(root)
    watched_dirs = {top, *(os.path.join(top, d) for d in dirs if d != ".")}
    for f in files:  # every directory above a file: one holding only subdirectories can gain a package too
        d = f.rpartition("/")[0]
        while d and (full := os.path.join(top, d)) not in watched_dirs:
            watched_dirs.add(full)
            d = d.rpartition("/")[0]
    watched = sorted({*(os.path.join(top, f) for f in files), *watched_dirs, *outputs, *other_files,
                      *_own_files()})
    sigs = [_sig(p) for p in watched]
    if any(_racy(s, now) for s in sigs):
        return
    names = _env_names(env_names)
    data = {"format": FORMAT, "command": command, "env_names": names, "env": _env_digest(names), "paths": watched,
            "sigs": sigs, "summary": summary}
    write_atomic(_summary_path(command), json.dumps(data, separators=(",", ":")), durable=False)
    _prune()


def _racy(sig: list[int] | None, now: int) -> bool:
    return sig is not None and racy(sig[1], sig[2], now)


def replay(command: list[str]) -> dict[str, Any] | None:
    """The last run's summary if nothing it depended on changed, with its build report put back (another command
    may have written its own since): the text `execute.report.replayed_text` made when the run was recorded."""
    summary = check(command)
    if summary is not None and summary["report"] is not None:
        write_atomic(Path(summary["root"]) / summary["report_path"], summary["report"], durable=False)
    return summary


def check(command: list[str]) -> dict[str, Any] | None:
    """The last run's summary if nothing it depended on changed, else None."""
    try:
        data = json.loads(_summary_path(command).read_bytes())
    except (OSError, ValueError):
        return None
    if data.get("format") != FORMAT or data.get("command") != command:
        return None
    names = data["env_names"]
    if _env_names(set(names)) != names or _env_digest(names) != data["env"]:  # also: a new POLYBUILD_ variable
        return None
    if data["paths"] != sorted({*data["paths"], *_own_files()}):
        return None
    for path, sig in zip(data["paths"], data["sigs"], strict=True):
        if _sig(path) != sig:
            return None
    return data["summary"]
