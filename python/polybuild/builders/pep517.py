"""Python wheels (and sdists) through the standard PEP 517 frontend (`python -m build`), hatchling first among
equals; and pytest run against the wheels that were just built, so tests see exactly what ships."""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from polybuild.builders import BuildContext, Step
from polybuild.errors import UserError

if TYPE_CHECKING:
    from polybuild.plan import Task


def _missing_modules(python: str, modules: list[str]) -> list[str]:
    """Which of `modules` the interpreter cannot import (one interpreter start for all of them)."""
    probe = "import importlib.util,sys;print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))"
    try:
        proc = subprocess.run([python, "-c", probe, *modules], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise UserError(f"cannot run the Python interpreter {python}: {exc}") from None
    return proc.stdout.split()


class Pep517Builder:
    name = "pep517"
    tools = ()

    def preflight(self, task: Task, ctx: BuildContext) -> None:
        if ctx.config["python"]["isolation"]:
            modules = ["build"]
        else:
            backend = task.target.info["backend"].split(":")[0]
            modules = ["build", backend]
        missing = _missing_modules(ctx.python, modules)
        if missing:
            raise UserError(
                f"{task.target.id}: the Python at {ctx.python} lacks {', '.join(missing)} (needed to build wheels)",
                hint=f"{ctx.python} -m pip install {' '.join(_dist_of(m) for m in missing)}",
            )

    def steps(self, task: Task, ctx: BuildContext, out: Path) -> list[Step]:
        t = task.target
        argv = [ctx.python, "-m", "build", "--wheel", "--outdir", str(out)]
        if ctx.config["python"]["sdist"] or t.settings.get("sdist"):
            argv.append("--sdist")
        if not ctx.config["python"]["isolation"]:
            argv.append("--no-isolation")
        return [Step([*argv, str(t.dir)], cwd=t.dir)]


def _dist_of(module: str) -> str:
    return module.split(".")[0]


class PytestBuilder:
    """`pytest` in the package directory, with the package and its workspace dependencies importable from the
    wheels this run built (not from the source tree)."""

    name = "pytest"
    tools = ()

    def preflight(self, task: Task, ctx: BuildContext) -> None:
        missing = _missing_modules(ctx.python, ["pytest"])
        if missing:
            raise UserError(f"{task.target.id}: pytest is not installed in {ctx.python}",
                            hint=f"{ctx.python} -m pip install pytest")

    def steps(self, task: Task, ctx: BuildContext, out: Path) -> list[Step]:
        site = ctx.state_dir / "test-envs" / task.target.name
        env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        return [
            Step(action=lambda: _unpack_wheels(ctx, task, site), describe=f"unpack built wheels into {site}"),
            Step([ctx.python, "-m", "pytest", "-q"], cwd=task.target.dir, env=env),
        ]


def _unpack_wheels(ctx: BuildContext, task: Task, site: Path) -> None:
    """A wheel is a zip of what would be installed into site-packages; unpacking it is an install for imports."""
    shutil.rmtree(site, ignore_errors=True)
    site.mkdir(parents=True)
    for dep in sorted(task.deps):
        for artifact in ctx.artifacts.get(dep, []):
            if artifact.suffix == ".whl":
                with zipfile.ZipFile(artifact) as whl:
                    whl.extractall(site)
