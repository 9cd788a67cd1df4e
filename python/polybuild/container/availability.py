"""Whether a Dockerfile image can be built on this machine: an engine is installed and its base images are
present or can be pulled. Asked only for optional images, which are skipped (with this reason) when not."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

from polybuild.errors import UserError
from polybuild.platforms import Platform, host

if TYPE_CHECKING:
    from polybuild.plan import Task
    from polybuild.workspace import Workspace


def unavailable(ws: Workspace, task: Task) -> str | None:
    """Why `task` cannot be built here, or None."""
    from polybuild.builders.image import render
    from polybuild.container import engines, lint

    engine = engines.detect(task.target.info["engine"])
    if engine is None:
        return "no container engine is installed (buildah, docker with buildx, or podman)"
    try:
        text = render(task, ws, task.platform or Platform("linux", host().arch)).text
    except UserError:
        return None  # a template error is not a reason to skip: preflight reports it
    for base in lint.base_images(text):
        proc = subprocess.run(engine.pull_argv(base), capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no error output"])[-1]
            return f"base image {base} cannot be pulled ({last})"
    return None
