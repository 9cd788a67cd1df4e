"""Custom tasks declared in config (`[targets.<name>.tasks.<task>]`): an argv command in the target's directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from polybuild.builders import BuildContext, Builder, Step

if TYPE_CHECKING:
    from polybuild.plan import Task


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
    def _remote(task: Task, ctx: BuildContext, step: Step) -> Callable[[BinaryIO], int | None]:
        """The command on the remote executor, with its declared inputs and environment only (a task that needs
        the build's artifacts runs here)."""
        executor, ws, target = ctx.executor, ctx.ws, task.target
        assert executor is not None
        env = {"SOURCE_DATE_EPOCH": ctx.env["SOURCE_DATE_EPOCH"],
               **{k: str(v) for k, v in target.settings.get("env", {}).items()}, **step.env}
        inputs = ctx.inputs.files(target, task.spec["inputs"] or None)
        return lambda log: executor.run(root=ws.root, workdir=ws.rel(target.dir), argv=step.argv or [], env=env,
                                        inputs=inputs, outputs=task.spec["outputs"], log=log)
