"""Container fixtures: buildah in a private vfs store with chroot isolation, base images made here (busybox-static,
and a Debian root with Python from debootstrap; nothing is pulled), and polybuild's Go helper built once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
import tarfile
from pathlib import Path

from conftest import REPO

# A debootstrapped root is slow to make (~30 s); it is kept between test sessions here.
ROOTFS_CACHE = REPO / "target" / "tests" / "debian-python-rootfs.tar"
BUSYBOX_BASE = "localhost/pbtest/busybox:1"
PYTHON_BASE = "localhost/pbtest/python:3.11"


def buildah_env(root: Path) -> dict[str, str]:
    """Environment for buildah with its own storage under `root`."""
    conf = root / "storage.conf"
    if not conf.exists():
        root.mkdir(parents=True, exist_ok=True)
        conf.write_text(f'[storage]\ndriver = "vfs"\ngraphroot = "{root}/graph"\nrunroot = "{root}/run"\n')
    return {"CONTAINERS_STORAGE_CONF": str(conf), "BUILDAH_ISOLATION": "chroot"}


def buildah(env: dict[str, str], *args: str, input: bytes | None = None) -> str:
    assert shutil.which("buildah"), "buildah is not installed: apt-get install buildah (or nox -s tests)"
    proc = subprocess.run(["buildah", *args], env={**os.environ, **env}, capture_output=True, input=input,
                          timeout=600)
    assert proc.returncode == 0, f"buildah {' '.join(args)} failed:\n{proc.stderr.decode()}"
    return proc.stdout.decode().strip()


def commit_rootfs(env: dict[str, str], rootfs_tar: Path, ref: str) -> None:
    container = buildah(env, "from", "scratch")
    buildah(env, "add", container, str(rootfs_tar), "/")
    buildah(env, "config", "--env", "PATH=/usr/local/bin:/usr/bin:/bin", container)
    buildah(env, "commit", "--quiet", container, ref)
    buildah(env, "rm", container)


def busybox_rootfs(dest: Path) -> Path:
    """A tar of / with busybox-static and its applets as symlinks."""
    busybox = shutil.which("busybox")
    assert busybox, "busybox-static is not installed: apt-get install busybox-static (or nox -s tests)"
    with tarfile.open(dest, "w") as tar:
        tar.add(busybox, arcname="bin/busybox")
        for applet in ("sh", "cat", "ls", "echo", "test", "rm", "mkdir"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
    return dest


def debian_python_rootfs() -> Path:
    """A tar of a minimal Debian bookworm root with python3 (debootstrap from the Debian mirror)."""
    if ROOTFS_CACHE.exists():
        return ROOTFS_CACHE
    assert shutil.which("debootstrap"), "debootstrap is not installed: apt-get install debootstrap (or nox -s tests)"
    work = ROOTFS_CACHE.with_suffix(".d")
    shutil.rmtree(work, ignore_errors=True)
    subprocess.run(["debootstrap", "--variant=minbase", "--include=python3", "bookworm", str(work),
                    "http://deb.debian.org/debian"], check=True, capture_output=True, timeout=900)
    for junk in ("var/cache/apt/archives", "usr/share/doc", "usr/share/locale", "usr/share/man", "var/lib/apt/lists"):
        shutil.rmtree(work / junk, ignore_errors=True)
    tmp = ROOTFS_CACHE.with_suffix(".tmp")
    subprocess.run(["tar", "-C", str(work), "-cf", str(tmp), "."], check=True)
    os.replace(tmp, ROOTFS_CACHE)
    shutil.rmtree(work, ignore_errors=True)
    return ROOTFS_CACHE


def pip_wheel() -> Path:
    """The pip wheel bundled with this Python (ensurepip), to install wheels inside an image without an index."""
    bundled = Path(sysconfig.get_path("stdlib")) / "ensurepip" / "_bundled"
    return sorted(bundled.glob("pip-*.whl"))[-1]


def build_helper(dest: Path) -> Path:
    """polybuild's Go helper, built from go/ with the real Go toolchain."""
    binary = dest / "polybuild-helper"
    subprocess.run(["go", "build", "-trimpath", "-o", str(binary), "./cmd/polybuild-helper"], cwd=REPO / "go",
                   check=True, env={**os.environ, "CGO_ENABLED": "0"}, timeout=900)
    return binary


def path_without(tmp: Path, *commands: str) -> str:
    """This machine's PATH as one directory of links to its programs, without `commands`: a machine where they are
    not installed."""
    directory = tmp / "path-without"
    directory.mkdir()
    for entry in os.environ["PATH"].split(os.pathsep):
        programs = sorted(Path(entry).iterdir()) if Path(entry).is_dir() else []
        for program in programs:
            link = directory / program.name
            if program.name not in commands and not link.exists() and os.access(program, os.X_OK):
                link.symlink_to(program)
    return str(directory)
