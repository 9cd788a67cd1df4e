"""Sessions for developers and CI; each is a thin wrapper over the `polybuild` command line."""

from __future__ import annotations

import sys
from pathlib import Path

import nox

nox.options.sessions = ["build", "tests"]
nox.options.reuse_existing_virtualenvs = True

# polybuild plus the backends it drives (maturin for the native core, hatchling for pure wheels) and the REAPI
# client's gRPC, at the versions locked in uv.lock, so every machine tests and builds with the same Python packages.
EXTRAS = ("builders", "remote")


def install_locked(session: nox.Session, *groups: str) -> None:
    """polybuild (editable) and exactly the locked versions of its dependencies (with hashes), plus `groups`."""
    session.install("uv>=0.9")
    # Next to the environment; not session.create_tmp(), which would point TMPDIR (and the tests' temporary
    # workspaces) into this git checkout.
    requirements = Path(session.virtualenv.location) / "locked-requirements.txt"
    session.run("uv", "export", "--quiet", "--frozen", "--no-emit-project", "--no-emit-package", "polybuild-core",
                *(f"--extra={e}" for e in EXTRAS), *(f"--group={g}" for g in groups), "--output-file",
                str(requirements), silent=True)
    session.install("-r", str(requirements))
    session.install("--no-deps", "-e", ".")


@nox.session
def build(session: nox.Session) -> None:
    """Build this repository with polybuild: wheels, native core and Go helper into dist/."""
    install_locked(session)
    session.run("polybuild", "build", *session.posargs)
    # polybuild then runs on the native core it just built (the pure-Python fallback gives the same results).
    cores = sorted(Path("dist").glob("polybuild_core-*.whl"))
    if cores:
        session.install("--force-reinstall", "--no-deps", str(cores[-1]))


def provision_system_packages(session: nox.Session) -> None:
    """The servers and tools the tests start (nginx, an OCI registry, buildah, ...; the list with the tests that need
    them is tests/system_packages.py): apt-get installs the missing ones as root, otherwise the session stops
    before pytest with one message saying what to install."""
    sys.path.insert(0, str(Path("tests").resolve()))
    from system_packages import provision

    message = provision(lambda *args, env=None: session.run(*args, env=env, external=True, silent=True))
    if message:
        session.error(message)


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite, with the real toolchains (`-- -m "not e2e"` for the fast part only)."""
    provision_system_packages(session)
    install_locked(session, "test")
    session.run("pytest", *session.posargs)


@nox.session
def release(session: nox.Session) -> None:
    """Cut a release of the checked-out commit: `nox -s release -- 1.2.0` (`-- 1.2.0 --dry-run` to check it all
    without tagging). The commit must already carry the version (`polybuild version set 1.2.0`, commit)."""
    if not session.posargs:
        session.error("give the version: nox -s release -- 1.2.0 [--dry-run]")
    install_locked(session)
    session.run("polybuild", "release", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the Python sources, through polybuild's own `lint` task, and the layering contracts."""
    install_locked(session, "test")
    session.run("polybuild", "run", "lint")
    session.run("lint-imports")


@nox.session
def licenses(session: nox.Session) -> None:
    """The dependency policy (deny.toml) over Rust, Python and Go, then this repository's ATTRIBUTIONS*.md, from the
    lockfiles' packages (fetched first; `-- --check` only checks that the committed files are current)."""
    install_locked(session)
    session.run("polybuild", "deny", "--fetch")
    session.run("polybuild", "attributions", *session.posargs)
