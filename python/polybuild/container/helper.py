"""polybuild's Go helper (`go/`): assembles images from artifacts, pushes layouts and copies images between
registries with go-containerregistry. Found as $POLYBUILD_HELPER, on PATH, or built once from its source."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from polybuild.support.errors import BuildFailed, UserError
from polybuild.support.fs import atomic_path
from polybuild.support.process import run_tool

# In a checkout of polybuild the helper's source sits at the top level, next to python/.
_SOURCE = Path(__file__).resolve().parents[3] / "go"


@functools.cache
def find(cache_dir: Path) -> str:
    """The helper binary; built with `go build` into the cache the first time it is needed (looked up once per
    run: preflight, the cache key's toolchain probe and the build step all ask)."""
    explicit = os.environ.get("POLYBUILD_HELPER")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise UserError(f"POLYBUILD_HELPER={explicit} is not an executable file")
        return explicit
    on_path = shutil.which("polybuild-helper")
    if on_path:
        return on_path
    if not (_SOURCE / "go.mod").is_file():
        raise UserError("polybuild's Go helper is not installed",
                        hint="put polybuild-helper (built from polybuild's go/) on PATH, or set POLYBUILD_HELPER")
    return _build(_SOURCE, cache_dir)


def _build(source: Path, cache_dir: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in source.rglob("*") if p.is_file() and p.suffix in (".go", ".mod", ".sum")):
        digest.update(path.relative_to(source).as_posix().encode() + b"\0" + path.read_bytes())
    binary = cache_dir / "helper" / digest.hexdigest()[:16] / "polybuild-helper"
    if binary.is_file():
        return str(binary)
    go = shutil.which("go")
    if go is None:
        raise UserError("polybuild's Go helper is needed to assemble and push images, and Go is not installed",
                        hint="install Go, or put a polybuild-helper binary on PATH")
    with atomic_path(binary) as tmp:  # durably: a torn binary under its digest would be used from then on
        run_tool([go, "build", "-trimpath", "-o", str(tmp), "./cmd/polybuild-helper"], "building polybuild's Go helper",
                 cwd=source, env={**os.environ, "CGO_ENABLED": "0"})
    return str(binary)


def call(helper: str, args: list[str]) -> dict[str, Any]:
    """Run one helper command and return its JSON answer; its one-line error becomes a failed build."""
    proc = subprocess.run([helper, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        message = proc.stderr.strip() or f"polybuild-helper exited with status {proc.returncode}"
        raise BuildFailed(message)
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise BuildFailed(f"polybuild-helper {args[0]} {args[1]} answered something that is not JSON "
                          f"({helper}: is it polybuild's helper, and of a matching version?)") from None
