"""`polybuild build --ci-job '<entry>'`: build exactly one entry of `polybuild ci matrix` (its targets, platform,
variant, Python version and Linux wheel flavour), checking first that this machine is the one the entry asks for."""

from __future__ import annotations

import glob
import json
import shutil
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from polybuild.support.errors import UserError

if TYPE_CHECKING:
    from polybuild.api import Loaded

_STRING_KEYS = ("id", "name", "platform", "runner", "variant", "python", "libc", "container")
HINT = "pass one entry of `polybuild ci matrix` as JSON, e.g. --ci-job '${{ toJSON(matrix) }}'"


@dataclass(frozen=True)
class JobEntry:
    targets: list[str]
    platform: str | None = None
    variant: str | None = None
    python: str | None = None
    libc: str | None = None


def parse(text: str) -> JobEntry:
    """An entry as the matrix printed it; unknown keys are allowed (a workflow may add its own)."""
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"--ci-job is not JSON: {exc.msg} at character {exc.pos}", hint=HINT) from exc
    if not isinstance(data, dict):
        raise UserError("--ci-job must be a JSON object (one matrix entry)", hint=HINT)
    targets = data.get("targets")
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise UserError("--ci-job needs \"targets\": an array of target names", hint=HINT)
    for key in _STRING_KEYS:
        if data.get(key) is not None and not isinstance(data[key], str):
            raise UserError(f"--ci-job: \"{key}\" must be a string", hint=HINT)
    return JobEntry(targets, data.get("platform") or None, data.get("variant") or None, data.get("python") or None,
                    data.get("libc") or None)


def apply(loaded: Loaded, entry: JobEntry) -> tuple[list[str], list[str], list[str]]:
    """(targets, variants, platforms) for `api.build`; the entry's Python becomes the interpreter of the run."""
    for name in entry.targets:
        loaded.ws.resolve(name)  # an unknown target fails here, with "did you mean"
    check_libc(entry.libc)
    if entry.python:
        loaded.ws.config.data["python"] = {**loaded.ws.config["python"], "interpreter": interpreter(entry.python)}
    return (list(entry.targets), [entry.variant] if entry.variant else [],
            [entry.platform] if entry.platform else [])


def interpreter(version: str) -> str:
    """The Python `version` (3.12) on this machine: this one, `python3.12` on PATH, or a manylinux/musllinux
    image's /opt/python."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    tag = "cp" + version.replace(".", "")
    candidates = [shutil.which(f"python{version}"), *sorted(glob.glob(f"/opt/python/{tag}-{tag}/bin/python"))]
    for found in candidates:
        if found and _version_of(found) == version:
            return found
    raise UserError(f"this job builds for Python {version}, which is not installed here",
                    hint="install it before building, e.g. actions/setup-python with "
                    "python-version: ${{ matrix.python }}")


def _version_of(python: str) -> str | None:
    from polybuild.support.toolchains import python_facts

    version = python_facts(python).version
    return f"{version[0]}.{version[1]}" if version else None


def check_libc(libc: str | None) -> None:
    """A musllinux wheel is built on musl, a manylinux one on glibc: the job must run where the entry says."""
    if libc is None or not sys.platform.startswith("linux"):
        return
    on_musl = bool(glob.glob("/lib/ld-musl-*.so.1"))
    if (libc == "musllinux") != on_musl:
        here = "musl" if on_musl else "glibc"
        raise UserError(f"this job builds {libc} wheels but runs on {here}",
                        hint="run the job in the entry's container (container: ${{ matrix.container }})")
