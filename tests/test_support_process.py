"""polybuild.support.process: `run_tool` and `git`, the one way a short tool run is made and its failure reported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from polybuild.support.errors import UserError
from polybuild.support.process import git, run_tool


def test_a_tool_run_gives_its_output() -> None:
    proc = run_tool([sys.executable, "-c", "import sys; print(sys.stdin.read() == '')"], "probing Python")
    assert proc.stdout == "True\n"  # no stdin: a tool that asks for input gets end-of-file, never a hang


def test_a_missing_tool_is_a_user_error_with_the_install_hint(tmp_path: Path) -> None:
    with pytest.raises(UserError) as exc:
        run_tool([str(tmp_path / "cargo"), "metadata"], "cargo metadata for Cargo.toml")
    assert exc.value.message == \
        f"cargo metadata for Cargo.toml: cannot run {tmp_path / 'cargo'}: No such file or directory"
    assert exc.value.hint is not None and "rustup" in exc.value.hint


def test_a_failing_tool_shows_what_it_said() -> None:
    with pytest.raises(UserError) as exc:
        run_tool([sys.executable, "-c", "import sys; sys.exit('the manifest is broken')"], "reading the manifest")
    assert exc.value.message == "reading the manifest failed:\nthe manifest is broken"
    proc = run_tool([sys.executable, "-c", "raise SystemExit(3)"], "probing", check=False)
    assert proc.returncode == 3


def test_a_tool_that_hangs_is_stopped() -> None:
    with pytest.raises(UserError, match=r"^probing: python\S* did not finish within 0.5 s$"):
        run_tool([sys.executable, "-c", "import time; time.sleep(30)"], "probing", timeout=0.5)


def test_git_runs_in_the_directory_and_reports_failures(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "--quiet", str(tmp_path)], check=True)
    assert git(tmp_path, "rev-parse", "--show-toplevel").stdout.strip() == str(tmp_path.resolve())
    assert git(tmp_path, "rev-parse", "--verify", "--quiet", "HEAD", check=False).returncode != 0
    with pytest.raises(UserError) as exc:
        git(tmp_path, "log", "-1")
    assert exc.value.message.startswith(f"git log -1 in {tmp_path} failed:\nfatal: ")
