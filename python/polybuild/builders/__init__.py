"""Builders: each turns a task into steps (argv commands, or a small in-process action), and declares the facts
the other stages ask of it (tools, cache-key parts, platform sensitivity, what it publishes).

Every builder implements the `Builder` interface and is registered once in `REGISTRY`; adding a builder touches
only its own module and that table: plan, cache keys, execute, CI, release and versioning ask the builder object,
never compare its name. A builder writes its artifacts into `out`; the executor publishes them atomically into the
dist directory, so a failed or interrupted build leaves nothing half-written there.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from typing import BinaryIO

    from polybuild.cache.inputs import InputIndex
    from polybuild.cache.keys import Fingerprints, Toolchains
    from polybuild.cache.reapi.execute import RemoteExecutor
    from polybuild.cache.records import BuildRecords
    from polybuild.cache.tasks import TaskCache
    from polybuild.plan import Task
    from polybuild.support.fingerprint import StatCache
    from polybuild.support.platforms import Platform
    from polybuild.support.toolenvs import ToolEnv
    from polybuild.versioning.groups import Groups
    from polybuild.workspace import Target, Workspace


@dataclass
class Step:
    """A command to run (argv, never a shell string), or an in-process action."""

    argv: list[str] | None = None
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    action: Callable[[], None] | None = None
    describe: str = ""
    # Runs `argv` elsewhere (remote execution, `RemoteExecutor.run` of a `RemoteCommand`), writing its output into
    # the log: the exit status, or None when it could not, and then `argv` runs here.
    remote: Callable[[BinaryIO], int | None] | None = None

    def display(self) -> str:
        import shlex

        return shlex.join(self.argv) if self.argv else self.describe


DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"  # a remote command's PATH, unless its builder gives one


@dataclass(frozen=True)
class RemoteCommand:
    """A step's command as the remote executor runs it (`[remote] execute`); paths POSIX and relative."""

    argv: list[str]
    env: dict[str, str]  # the whole environment; PATH is DEFAULT_PATH unless given
    workdir: str  # relative to the input root; "." for the root
    files: dict[str, Path]  # the input root: path there -> the local file (its content and executable bit)
    outputs: dict[str, Path]  # output path (relative to workdir) -> where it lands here (a file, or a directory's)


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
    executor: RemoteExecutor | None = None  # `[remote] execute`: tasks of those builders may run on the server
    artifacts: dict[str, list[Path]] = field(default_factory=dict)  # task id -> published artifacts
    outputs: dict[str, str] = field(default_factory=dict)  # task id -> output digest (for dependents' keys)
    tasks: dict[str, Task] = field(default_factory=dict)  # the plan's tasks, by id
    version_groups: Groups | None = None  # set by the API when `[versions]` has groups and Go binaries are built

    @property
    def config(self) -> dict:
        return self.ws.config.data

    def go_stamp(self, target_id: str) -> str | None:
        """The version stamped into a Go module's binaries: its version group's, when the API resolved `[versions]`
        groups for this run, else the workspace version (no manifest read)."""
        return self.version if self.version_groups is None else self.version_groups.go_stamp(target_id)


@dataclass(frozen=True)
class ToolProbe:
    """How one toolchain's identity is read for a cache key. `identify` (a module-level function, so equal probes
    compare equal) is given the run's Python and `extra` and returns the identity text, or the argv whose output
    is it; without one, the tool on PATH is asked its version (`rustc -vV`, `go version`, `<tool> --version`)."""

    tool: str
    extra: tuple[str, ...] = ()
    identify: Callable[[str, tuple[str, ...]], str | list[str]] | None = None
    # A tool polybuild can provision ([tools] provision): the PEP 508 requirements of a tool environment that stands
    # in for it, and whether the run's Python (or PATH) already has it (a module-level function of the run's Python
    # and `provision`; under "auto" a tool present there is used as it is). Its key identity is then the lock's.
    provision: tuple[str, ...] = ()
    present: Callable[[str, tuple[str, ...]], bool] | None = None


class Builder:
    """The interface every builder implements: `steps` is required, the rest has defaults.

    The class attributes and methods below are the builder's facts: the stages before and after it (plan, cache
    keys, execute, CI, release, versioning) ask them instead of comparing builder names."""

    name: ClassVar[str]
    required_tools: ClassVar[tuple[str, ...]] = ()  # on PATH before anything runs, else a UserError
    key_toolchains: ClassVar[tuple[str, ...]] = ()  # toolchains whose identity enters the cache key
    env_inputs: ClassVar[tuple[str, ...]] = ()  # environment variables that change the output (enter the key)
    platform_sensitive: ClassVar[bool] = False  # built once per requested platform (else once, for the host)
    publishes_artifacts: ClassVar[bool] = True  # a build that publishes nothing has failed
    builds_image: ClassVar[bool] = False  # a container image (images are built for Linux platforms)
    all_platforms_in_one_task: ClassVar[bool] = False  # an image built once for all its platforms (one index)
    binary_wheel: ClassVar[bool] = False  # a platform wheel: built per libc and, unless abi3, per Python version
    stamps_version: ClassVar[bool] = False  # the workspace version is stamped into the artifacts at build time
    weight: ClassVar[float] = 1.0  # rough relative cost, to order ready tasks until real durations are known
    remote_executable: ClassVar[bool] = False  # its steps can run on a REAPI executor (`[remote] execute`)

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

    def declared_outputs(self, task: Task) -> list[str]:
        """Glob patterns (below the target's directory) of what a task that is not a build leaves as outputs."""
        return []

    def needs_build(self, spec: dict | None) -> bool:
        """Whether a task of this builder (with the custom task's config `spec`) runs against built artifacts, so
        the plan builds the target's closure first."""
        return False

    def config_slice(self, task: Task, ctx: BuildContext) -> dict[str, Any]:
        """This builder's part of the config slice in the key of the tasks it runs (added to what every task has)."""
        return {}

    def target_key_slice(self, task: Task, ctx: BuildContext) -> dict[str, Any]:
        """What of a target built by this builder enters the key of every task on the target, whichever builder
        runs it (an image's spec also shapes a custom task on the image)."""
        return {}

    def toolchain_probe(self, tool: str, task: Task) -> ToolProbe:
        """How to identify `tool` (one of `key_toolchains`) for `task`'s key."""
        return ToolProbe(tool)

    def is_abi3(self, target: Target) -> bool:
        """Whether the target's binary wheel uses the stable ABI (one wheel for every Python version)."""
        return False

    def import_names(self, target: Target) -> tuple[str, ...]:
        """The top-level import names the target's wheel must hold."""
        return ()


def env_names(task: Task, config: Any) -> list[str]:
    """The environment variables whose values enter `task`'s key (of which a remote Go build gets those go reads)."""
    names = {*get(task.builder).env_inputs, *config["env-inputs"], *task.target.settings.get("env-inputs", ())}
    names.add("SOURCE_DATE_EPOCH")
    return sorted(names)


def python_settings(ctx: BuildContext) -> dict[str, Any]:
    """The [python] settings that shape a wheel (the interpreter enters the key through its own identity)."""
    return {k: v for k, v in ctx.config["python"].items() if k != "interpreter"}


def provisioned_for(task: Task, ctx: BuildContext, probe: ToolProbe) -> ToolEnv | None:
    """For a builder's preflight: the tool environment standing in for `probe`'s tool (`Toolchains.provisioned`),
    a failure to provision it named after the task, which is then refused alone."""
    from polybuild.support.errors import UserError

    try:
        return ctx.toolchains.provisioned(probe)
    except UserError as exc:
        raise UserError(f"{task.target.id}: {exc.message}", hint=exc.hint) from None


def provision_steps(tool_env: ToolEnv | None) -> list[Step]:
    """The step that makes a task's provisioned tool environment from its lock, first: only a task that runs pays
    for it (a cached one never does), and a complete environment costs a few `stat`s."""
    if tool_env is None:
        return []
    wanted = ", ".join(tool_env.requirements)
    return [Step(action=tool_env.ensure, describe=f"make the tool environment for {wanted} in {tool_env.root}")]


def wheel_pattern(task: Task, host: Platform) -> list[str]:
    """A Python package's wheels: every wheel of one distribution name starts with the same normalized prefix
    (the wheel spelling of the canonical name discovery stores: `-` as `_`)."""
    return [task.target.info.dist_name.replace("-", "_") + "-*.whl"]


REGISTRY = {  # name -> "module:Class"; adding a builder is its module and one line here
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
BUILDERS = tuple(REGISTRY)


@functools.cache
def get(name: str) -> Builder:
    """The builder registered as `name` (imported lazily: a run pays only for the builders it uses). Builders hold
    no state, so one instance serves every question about every task."""
    module, _, cls = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), cls)()
