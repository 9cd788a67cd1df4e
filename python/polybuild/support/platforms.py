"""Target platforms as `os/arch` (the notation of Go and OCI), and their names in each toolchain."""

from __future__ import annotations

import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from polybuild.support.errors import UserError

# Every platform polybuild builds for.
PLATFORMS = (
    "linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64", "windows/amd64", "windows/arm64",
)

_RUST_OS = {"linux": "unknown-linux-gnu", "darwin": "apple-darwin", "windows": "pc-windows-msvc"}
_RUST_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}
_MACHINE = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass(frozen=True, order=True)
class Platform:
    os: str
    arch: str

    @classmethod
    def parse(cls, value: str, source: str = "", valid: Sequence[str] = PLATFORMS, why: str = "") -> Platform:
        """The platform `value` (`os/arch`) names. Anything but one of `valid` (every platform polybuild builds
        for, unless the caller narrows them: the workspace's, Linux for images) is a UserError that names the
        value, `source` (where it was written: `file:line`, or a command-line option such as `--platform`), why it
        is refused (`why`, for a known platform outside `valid`) and the valid platforms."""
        if value not in valid:
            raise _refused(value, source, valid, why)
        os_name, _, arch = value.partition("/")
        return cls(os_name, arch)

    @property
    def name(self) -> str:
        return f"{self.os}/{self.arch}"

    @property
    def slug(self) -> str:
        return f"{self.os}-{self.arch}"

    @property
    def rust_triple(self) -> str:
        return f"{_RUST_ARCH[self.arch]}-{_RUST_OS[self.os]}"

    @property
    def exe_suffix(self) -> str:
        return ".exe" if self.os == "windows" else ""

    def __str__(self) -> str:
        return self.name


def host() -> Platform:
    """The platform polybuild runs on."""
    os_name = {"darwin": "darwin", "win32": "windows"}.get(sys.platform, "linux")
    machine = platform.machine().lower()
    return Platform(os_name, _MACHINE.get(machine, machine))


def _refused(value: str, source: str, valid: Sequence[str], why: str) -> UserError:
    """An option is shown as typed (`--platform linux/s390x: not a known platform`), a place in a file with the
    value quoted (`polybuild.toml:3: unknown platform 'linux/x86_64'`); `why` explains a known platform that is
    not valid there."""
    import difflib

    narrowed = value in PLATFORMS and why
    if source.startswith("-"):
        message = f"{source} {value}: {why if narrowed else 'not a known platform'}"
    else:
        where = f"{source}: " if source else ""
        message = f"{where}{value}: {why}" if narrowed else f"{where}unknown platform '{value}'"
    close = [] if value in PLATFORMS else difflib.get_close_matches(value, valid, n=1)  # a typo
    listed = f"valid platforms: {', '.join(valid)}"
    return UserError(message, hint=f"did you mean '{close[0]}'? {listed}" if close else listed)
