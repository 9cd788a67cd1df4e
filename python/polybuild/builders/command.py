"""Custom tasks declared in config (`[targets.<name>.tasks.<task>]`): an argv command in the target's directory."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from polybuild.builders import BuildContext, Builder, Step

if TYPE_CHECKING:
    from polybuild.plan import Task


class CommandBuilder(Builder):
    name = "command"
    publishes_artifacts = False  # a custom task may leave nothing (a lint), or only its declared `outputs`

    def config_slice(self, task: Task, ctx: BuildContext) -> dict[str, Any]:
        return {"task": task.spec}

    def declared_outputs(self, task: Task) -> list[str]:
        return task.spec["outputs"]

    def needs_build(self, spec: dict | None) -> bool:
        return spec["needs-build"]

    def steps(self, task: Task, ctx: BuildContext, out: Path) -> list[Step]:
        spec = task.spec
        env = {k: str(v) for k, v in spec["env"].items()}
        return [Step(list(spec["cmd"]), cwd=task.target.dir, env=env)]
