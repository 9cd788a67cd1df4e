"""The `[ci]` config, checked once: runner labels per platform, wheel axes (Python versions, Linux libc flavours and
their job containers) and the default shard size."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from polybuild.workspace import Workspace

# GitHub-hosted runners; `[ci.runners]` adds or replaces labels (self-hosted runners, larger runners).
DEFAULT_RUNNERS = {
    "linux/amd64": "ubuntu-24.04",
    "linux/arm64": "ubuntu-24.04-arm",
    "darwin/amd64": "macos-13",
    "darwin/arm64": "macos-15",
    "windows/amd64": "windows-2025",
    "windows/arm64": "windows-11-arm",
}
LIBCS = ("manylinux", "musllinux")
DEFAULT_CONTAINERS = {"musllinux": "quay.io/pypa/musllinux_1_2_{arch}"}
_LINUX_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}
_PYTHON_VERSION = re.compile(r"3\.\d{1,2}")


@dataclass(frozen=True)
class Settings:
    runners: dict[str, str]
    platforms: list[str]
    variants: list[str]
    python: list[str]
    libc: list[str]
    containers: dict[str, str]
    shard_size: int

    def container(self, libc: str | None, arch: str) -> str | None:
        """The job container of a Linux wheel flavour on `arch` (None: the job runs on the runner itself)."""
        image = self.containers.get(libc or "")
        return image.replace("{arch}", _LINUX_ARCH.get(arch, arch)) if image else None


def settings(ws: Workspace) -> Settings:
    """`[ci]` with defaults filled in; a bad value is a config error at its key."""
    ci = ws.config["ci"]
    config = ws.config
    for platform in ci["runners"]:
        config.platform(platform, ("ci", "runners", platform))
    for version in ci["python"]:
        if not _PYTHON_VERSION.fullmatch(version):
            raise config.error(("ci", "python"), f"'{version}' is not a Python version like 3.12",
                               "write major.minor versions, e.g. python = [\"3.11\", \"3.12\"]")
    if not ci["python"]:
        raise config.error(("ci", "python"), "[ci] python is empty", "name at least one version, e.g. [\"3.12\"]")
    for libc in ci["libc"]:
        if libc not in LIBCS:
            raise config.error(("ci", "libc"), f"unknown wheel flavour '{libc}'", "use manylinux and/or musllinux")
    if not ci["libc"]:
        raise config.error(("ci", "libc"), "[ci] libc is empty", "use [\"manylinux\"] (the default)")
    for libc in ci["containers"]:
        if libc not in LIBCS:
            raise config.error(("ci", "containers", libc), f"unknown wheel flavour '{libc}' in [ci.containers]",
                               "keys are manylinux and musllinux")
    return Settings(runners={**DEFAULT_RUNNERS, **ci["runners"]}, platforms=list(ci["platforms"]),
                    variants=list(ci["variants"]), python=list(dict.fromkeys(ci["python"])),
                    libc=list(dict.fromkeys(ci["libc"])), containers={**DEFAULT_CONTAINERS, **ci["containers"]},
                    shard_size=ci["shard-size"])
