"""`cargo metadata`, the one runner: one set of flags, and each answer read at most once per run.

Callers need two different answers, so there are two invocations and never more than one of each per manifest:

- `members` (`--no-deps`): the workspace's own packages and targets, nothing resolved. Discovery uses it, because
  it must work on a fresh clone whose crates are not downloaded and whose Cargo.lock is missing or stale.
- `resolve`: the full resolve graph, `--locked` when the lock is in the tree (a lock polybuild generated into its
  cache is not), `--all-features` when the license policy's `[graph]` asks for it. The license inventory uses it;
  it needs every locked crate in Cargo's cache.

Both run `--format-version 1 --offline` (downloads happen only when asked: `--fetch`, `generate-cargo-locks`) in the
manifest's directory (cargo reads `.cargo/config.toml` and rustup `rust-toolchain.toml` from there upwards), and a
failure names the manifest and the fix. The answers live on the run's `Workspace` (`ws.cargo_metadata`), so a
second command in the same process reads the tree afresh. `lock check` needs no `cargo metadata` at all
(lockfiles/cargo.py says why).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

from polybuild.support.errors import UserError
from polybuild.support.toolchains import require

_FORMAT = ("--format-version", "1", "--offline")


class CargoMetadata:
    """The `cargo metadata` answers of one run, keyed by (manifest, flags)."""

    def __init__(self) -> None:
        self._answers: dict[tuple[Path, tuple[str, ...]], dict] = {}
        self._lock = threading.Lock()

    def members(self, manifest: Path, display: str) -> dict:
        """The workspace of `manifest` without its dependencies (`--no-deps`): members, targets, features."""
        return self._answer(manifest, ("--no-deps",), display, f"Rust discovery of {display}")

    def resolve(self, manifest: Path, display: str, *, all_features: bool, locked: bool = True) -> dict:
        """The workspace of `manifest` with its resolve graph; `locked` refuses a Cargo.lock cargo would change."""
        flags = (*(["--locked"] if locked else []), *(["--all-features"] if all_features else []))
        return self._answer(manifest, flags, display, f"the license inventory of {display}")

    def _answer(self, manifest: Path, flags: tuple[str, ...], display: str, needed_by: str) -> dict:
        key = (manifest, flags)
        with self._lock:  # callers run in threads (the license scanners): one cargo per key, ever
            if key not in self._answers:
                cargo = require("cargo", needed_by)
                argv = [cargo, "metadata", *flags, *_FORMAT, "--manifest-path", str(manifest)]
                self._answers[key] = json.loads(run(argv, manifest, display=display))
            return self._answers[key]


def run(argv: list[str], manifest: Path, offline: bool = True, *, display: str | None = None) -> str:
    """Run cargo on a manifest (in its directory, without network unless `offline` is False); a failure is a
    UserError naming the manifest (`display`, else its path), with cargo's stderr and, when it is a stale lock or a
    missing download, the command that fixes it."""
    display = display or str(manifest)
    env = {**os.environ, "CARGO_NET_OFFLINE": "true"} if offline else None
    try:
        proc = subprocess.run(argv, cwd=manifest.parent, capture_output=True, text=True, env=env,
                              stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise UserError(f"cargo {argv[1]} for {display}: cannot run {argv[0]}: {exc.strerror}") from None
    if proc.returncode == 0:
        return proc.stdout
    detail = proc.stderr.strip() or proc.stdout.strip()
    if "--locked" in detail or "lock file" in detail:
        hint = f"Cargo.lock is out of date: run `cargo update -w` in {manifest.parent} and commit it"
    elif "offline" in detail or "failed to download" in detail or "failed to load source" in detail:
        hint = f"crates are missing from the local cache: run `cargo fetch --locked` in {manifest.parent}"
    else:
        hint = None
    raise UserError(f"cargo {argv[1]} for {display} failed:\n{detail}", hint=hint)
