"""Fresh virtual environments with one wheel installed with a set of extras, from the built wheels only.

uv when it is on PATH (`uv venv` + `uv pip install`, well under a second each), else `python -m venv --without-pip`
and the host's pip (`pip --python`). Workspace distributions are constrained to the exact wheel files of the
wheelhouse, so an index is only ever asked for third-party requirements.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from polybuild.extras.wheel import WheelInfo
from polybuild.support.errors import UserError

INSTALL_TIMEOUT = 600
RUN_TIMEOUT = 120


@dataclass(frozen=True)
class Installer:
    """How environments are made: `uv` (path to the uv binary) or `pip` (the host Python, which has pip)."""

    kind: str
    tool: str
    python: str  # the interpreter the environments are based on


def choose_installer(python: str, prefer: str | None = None) -> Installer:
    """uv when on PATH (unless `prefer` is "pip"), else the host's pip; neither is a UserError."""
    uv = shutil.which("uv")
    if uv and prefer != "pip":
        return Installer("uv", uv, python)
    probe = subprocess.run([python, "-m", "pip", "--version"], capture_output=True, text=True)
    if probe.returncode == 0:
        return Installer("pip", python, python)
    raise UserError("check-extras needs uv or pip to create environments; neither was found",
                    hint=f"install uv (https://docs.astral.sh/uv/) or pip for {python}")


@dataclass
class Env:
    """One fresh environment: its directory, interpreter and the environment variables to run it with."""

    path: Path

    @property
    def bin(self) -> Path:
        return self.path / ("Scripts" if os.name == "nt" else "bin")

    @property
    def python(self) -> Path:
        return self.bin / ("python.exe" if os.name == "nt" else "python")

    def environ(self) -> dict[str, str]:
        """The caller's environment minus anything that would let it see another Python's packages."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONSTARTUP")}
        env.update(VIRTUAL_ENV=str(self.path), PATH=os.pathsep.join([str(self.bin), os.environ.get("PATH", "")]),
                   PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1")
        return env

    def run(self, argv: list[str], timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """Run a command of this environment from its own directory (never a source tree that could shadow it)."""
        try:
            return subprocess.run(argv, cwd=self.path, env=self.environ(), capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(argv, -1, "", f"timed out after {timeout:.0f}s")
        except OSError as exc:
            return subprocess.CompletedProcess(argv, -1, "", str(exc))


def create(installer: Installer, path: Path) -> Env:
    """A new, empty environment at `path`."""
    if installer.kind == "uv":
        argv = [installer.tool, "venv", "--quiet", "--python", installer.python, str(path)]
    else:
        argv = [installer.python, "-m", "venv", "--without-pip", str(path)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
    if proc.returncode != 0:
        raise UserError(f"could not create an environment with {argv[0]}: {tail(proc.stderr)}")
    return Env(path)


def install(installer: Installer, env: Env, wheel: WheelInfo, extras: tuple[str, ...],
            workspace: dict[str, WheelInfo], constraints: Path) -> subprocess.CompletedProcess[str]:
    """Install `wheel` with `extras`; workspace requirements resolve to their wheels in the wheelhouse only."""
    requirement = f"{wheel.path}[{','.join(extras)}]" if extras else str(wheel.path)
    links = sorted({str(w.path.parent) for w in workspace.values()})
    if installer.kind == "uv":
        pins = [f"{w.name} @ {w.path.resolve().as_uri()}" for w in workspace.values()]
        argv = [installer.tool, "pip", "install", "--quiet", "--python", str(env.python)]
    else:  # pip cannot take a file URL as a constraint: pin the wheelhouse versions instead
        pins = [w.spec for w in workspace.values()]
        argv = [installer.python, "-m", "pip", "--python", str(env.python), "install", "--quiet",
                "--disable-pip-version-check", "--no-input"]
    constraints.write_text("".join(f"{p}\n" for p in sorted(pins)), encoding="utf-8")
    for link in links:
        argv += ["--find-links", link]
    argv += ["--constraint", str(constraints), requirement]
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT,
                              env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")})
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, -1, "", f"install timed out after {INSTALL_TIMEOUT}s")


# Runs inside an environment: what is installed (and from where), which modules import, which plugins load, and
# which distribution provides each top-level module (to name the distribution behind an ImportError).
PROBE = r"""
import importlib, importlib.metadata as md, json, sys, traceback
modules, plugins = json.loads(sys.argv[1])
out = {"dists": {}, "imports": {}, "plugins": {}, "providers": {}}
for d in md.distributions():
    name = d.metadata["Name"]
    if name:
        url = d.read_text("direct_url.json")
        out["dists"][name] = {"version": d.version, "url": json.loads(url).get("url") if url else None,
                              "requires": d.requires or []}
for m in modules:
    try:
        importlib.import_module(m)
        out["imports"][m] = None
    except BaseException as exc:
        out["imports"][m] = {"error": f"{type(exc).__name__}: {exc}", "missing": getattr(exc, "name", None)
                             if isinstance(exc, ModuleNotFoundError) else None}
for group, name, value in plugins:
    ep = md.EntryPoint(name, value, group)
    try:
        ep.load()
        out["plugins"][f"{group}:{name}"] = None
    except BaseException as exc:
        out["plugins"][f"{group}:{name}"] = f"{type(exc).__name__}: {exc}"
out["providers"] = {k: sorted(set(v)) for k, v in md.packages_distributions().items()}
print(json.dumps(out))
"""


def probe(env: Env, modules: list[str], plugins: list[tuple[str, str, str]]) -> dict:
    """Run PROBE in the environment; its JSON answer (a failing probe is a UserError: the env itself is broken)."""
    proc = env.run([str(env.python), "-c", PROBE, json.dumps([modules, plugins])])
    if proc.returncode != 0:
        raise UserError(f"the environment at {env.path} does not run Python: {tail(proc.stderr)}")
    return json.loads(proc.stdout)


def script_path(env: Env, name: str) -> str:
    """The console script `name` of the environment (resolved there, never on the caller's PATH)."""
    found = shutil.which(name, path=str(env.bin))
    return found or str(env.bin / name)


def tail(text: str, lines: int = 3) -> str:
    """The end of a command's output on one line, for a message: a traceback's last line, else the last lines."""
    found = text.strip().splitlines()
    if any(line.startswith("Traceback (most recent call last)") for line in found):
        found = found[-1:]
    return " | ".join(line.strip() for line in found[-lines:])
