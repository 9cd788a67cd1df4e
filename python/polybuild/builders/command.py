"""Custom tasks declared in config (`[targets.<name>.tasks.<task>]`): an argv command in the target's directory."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from polybuild.builders import BuildContext, Builder, Step

if TYPE_CHECKING:
    from polybuild.plan import Task


class CommandBuilder(Builder):
    name = "command"

    def steps(self, task: Task, ctx: BuildContext, out: Path) -> list[Step]:
        spec = task.spec
        env = {k: str(v) for k, v in spec["env"].items()}
        return [Step(list(spec["cmd"]), cwd=task.target.dir, env=env)]
