"""Custom tasks declared in config (`[targets.<name>.tasks.<task>]`): an argv command in the target's directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from polybuild.builders import BuildContext, Builder, RemoteCommand, Step

if TYPE_CHECKING:
    from polybuild.plan import Task

_WILDCARDS = frozenset("*?[")


class CommandBuilder(Builder):
    name = "command"
    publishes_artifacts = False  # a custom task may leave nothing (a lint), or only its declared `outputs`
    remote_executable = True

    def config_slice(self, task: Task, ctx: BuildContext) -> dict[str, Any]:
        return {"task": task.spec}

    def declared_outputs(self, task: Task) -> list[str]:
        return task.spec["outputs"]

    def needs_build(self, spec: dict | None) -> bool:
        return spec["needs-build"]

    def steps(self, task: Task, ctx: BuildContext, out: Path) -> list[Step]:
        spec = task.spec
        env = {k: str(v) for k, v in spec["env"].items()}
        step = Step(list(spec["cmd"]), cwd=task.target.dir, env=env)
        if ctx.executor is not None and self.name in ctx.executor.builders and not spec["needs-build"]:
            step.remote = self._remote(task, ctx, step)
        return [step]

    @staticmethod
    def _remote(task: Task, ctx: BuildContext, step: Step) -> Callable[[BinaryIO], int | None] | None:
        """The command on the remote executor, with its declared inputs and environment only (a task that needs
        the build's artifacts runs here, and so does one whose outputs could be anything in its directory)."""
        executor, ws, target = ctx.executor, ctx.ws, task.target
        assert executor is not None
        paths = output_paths(task.spec["outputs"])
        if paths is None:
            return None
        env = {"SOURCE_DATE_EPOCH": ctx.env["SOURCE_DATE_EPOCH"],
               **{k: str(v) for k, v in target.settings.get("env", {}).items()}, **step.env}
        inputs = ctx.inputs.files(target, task.spec["inputs"] or None)
        command = RemoteCommand(argv=step.argv or [], env=env, workdir=ws.rel(target.dir),
                                files={rel: ws.root / rel for rel in inputs},
                                outputs={p: target.dir / p for p in paths})
        return lambda log: executor.run(command, log)


def output_paths(patterns: list[str]) -> list[str] | None:
    """The REAPI output paths that cover the task's output patterns (relative to its directory): each pattern's
    leading components without a wildcard. None when a pattern has a wildcard in its first component (it could
    be anything in the directory: such a task runs locally)."""
    paths = set()
    for pattern in patterns:
        fixed = []
        for part in pattern.split("/"):
            if _WILDCARDS & set(part):
                break
            fixed.append(part)
        if not fixed:
            return None
        paths.add("/".join(fixed))
    return sorted(paths)
