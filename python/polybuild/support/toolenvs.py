"""Tool environments: one locked virtual environment per distinct set of build-tool requirements (a PEP 517
backend, maturin, pytest), made with uv under the polybuild cache, so a workspace builds where its tools are not
installed, as `python -m build` isolates a backend, but resolved once and then installed offline.

One environment is `<cache>/tools/<digest>/`, the digest of its sorted requirements and of the interpreter's facts:
`requirements.in` (what was asked), `requirements.lock` (`uv pip compile --generate-hashes`: exact versions and
hashes, resolved once and kept, so builds are reproducible; its text enters the cache keys), and `env/`, the venv
installed from the lock (`uv pip sync --require-hashes`, offline first). The venv is made in a temporary directory
and renamed into place with `env/.polybuild-ready` (the lock's digest) inside; an environment without that marker,
made from another lock or missing a pinned distribution is made again. `<digest>/lock` serialises makers across
processes: a concurrent build waits, then reuses."""

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
        """What enters a cache key: the requirements and the lock (exact versions and hashes)."""
        return "requirements: " + " ".join(self.requirements) + "\n" + self.lock.read_text(encoding="utf-8")

    def pins(self) -> dict[str, str]:
        """Distribution -> exact version, from the lock."""
        return {name.lower(): version for name, version in _PIN.findall(self.lock.read_text(encoding="utf-8"))}

    def ensure(self) -> None:
        """Make the venv from the lock unless a complete one is there (a half or damaged one is made again)."""
        if self._ready():
            return
        with _making, _file_lock(self.root, "making"):
            if not self._ready():
                self._make()

    def _ready(self) -> bool:
        try:
            marker = (self.env / READY).read_text(encoding="utf-8")
            installed = {p.name.lower() for p in self.site_packages().iterdir()}
            if marker != _digest(self.lock.read_bytes()) or not os.path.exists(self.bin("python")):
                return False
            pins = self.pins()
        except OSError:
            return False
        return all(f"{re.sub(r'[-_.]+', '_', n)}-{v}.dist-info".lower() in installed for n, v in pins.items())

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
            write_atomic(tmp / READY, _digest(self.lock.read_bytes()))
            _replace_dir(tmp, self.env)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def locked(python: str, python_identity: str, requirements: tuple[str, ...], tools_dir: Path) -> ToolEnv:
    """The tool environment for `requirements` under `tools_dir`, its lock resolved now if it has none (the only
    step that needs the package index); the venv itself is made later, by `ensure`, only for a task that runs."""
    requirements = tuple(sorted(set(requirements)))
    digest = _digest("\n".join([*requirements, python_identity]).encode())[:24]
    tool_env = ToolEnv(tools_dir / digest, python, requirements)
    if not tool_env.lock.is_file():
        with _making, _file_lock(tool_env.root, "resolving"):
            if not tool_env.lock.is_file():
                _resolve(tool_env)
    return tool_env


def _resolve(tool_env: ToolEnv) -> None:
    """Pin the requirements with `uv pip compile --generate-hashes` for the environment's interpreter."""
    from polybuild.support.fs import write_atomic
    from polybuild.support.process import run_tool
    from polybuild.support.toolchains import require

    wanted = ", ".join(tool_env.requirements)
    uv = require("uv", f"provisioning {wanted} ([tools] provision)")
    write_atomic(tool_env.root / "requirements.in", "".join(f"{r}\n" for r in tool_env.requirements))
    proc = run_tool([uv, "pip", "compile", "--quiet", "--no-header", "--generate-hashes", "--python", tool_env.python,
                     "requirements.in"], f"resolving {wanted} for a tool environment", cwd=tool_env.root,
                    check=False)
    if proc.returncode != 0:
        raise UserError(f"cannot provision {wanted}: uv could not resolve it:\n{proc.stderr.strip()}",
                        hint="check the requirement (e.g. [build-system] requires) and the package index, or set "
                        "[tools] provision = \"never\" and install the tools yourself")
    write_atomic(tool_env.lock, proc.stdout)


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
