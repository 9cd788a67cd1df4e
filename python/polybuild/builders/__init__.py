"""Builders: each turns a task into steps (argv commands, or a small in-process action).

Every builder implements the `Builder` interface and is registered once in `BUILDERS`; adding a builder touches
only its own module and that table. A builder writes its artifacts into `out`; the executor publishes them
atomically into the dist directory, so a failed or interrupted build leaves nothing half-written there.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from polybuild.cache.inputs import InputIndex
    from polybuild.cache.keys import Fingerprints, Toolchains
    from polybuild.cache.records import BuildRecords
    from polybuild.cache.tasks import TaskCache
    from polybuild.plan import Task
    from polybuild.support.fingerprint import StatCache
    from polybuild.support.platforms import Platform
    from polybuild.workspace import Workspace


@dataclass
class Step:
    """A command to run (argv, never a shell string), or an in-process action."""

    argv: list[str] | None = None
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    action: Callable[[], None] | None = None
    describe: str = ""

    def display(self) -> str:
        import shlex

        return shlex.join(self.argv) if self.argv else self.describe


@dataclass
class BuildContext:
    """What builders may read about the run; shared by all tasks and computed once."""

    ws: Workspace
    host: Platform
    python: str
    version: str
    state_dir: Path
    env: dict[str, str]  # the environment every task runs with
    inputs: InputIndex
    toolchains: Toolchains
    stat_cache: StatCache
    fingerprints: Fingerprints
    records: BuildRecords
    cache: TaskCache | None = None  # None with --no-cache
    artifacts: dict[str, list[Path]] = field(default_factory=dict)  # task id -> published artifacts
    outputs: dict[str, str] = field(default_factory=dict)  # task id -> output digest (for dependents' keys)
    tasks: dict[str, Task] = field(default_factory=dict)  # the plan's tasks, by id

    @property
    def config(self) -> dict:
        return self.ws.config.data


class Builder:
    """The interface every builder implements: `steps` is required, the rest has defaults."""

    name: ClassVar[str]
    tools: ClassVar[tuple[str, ...]] = ()  # toolchains checked before anything runs

    def preflight(self, task: Task, ctx: BuildContext) -> None:
        """Raise UserError for problems the user must fix before building (missing backend, ...)."""
        return None

    def steps(self, task: Task, ctx: BuildContext, out: Path) -> list[Step]:
        """The steps that build `task`, writing artifacts into `out`."""
        raise NotImplementedError

    def unavailable(self, task: Task, ws: Workspace) -> str | None:
        """Why an optional task cannot be built on this machine (it leaves the plan with this reason), or None."""
        return None

    def published_names(self, task: Task, host: Platform) -> list[str]:
        """The file names (or glob patterns) this task publishes in its dist directory, known before it runs, so
        the plan can refuse two tasks that would write the same path."""
        return []


def wheel_pattern(task: Task, host: Platform) -> list[str]:
    """A Python package's wheels: every wheel of one distribution name starts with the same normalized prefix
    (the wheel spelling of the canonical name discovery stores: `-` as `_`)."""
    return [task.target.info["dist_name"].replace("-", "_") + "-*.whl"]


_MODULES = {
    "cargo": "polybuild.builders.cargo:CargoBuilder",
    "cargo-test": "polybuild.builders.cargo:CargoTestBuilder",
    "maturin": "polybuild.builders.maturin:MaturinBuilder",
    "pep517": "polybuild.builders.pep517:Pep517Builder",
    "pytest": "polybuild.builders.pep517:PytestBuilder",
    "go": "polybuild.builders.go:GoBuilder",
    "go-test": "polybuild.builders.go:GoTestBuilder",
    "command": "polybuild.builders.command:CommandBuilder",
    "dockerfile": "polybuild.builders.image:DockerfileBuilder",
    "assemble": "polybuild.builders.image:AssembleBuilder",
}
BUILDERS = tuple(_MODULES)


def get(name: str) -> Builder:
    """The builder registered as `name` (imported lazily: a run pays only for the builders it uses)."""
    module, _, cls = _MODULES[name].partition(":")
    return getattr(importlib.import_module(module), cls)()
