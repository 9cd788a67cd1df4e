"""`polybuild init` on layouts that reproduce real repositories (a Cargo workspace with a maturin binding in a
Cargo workspace of its own, Python packages and Go modules, as in ai-dynamo/dynamo; names shared across
ecosystems; binaries of one name in two Go modules; a cgo preamble linking a Rust static library by path), and the
state directory that ignores itself. Every check runs the real command line and real git."""

from __future__ import annotations

import subprocess

from conftest import run_polybuild


def _git(root, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout


def _commit_all(root) -> None:
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "import")


def test_the_state_directory_polybuild_creates_ignores_itself(workspace):
    root = workspace({"pyproject.toml": '[project]\nname = "app"\nversion = "1.0"\n', "app/__init__.py": ""})
    _commit_all(root)  # no .gitignore at all: a repository that never heard of polybuild
    proc = run_polybuild("graph", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert (root / ".polybuild").is_dir()
    assert _git(root, "status", "--porcelain", "--untracked-files=all") == ""
    assert (root / ".polybuild" / ".gitignore").read_text().splitlines()[-1] == "*"


def test_a_state_directory_polybuild_did_not_create_is_left_alone(workspace):
    root = workspace({"pyproject.toml": '[project]\nname = "app"\nversion = "1.0"\n[tool.polybuild]\n'
                      'state-dir = "work"\n', "app/__init__.py": "", "work/notes.txt": "mine\n"})
    _commit_all(root)
    assert run_polybuild("graph", cwd=root).returncode == 0
    assert not (root / "work" / ".gitignore").exists()
    assert _git(root, "status", "--porcelain") == "?? work/discovery.json\n" or \
        "work/notes.txt" not in _git(root, "status", "--porcelain")
