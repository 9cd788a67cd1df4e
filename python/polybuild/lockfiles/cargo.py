"""Cargo.lock freshness: `cargo metadata --locked` fails when the lock no longer matches the manifests."""

from __future__ import annotations

import subprocess
from pathlib import Path

from polybuild.toolchains import find

_OFFLINE = ("--offline", "offline mode", "attempting to make an HTTP request")


def check(root: Path, lock: str) -> list[str]:
    """Problems of one Cargo.lock (workspace-relative path), each a user-facing line."""
    directory = (root / lock).parent
    manifest = directory / "Cargo.toml"
    if not manifest.is_file():
        return [f"{lock}: no Cargo.toml next to it; fix: delete the stray lock or add its manifest"]
    cargo = find("cargo")
    if cargo is None:
        return [f"{lock}: cannot check it: cargo is not installed; fix: install Rust with rustup (https://rustup.rs)"]
    argv = [cargo, "metadata", "--locked", "--format-version", "1", "--manifest-path", str(manifest)]
    proc = _run([*argv, "--offline"], directory)
    if proc.returncode != 0 and _needs_network(proc.stderr):
        proc = _run(argv, directory)  # still --locked: only the registry index was missing offline
    if proc.returncode == 0:
        return []
    detail = _first_error(proc.stderr)
    if "--locked was passed" in proc.stderr or "needs to be updated" in proc.stderr:
        return [f"{lock}: out of date with {_rel(root, manifest)} ({detail}); fix: run `cargo update --workspace` "
                f"(or `cargo generate-lockfile`) in {_rel(root, directory)} and commit the lock"]
    return [f"{lock}: cannot be checked: `cargo metadata --locked` failed: {detail}; fix: make "
            f"`cargo metadata --locked --manifest-path {_rel(root, manifest)}` pass"]


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)


def _needs_network(stderr: str) -> bool:
    return "--locked was passed" not in stderr and any(s in stderr for s in _OFFLINE)


def _first_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error")]
    return (errors or lines or ["no output"])[0].removeprefix("error: ")


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix() or "."
