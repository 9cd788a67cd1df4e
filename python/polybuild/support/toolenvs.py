"""Tool environments: one locked virtual environment per distinct set of build-tool requirements (a PEP 517
backend, maturin, pytest), made with uv under the polybuild cache, so a workspace builds where its tools are not
installed, as `python -m build` isolates a backend, but from pins committed with the workspace and installed offline.

The pins are resolved once by `resolve` (`uv pip compile --universal --generate-hashes` for every platform and every
Python from `TOOLS_PYTHON` on, so one lock serves every machine) and kept in the workspace's polybuild.lock
(config/toolpins.py). One environment is `<cache>/tools/<digest>/`, the digest of its requirements, the pins and the
interpreter's facts: `requirements.in`, `requirements.lock` (a copy of the pins, which enter the cache keys) and
`env/`, the venv installed from them (`uv pip sync --require-hashes`, offline first) for this interpreter. The venv is
made in a temporary directory and renamed into place with `env/.polybuild-ready` inside (the pins' digest, then the
distributions installed); an environment without that marker or missing one of them is made again. `<digest>/lock`
serialises makers across processes: a concurrent build waits, then reuses."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from polybuild.support.errors import UserError

READY = ".polybuild-ready"
MODES = ("auto", "always", "never")
TOOLS_PYTHON = (3, 11)  # the oldest Python the pins are resolved for: polybuild's own requires-python
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)
_making = threading.Lock()  # one maker per process; other processes wait on the file lock


@dataclass(frozen=True)
class ToolEnv:
    """A locked tool environment (its lock file exists; the venv is made on first use by `ensure`)."""

    root: Path
    python: str  # the interpreter the venv is made from (the run's Python)
    requirements: tuple[str, ...]  # sorted PEP 508 requirements

    @property
    def lock(self) -> Path:
        return self.root / "requirements.lock"

    @property
    def env(self) -> Path:
        return self.root / "env"

    def bin(self, name: str) -> str:
        return str(self.env / "bin" / name)

    def site_packages(self) -> Path:
        """The venv's site-packages (the venv has the interpreter's X.Y)."""
        from polybuild.support.toolchains import python_facts

        major, minor = python_facts(self.python).version or (3, 0)
        return self.env / "lib" / f"python{major}.{minor}" / "site-packages"

    def identity(self) -> str:
        """What enters a cache key: the requirements and the pins (exact versions and hashes), the same on every
        machine that has the same polybuild.lock."""
        return "requirements: " + " ".join(self.requirements) + "\n" + self.lock.read_text(encoding="utf-8")

    def pins(self) -> dict[str, str]:
        """Distribution -> exact version, from the lock."""
        return pins_of(self.lock.read_text(encoding="utf-8"))

    def ensure(self) -> None:
        """Make the venv from the lock unless a complete one is there (a half or damaged one is made again)."""
        if self._ready():
            return
        with _making, _file_lock(self.root, "making"):
            if not self._ready():
                self._make()

    def _ready(self) -> bool:
        try:
            digest, *installed = (self.env / READY).read_text(encoding="utf-8").splitlines()
            if digest != _digest(self.lock.read_bytes()) or not os.path.exists(self.bin("python")):
                return False
            present = {p.name.lower() for p in self.site_packages().iterdir()}
        except (OSError, ValueError):
            return False
        return all(name in present for name in installed)

    def _installed(self, env: Path) -> list[str]:
        """The dist-info directories of the pinned distributions `env` has (a pin for another platform is not
        installed here: its marker excluded it)."""
        site = self.site_packages().relative_to(self.env)
        present = {p.name.lower() for p in (env / site).iterdir()}
        wanted = (f"{re.sub(r'[-_.]+', '_', n)}-{v}.dist-info".lower() for n, v in self.pins().items())
        return sorted(name for name in wanted if name in present)

    def _make(self) -> None:
        from polybuild.support.fs import write_atomic
        from polybuild.support.process import run_tool
        from polybuild.support.toolchains import require

        uv = require("uv", f"the tool environment for {', '.join(self.requirements)}")
        what = f"making the tool environment for {', '.join(self.requirements)} in {self.root}"
        tmp = Path(tempfile.mkdtemp(prefix="env.", dir=self.root))
        try:
            run_tool([uv, "venv", "--quiet", "--relocatable", "--python", self.python, str(tmp)], what)
            sync = [uv, "pip", "sync", "--quiet", "--require-hashes", "--python", str(tmp / "bin" / "python"),
                    self.lock.name]
            if run_tool([*sync, "--offline"], what, cwd=self.root, check=False).returncode != 0:
                run_tool(sync, what, cwd=self.root)  # not in uv's cache yet: download
            write_atomic(tmp / READY, "\n".join([_digest(self.lock.read_bytes()), *self._installed(tmp)]) + "\n")
            _replace_dir(tmp, self.env)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def locked(python: str, python_identity: str, requirements: tuple[str, ...], pins: str, tools_dir: Path) -> ToolEnv:
    """The tool environment for `requirements` pinned by `pins` under `tools_dir`, its lock written if new; the
    venv itself is made later, by `ensure`, only for a task that runs."""
    from polybuild.support.fs import write_atomic
    from polybuild.support.toolchains import python_facts

    version = python_facts(python).version
    if version is not None and version < TOOLS_PYTHON:
        floor = ".".join(map(str, TOOLS_PYTHON))
        raise UserError(f"the build tools are pinned for Python >= {floor}; {python} is "
                        f"{'.'.join(map(str, version))}", hint=f"set [python] interpreter to a Python >= {floor}")
    requirements = tuple(sorted(set(requirements)))
    digest = _digest("\n".join([*requirements, python_identity, pins]).encode())[:24]
    tool_env = ToolEnv(tools_dir / digest, python, requirements)
    if not tool_env.lock.is_file():
        tool_env.root.mkdir(parents=True, exist_ok=True)
        write_atomic(tool_env.root / "requirements.in", "".join(f"{r}\n" for r in requirements))
        write_atomic(tool_env.lock, pins)  # content-addressed: the same digest always holds the same pins
    return tool_env


def resolve(requirements: tuple[str, ...], python: str, work_dir: Path) -> str:
    """Pin `requirements` with exact versions and hashes for every platform and every Python >= TOOLS_PYTHON
    (`uv pip compile --universal --generate-hashes`; `python` only runs what uv must build to read its metadata):
    the one step of provisioning that needs the package index."""
    from polybuild.support.fs import write_atomic
    from polybuild.support.process import run_tool
    from polybuild.support.toolchains import require

    wanted = ", ".join(requirements)
    uv = require("uv", f"provisioning {wanted} ([tools] provision)")
    work_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="resolve.", dir=work_dir))
    try:
        write_atomic(tmp / "requirements.in", "".join(f"{r}\n" for r in requirements))
        proc = run_tool([uv, "pip", "compile", "--quiet", "--no-header", "--no-annotate", "--universal",
                         "--generate-hashes", "--python", python, "--python-version",
                         ".".join(map(str, TOOLS_PYTHON)), "requirements.in"],
                        f"resolving {wanted} for a tool environment", cwd=tmp, check=False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if proc.returncode != 0:
        raise UserError(f"cannot provision {wanted}: uv could not resolve it:\n{proc.stderr.strip()}",
                        hint="check the requirement (e.g. [build-system] requires) and the package index, or set "
                        "[tools] provision = \"never\" and install the tools yourself")
    return proc.stdout


def pins_of(text: str) -> dict[str, str]:
    """Distribution -> exact version, from pins as `uv pip compile` writes them."""
    return {name.lower(): version for name, version in _PIN.findall(text)}


def _file_lock(root: Path, doing: str) -> contextlib.AbstractContextManager[None]:
    from polybuild.support.runlock import file_lock

    return file_lock(root / "lock", f"polybuild: waiting for another polybuild run {doing} the tool environment "
                     f"{root}...")


def _replace_dir(new: Path, dst: Path) -> None:
    """Rename `new` to `dst`; an old `dst` (a damaged environment) is first renamed aside, then removed."""
    if dst.exists() or dst.is_symlink():
        old = Path(tempfile.mkdtemp(prefix="old.", dir=dst.parent))
        os.replace(dst, old / "env")
        shutil.rmtree(old, ignore_errors=True)
    os.replace(new, dst)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
