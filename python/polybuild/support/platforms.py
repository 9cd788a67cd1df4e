"""Target platforms as `os/arch` (the notation of Go and OCI), and their names in each toolchain."""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass

_RUST_OS = {"linux": "unknown-linux-gnu", "darwin": "apple-darwin", "windows": "pc-windows-msvc"}
_RUST_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}
_MACHINE = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass(frozen=True, order=True)
class Platform:
    os: str
    arch: str

    @classmethod
    def parse(cls, value: str) -> Platform:
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
