"""The Debian packages the tests start as real servers and tools, and how `nox -s tests` provisions them.

The one list of them: the noxfile's `tests` session installs the missing ones before pytest (as root, with apt-get)
or stops with one message saying what to install. A plain module (no nox), so the tests check it too.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

# Debian package -> the command that shows it is installed, with the tests that need it.
SYSTEM_PACKAGES: dict[str, str] = {
    # nginx with its WebDAV module, as the remote cache: test_remote, test_faults_cache, test_license_fetch.
    "nginx-light": "nginx",
    # The CNCF distribution registry, an OCI registry for `container push|promote`: test_containers.
    "docker-registry": "docker-registry",
    # The image engine (vfs storage, chroot isolation): test_containers.
    "buildah": "buildah",
    # Base images are made locally, nothing is pulled from an image registry: a busybox root and a Debian root
    # with python3 (tests/containers.py, for test_containers).
    "busybox-static": "busybox",
    "debootstrap": "debootstrap",
    # The engine chosen in config: test_containers.
    "podman": "podman",
    # The shells whose completion scripts are tried in a real shell: test_cli_completion (bash is always there).
    "zsh": "zsh",
    "fish": "fish",
    # The sandbox of buildbox-casd's executor (buildbox-run with bubblewrap): test_reapi.
    "bubblewrap": "bwrap",
}
# Where Debian puts servers: on root's PATH but not on a user's, and the tests look there too (servers.py).
SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")

Which = Callable[[str], str | None]
Run = Callable[..., object]


def system_which(command: str) -> str | None:
    """The command on PATH or in the sbin directories."""
    return shutil.which(command, path=os.pathsep.join([os.environ.get("PATH", ""), *SBIN_DIRS]))


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def missing_packages(which: Which) -> list[str]:
    """The packages whose command `which` does not find, in the table's order."""
    return [package for package, command in SYSTEM_PACKAGES.items() if not which(command)]


def provision(run: Run, which: Which = system_which, is_root: bool | None = None) -> str | None:
    """Install the missing packages with `run` (apt-get, as root); where that is impossible (not root, no apt-get),
    the one message that says what to install. None when nothing is left to do."""
    missing = missing_packages(which)
    if not missing:
        return None
    if (running_as_root() if is_root is None else is_root) and which("apt-get"):
        run("apt-get", "update", "-qq")
        run("apt-get", "install", "-y", "-qq", *missing, env={"DEBIAN_FRONTEND": "noninteractive"})
        return None
    return (f"the tests need Debian packages that are not installed: {', '.join(missing)}. Install them with\n"
            f"    sudo apt-get install -y {' '.join(missing)}\n"
            "(`nox -s tests` run as root installs them itself)")
