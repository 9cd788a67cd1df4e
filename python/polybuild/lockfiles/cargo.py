"""Cargo.lock freshness: `cargo update --workspace --locked` fails when the lock no longer matches the manifests.

It resolves exactly as `cargo metadata --locked` or `cargo build --locked` would, but reads only the registry index:
`cargo metadata` also downloads every locked crate to read its manifest (1.2 GB and 48 s for ai-dynamo/dynamo on a
machine with an empty Cargo home, against 57 MB and 8 s for the index alone).
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

from polybuild.lockfiles.memo import environment
from polybuild.support.process import run_tool
from polybuild.support.toolchains import find

_OFFLINE = ("--offline", "offline mode", "attempting to make an HTTP request")
_TOOLCHAIN_FILES = ("rust-toolchain.toml", "rust-toolchain")
_CONFIG_FILES = (".cargo/config.toml", ".cargo/config")


def inputs(files: list[str], lock: str) -> list[str]:
    """What the resolution reads for a lock: the lock, every manifest in the tree (path dependencies
    reach anywhere), the Cargo configs ([patch], source replacement) and the toolchain files."""
    return [lock, *(p for p in files if p.rpartition("/")[2] in ("Cargo.toml", *_TOOLCHAIN_FILES)
                    or p.endswith(_CONFIG_FILES))]


def identity(root: Path, lock: str) -> tuple[str, list[str]]:
    """The cargo that checks this lock (`cargo -V`, run where rustup picks the lock's toolchain) and the settings it
    reads from outside the tree: the Cargo home's config and the environment."""
    directory = (root / lock).parent
    pinned = next((d for d in (directory, *directory.parents) if any((d / f).is_file() for f in _TOOLCHAIN_FILES)
                   and d.is_relative_to(root)), root)
    home = Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo")
    configs = [f"{name}={hashlib.sha256(path.read_bytes()).hexdigest()}" for name in ("config.toml", "config")
               if (path := home / name).is_file()]
    env = environment(("RUSTUP_TOOLCHAIN", "CARGO_HOME"), ("CARGO_REGISTRIES_", "CARGO_REGISTRY_", "CARGO_SOURCE_",
                                                          "CARGO_PATCH_", "CARGO_NET_", "CARGO_HTTP_"))
    return _version(pinned), [*configs, *env]


@functools.cache
def _version(directory: Path) -> str:
    cargo = find("cargo")
    if cargo is None:
        return "no cargo"
    proc = run_tool([cargo, "-V"], "cargo -V", cwd=directory, check=False)
    return proc.stdout.strip() or proc.stderr.strip()


def check(root: Path, lock: str) -> list[str]:
    """Problems of one Cargo.lock (workspace-relative path), each a user-facing line."""
    directory = (root / lock).parent
    manifest = directory / "Cargo.toml"
    if not manifest.is_file():
        return [f"{lock}: no Cargo.toml next to it; fix: delete the stray lock or add its manifest"]
    cargo = find("cargo")
    if cargo is None:
        return [f"{lock}: cannot check it: cargo is not installed; fix: install Rust with rustup (https://rustup.rs)"]
    argv = [cargo, "update", "--workspace", "--locked", "--manifest-path", str(manifest)]
    proc = run_tool([*argv, "--offline"], f"checking {lock}", cwd=directory, check=False)
    if proc.returncode != 0 and _needs_network(proc.stderr):
        # still --locked: only the registry index was missing offline
        proc = run_tool(argv, f"checking {lock}", cwd=directory, check=False)
    if proc.returncode == 0:
        return []
    detail = _first_error(proc.stderr)
    if "--locked was passed" in proc.stderr or "needs to be updated" in proc.stderr:
        return [f"{lock}: out of date with {_rel(root, manifest)} ({detail}); fix: run `cargo update --workspace` "
                f"(or `cargo generate-lockfile`) in {_rel(root, directory)} and commit the lock"]
    return [f"{lock}: cannot be checked: `cargo update --workspace --locked` failed: {detail}; fix: make "
            f"`cargo update --workspace --locked --manifest-path {_rel(root, manifest)}` pass"]


def _needs_network(stderr: str) -> bool:
    return "--locked was passed" not in stderr and any(s in stderr for s in _OFFLINE)


def _first_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error")]
    return (errors or lines or ["no output"])[0].removeprefix("error: ")


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix() or "."
