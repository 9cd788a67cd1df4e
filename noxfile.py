"""Sessions for developers and CI; each is a thin wrapper over the `polybuild` command line."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["build", "tests"]
nox.options.reuse_existing_virtualenvs = True

# polybuild plus the backends it drives (maturin for the native core, hatchling for pure wheels).
SELF = ".[builders]"


@nox.session
def build(session: nox.Session) -> None:
    """Build this repository with polybuild: wheels, native core and Go helper into dist/."""
    session.install("-e", SELF)
    session.run("polybuild", "build", *session.posargs)
    # polybuild then runs on the native core it just built (the pure-Python fallback gives the same results).
    cores = sorted(Path("dist").glob("polybuild_core-*.whl"))
    if cores:
        session.install("--force-reinstall", "--no-deps", str(cores[-1]))


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite, with the real toolchains (`-- -m "not e2e"` for the fast part only)."""
    # setuptools: the tests also build a package with a non-hatchling PEP 517 backend; the SBOM validators are
    # the real tools of each format.
    session.install("-e", SELF, "pytest>=8", "ruff", "setuptools>=70", "cyclonedx-python-lib[json-validation]>=11",
                    "spdx-tools>=0.8")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the Python sources, through polybuild's own `lint` task."""
    session.install("-e", SELF, "ruff")
    session.run("polybuild", "run", "lint")
