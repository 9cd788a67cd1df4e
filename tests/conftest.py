"""Shared helpers: synthetic workspaces written from dicts, and the real `polybuild` command run as a process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PYTHON_SRC = REPO / "python"
# One Cargo target directory for every test build, so crates compile once per test session.
SHARED_CARGO_TARGET = Path(os.environ.get("POLYBUILD_TEST_CARGO_TARGET", REPO / "target" / "tests"))
os.environ.setdefault("CARGO_TARGET_DIR", str(SHARED_CARGO_TARGET))


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Create files (dedented) under root; returns root."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")
    return root


def polybuild_env(**extra: str) -> dict[str, str]:
    # The no-op fast path would answer repeated runs from a summary; tests of per-task caching need every task.
    env = {**os.environ, "PYTHONPATH": str(PYTHON_SRC), "CARGO_TARGET_DIR": str(SHARED_CARGO_TARGET),
           "POLYBUILD_FAST_PATH": "0"}
    # tests' builds are not the job's, and their output is asserted as plain text (a CI may force colour)
    for name in ("CI", "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT", "FORCE_COLOR"):
        env.pop(name, None)
    env.update(extra)
    return env


def run_polybuild(*args: str, cwd: Path, env: dict[str, str] | None = None,
                  timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run the real command line, as a user would."""
    return subprocess.run([sys.executable, "-m", "polybuild", *args], cwd=cwd, env=env or polybuild_env(),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets an empty cache of its own, so no test is served another's results."""
    cache = tmp_path / "polybuild-cache"
    monkeypatch.setenv("POLYBUILD_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def workspace(tmp_path: Path):
    """A factory for synthetic workspaces: workspace({"path": "content", ...}) -> root."""

    def make(files: dict[str, str]) -> Path:
        return write_tree(tmp_path / "ws", files)

    return make


def copy_example(name: str, dest: Path) -> Path:
    """A private copy of an example monorepo (without build outputs), so tests never write into the repo."""
    ignore = shutil.ignore_patterns("target", "dist", ".polybuild", "__pycache__", "*.egg-info")
    shutil.copytree(REPO / "examples" / name, dest, ignore=ignore)
    return dest


def checkout_copy(dest: Path) -> Path:
    """The repository's files as git sees them (or the tree without build outputs), copied to `dest`."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=REPO,
                             capture_output=True, check=True).stdout.decode()
        files = [f for f in out.split("\0") if f and (REPO / f).is_file()]
    except (OSError, subprocess.CalledProcessError):
        files = None
    if files is None:
        shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns("target", "dist", ".nox", ".polybuild", ".git"))
        return dest
    for f in files:
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / f, dest / f, follow_symlinks=False)
    return dest
