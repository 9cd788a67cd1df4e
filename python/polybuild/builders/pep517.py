"""Python wheels (and sdists) through the standard PEP 517 frontend (`python -m build`), hatchling first among
equals; and pytest run against the wheels that were just built, so tests see exactly what ships."""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polybuild.builders import (
    BuildContext,
    Builder,
    Step,
    ToolProbe,
    provision_steps,
    provisioned_for,
    python_settings,
    wheel_pattern,
)
from polybuild.support.errors import UserError

if TYPE_CHECKING:
    from polybuild.plan import Task
    from polybuild.workspace import Target


_PROBE = """
import sys
import importlib.metadata as md
from packaging.requirements import Requirement
for text in sys.argv[1:]:
    req = Requirement(text)
    if req.marker and not req.marker.evaluate():
        continue
    try:
        found = md.version(req.name)
    except md.PackageNotFoundError:
        print(text)
        continue
    if req.specifier and not req.specifier.contains(found, prereleases=True):
        print(f"{text} (found {found})")
"""


@functools.cache
def unmet_requirements(python: str, requirements: tuple[str, ...]) -> list[str]:
    """Requirements (PEP 508 strings) the interpreter does not satisfy.

    One interpreter start per distinct requirement set, so a workspace of many hatchling packages pays once.
    """
    try:
        proc = subprocess.run([python, "-c", _PROBE, *requirements], capture_output=True, text=True)
    except OSError as exc:
        raise UserError(f"cannot run the Python interpreter {python}: {exc.strerror}") from None
    if proc.returncode != 0:
        raise UserError(f"cannot check build requirements with {python}:\n{proc.stderr.strip()}")
    return proc.stdout.splitlines()


def requirements_met(python: str, requirements: tuple[str, ...]) -> bool:
    """Whether the interpreter has every requirement already (then `[tools] provision = "auto"` uses it as it is)."""
    return not unmet_requirements(python, requirements)


def requirement_names(requires: list[str]) -> tuple[str, ...]:
    """The distribution names in PEP 508 requirement strings, lowercased and sorted."""
    import re

    names = (re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", r) for r in requires)
    return tuple(sorted({m[1].lower() for m in names if m}))


def installed_versions(python: str, names: tuple[str, ...]) -> list[str]:
    """The argv that prints each distribution's installed version in `python` ('-' when missing)."""
    return [python, "-c", "import sys, importlib.metadata as md\nfor n in sys.argv[1:]:\n"
            "    try: print(n, md.version(n))\n    except md.PackageNotFoundError: print(n, '-')", *names]


def pytest_identity(python: str, extra: tuple[str, ...]) -> list[str]:
    return installed_versions(python, ("pytest",))


def source_packages(target: Target) -> tuple[str, ...]:
    """The top-level import names of a pure package: the directories with an `__init__.py` (tests aside) in `src/`
    or the package root."""
    found = set()
    for base in (target.dir / "src", target.dir):
        if base.is_dir():
            found |= {p.parent.name for p in base.glob("*/__init__.py") if p.parent.name not in ("tests", "test")}
    return tuple(sorted(found))


class Pep517Builder(Builder):
    name = "pep517"
    key_toolchains = ("python", "backend")
    published_names = staticmethod(wheel_pattern)
    import_names = staticmethod(source_packages)

    def config_slice(self, task: Task, ctx: BuildContext) -> dict[str, Any]:
        return {"python": python_settings(ctx)}

    def toolchain_probe(self, tool: str, task: Task) -> ToolProbe:
        """The backend is identified by the installed versions of `build` and the build requirements (or, when
        polybuild provisions them, by the lock of their tool environment)."""
        if tool == "backend":
            requires = task.target.info.build_requires
            extra = ("build", *requirement_names(requires))
            return ToolProbe(tool, extra, installed_versions, provision=("build", *requires), present=requirements_met)
        return ToolProbe(tool)

    def preflight(self, task: Task, ctx: BuildContext) -> None:
        """Without isolation the backend runs in our interpreter (or in a tool environment polybuild provisions):
        its build requirements must be installed."""
        if provisioned_for(task, ctx, self.toolchain_probe("backend", task)):
            return
        isolated = ctx.config["python"]["isolation"]
        requires = () if isolated else tuple(task.target.info.build_requires)
        missing = unmet_requirements(ctx.python, ("build", *requires))
        if missing:
            names = " ".join(shlex.quote(m.split(" (found")[0]) for m in missing)
            raise UserError(
                f"{task.target.id}: the Python at {ctx.python} lacks {', '.join(missing)} (needed to build "
                f"{task.target.name}; [build-system] requires in {ctx.ws.rel(task.target.manifest)})",
                hint=f"{ctx.python} -m pip install {names}   (or set [tools] provision = \"auto\", or [python] "
                "isolation = true)",
            )

    def steps(self, task: Task, ctx: BuildContext, out: Path) -> list[Step]:
        t = task.target
        tool_env = ctx.toolchains.provisioned(self.toolchain_probe("backend", task))
        python = tool_env.bin("python") if tool_env else ctx.python
        argv = [python, "-m", "build", "--wheel", "--outdir", str(out)]
        if ctx.config["python"]["sdist"] or t.settings.get("sdist"):
            argv.append("--sdist")
        if not ctx.config["python"]["isolation"]:
            argv.append("--no-isolation")
        return [*provision_steps(tool_env), Step([*argv, str(t.dir)], cwd=t.dir)]


class PytestBuilder(Builder):
    """`pytest` in the package directory, with the package and its workspace dependencies importable from the
    wheels this run built (not from the source tree)."""

    name = "pytest"
    key_toolchains = ("python", "pytest")

    def toolchain_probe(self, tool: str, task: Task) -> ToolProbe:
        if tool == "pytest":
            return ToolProbe(tool, identify=pytest_identity, provision=("pytest",), present=requirements_met)
        return ToolProbe(tool)

    def needs_build(self, spec: dict | None) -> bool:
        return True  # the tests import the wheels this run builds

    def preflight(self, task: Task, ctx: BuildContext) -> None:
        if provisioned_for(task, ctx, self.toolchain_probe("pytest", task)):
            return
        if unmet_requirements(ctx.python, ("pytest",)):
            raise UserError(f"{task.target.id}: pytest is not installed in {ctx.python}",
                            hint=f"{ctx.python} -m pip install pytest   (or set [tools] provision = \"auto\")")

    def steps(self, task: Task, ctx: BuildContext, out: Path) -> list[Step]:
        """The run's Python runs the tests (its packages stay importable); a provisioned pytest joins PYTHONPATH
        after the built wheels."""
        site = ctx.state_dir / "test-envs" / task.target.name
        tool_env = ctx.toolchains.provisioned(self.toolchain_probe("pytest", task))
        paths = [str(site), *([str(tool_env.site_packages())] if tool_env else []), os.environ.get("PYTHONPATH", "")]
        env = {"PYTHONPATH": os.pathsep.join(paths).rstrip(os.pathsep)}
        return [
            *provision_steps(tool_env),
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
