"""A newcomer's set-up: `nox -s tests` provisions the servers and tools the suite starts, or says what to install."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, copy_example, run_polybuild
from system_packages import SBIN_DIRS, SYSTEM_PACKAGES, missing_packages, provision, system_which


def bin_dir(path: Path, *commands: str) -> Path:
    """A PATH directory holding only `commands` (empty executables)."""
    path.mkdir(parents=True, exist_ok=True)
    for command in commands:
        (path / command).write_text("#!/bin/sh\n")
        (path / command).chmod(0o755)
    return path


def which_in(path: Path):
    """`which` on a machine whose PATH is only `path` (no sbin directories either)."""
    return lambda command: shutil.which(command, path=str(path))


class Recorder:
    """Stands in for `session.run`: tests must not install system packages."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[str, ...], dict[str, str] | None]] = []

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.calls.append((args, env))


@pytest.mark.parametrize(("is_root", "commands"), [(False, ("apt-get",)), (True, ())], ids=["not-root", "no-apt"])
def test_fresh_machine_without_apt_rights_gets_one_message(tmp_path: Path, is_root: bool,
                                                            commands: tuple[str, ...]) -> None:
    path = bin_dir(tmp_path / "bin", "nginx", *commands)
    run = Recorder()
    message = provision(run, which_in(path), is_root=is_root)
    missing = ["docker-registry", "buildah", "busybox-static", "debootstrap", "podman", "zsh", "fish", "bubblewrap"]
    assert message is not None
    assert f"not installed: {', '.join(missing)}." in message
    assert f"\n    sudo apt-get install -y {' '.join(missing)}\n" in message
    assert run.calls == []


def test_fresh_machine_as_root_installs_the_missing_packages(tmp_path: Path) -> None:
    path = bin_dir(tmp_path / "bin", "apt-get", "podman")
    run = Recorder()
    assert provision(run, which_in(path), is_root=True) is None
    assert run.calls == [
        (("apt-get", "update", "-qq"), None),
        (("apt-get", "install", "-y", "-qq", "nginx-light", "docker-registry", "buildah", "busybox-static",
          "debootstrap", "zsh", "fish", "bubblewrap"), {"DEBIAN_FRONTEND": "noninteractive"}),
    ]


def test_provisioned_machine_installs_nothing(tmp_path: Path) -> None:
    commands = [*SYSTEM_PACKAGES.values(), "apt-get"]
    run = Recorder()
    assert provision(run, which_in(bin_dir(tmp_path / "bin", *commands)), is_root=True) is None
    assert run.calls == []
    # This machine, which `nox -s tests` provisioned: the table names the commands the packages really install.
    assert missing_packages(system_which) == []
    assert provision(run, is_root=True) is None
    assert run.calls == []


def test_nox_session_stops_before_pytest_with_the_message(tmp_path: Path) -> None:
    """The real `nox -s tests` (the version `pip install nox` gets) on a PATH without the servers, nor apt-get: one
    message, exit 1, before anything is installed."""
    uv = shutil.which("uv")
    assert uv, "uv is not installed (the tests session installs it)"
    path = bin_dir(tmp_path / "bin")
    proc = subprocess.run([uv, "tool", "run", "--python", sys.executable, "--from", "nox", "python", "-m", "nox",
                           "--no-venv", "-f", str(REPO / "noxfile.py"), "-s", "tests"],
                          env={**os.environ, "PATH": str(path)}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    # The servers Debian puts in sbin may be installed here; the others cannot be on this PATH.
    missing = missing_packages(lambda command: shutil.which(command, path=os.pathsep.join([str(path), *SBIN_DIRS])))
    assert {"docker-registry", "buildah", "busybox-static", "podman"} <= set(missing)
    assert f"Session tests aborted: the tests need Debian packages that are not installed: {', '.join(missing)}." \
        in proc.stderr
    assert f"    sudo apt-get install -y {' '.join(missing)}\n" in proc.stderr
    assert "install uv" not in proc.stderr


def readme_output(command: str) -> list[str]:
    """The output the README shows under `$ command` in its walkthrough, up to the next blank line."""
    lines = (REPO / "README.md").read_text().splitlines()
    start = lines.index(f"$ {command}") + 1
    return lines[start:lines.index("", start)]


def test_readme_starts_with_the_two_commands() -> None:
    readme = (REPO / "README.md").read_text()
    first_block = readme.split("```\n", 2)[1]
    assert [line.split("  #")[0].strip() for line in first_block.splitlines()] == [
        "python3 -m pip install nox && nox -s build", "nox -s tests"]


def test_readme_shows_what_graph_prints(tmp_path: Path) -> None:
    root = copy_example("serving", tmp_path / "serving")
    out = run_polybuild("-C", str(root), "graph", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == readme_output("polybuild -C examples/serving graph")
