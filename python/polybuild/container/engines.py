"""Container engines that build Dockerfiles: buildah, docker (buildx) and podman, behind one small interface.

Each engine builds the rendered Dockerfile from an assembled context and writes the result as an OCI layout, so
what leaves an engine is the same kind of artifact whichever engine made it (and what `container push` sends).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from polybuild.support.errors import UserError

ORDER = ("buildah", "docker", "podman")


@dataclass
class BuildRequest:
    """Everything an engine needs for one image build (one platform)."""

    dockerfile: Path
    context: Path
    layout: Path  # the OCI layout directory to write
    ref: str  # name:tag annotated in the layout
    platform: str
    timestamp: str  # SOURCE_DATE_EPOCH
    target: str | None = None
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)  # id -> environment variable holding the value
    no_cache: bool = False


@dataclass(frozen=True)
class Engine:
    name: str
    path: str

    def build_steps(self, req: BuildRequest, scratch_tag: str) -> list[list[str]]:
        """The argv lists that build `req` and leave it as an OCI layout at `req.layout`."""
        common = ["--file", str(req.dockerfile), "--platform", req.platform]
        if req.target:
            common += ["--target", req.target]
        for tag in req.tags:
            common += ["--tag", tag]
        for name, value in sorted(req.build_args.items()):
            common += ["--build-arg", f"{name}={value}"]
        for secret_id, var in sorted(req.secrets.items()):
            common += ["--secret", f"id={secret_id},env={var}"]
        if req.no_cache:
            common.append("--no-cache")
        if self.name == "docker":
            output = f"type=oci,dest={req.layout},tar=false,name={req.ref},rewrite-timestamp=true"
            return [[self.path, "buildx", "build", *common, "--build-arg", f"SOURCE_DATE_EPOCH={req.timestamp}",
                     "--output", output, str(req.context)]]
        # buildah and podman share their command line: build into local storage, then push to an OCI layout.
        build = [self.path, "build", *common, "--layers", "--timestamp", req.timestamp, "--tag", scratch_tag,
                 str(req.context)]
        return [build, [self.path, "push", "--quiet", scratch_tag, f"oci:{req.layout}:{req.ref}"]]

    def pull_argv(self, ref: str) -> list[str]:
        """Make `ref` present locally (a no-op when it already is)."""
        if self.name == "docker":
            return [self.path, "pull", "--quiet", ref]
        return [self.path, "pull", "--quiet", "--policy", "missing", ref]


def _usable(name: str, path: str) -> bool:
    """docker needs buildx and a running daemon; buildah and podman need nothing else."""
    if name != "docker":
        return True
    try:
        ok = subprocess.run([path, "buildx", "version"], capture_output=True, timeout=20).returncode == 0
        return ok and subprocess.run([path, "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                                     timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def detect(choice: str = "auto") -> Engine | None:
    """The configured engine, or the first usable of buildah, docker (buildx) and podman."""
    for name in ORDER if choice == "auto" else (choice,):
        path = shutil.which(name)
        if path and _usable(name, path):
            return Engine(name, path)
    return None


def require(choice: str, who: str) -> Engine:
    engine = detect(choice)
    if engine is None:
        wanted = "buildah, docker (with buildx and a running daemon) or podman" if choice == "auto" else choice
        raise UserError(f"{who}: no container engine found (looked for {wanted})",
                        hint="install one (e.g. `apt-get install buildah`), or set [container].engine")
    return engine
