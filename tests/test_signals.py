"""Signals, a closed stdout and abandoned staging directories, with real child processes: whatever stops polybuild,
no build it started keeps running, and nothing it left behind breaks the next run."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import PYTHON_SRC, polybuild_env, run_polybuild
from test_execute import _alive, events, jobs_workspace


def _start(root: Path, *args: str, stdout=subprocess.PIPE) -> subprocess.Popen[str]:
    env = polybuild_env(JOBLOG=str(root / "job.log"), PYTHONPATH=str(PYTHON_SRC))
    return subprocess.Popen([sys.executable, "-m", "polybuild", "run", "job", *args], cwd=root, env=env,
                            stdout=stdout, stderr=subprocess.PIPE, text=True)


def _child_pids(root: Path, count: int) -> list[int]:
    """The pids of the first `count` jobs, once they all started."""
    deadline = time.monotonic() + 60
    while len(events(root)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return [pid for what, _, _, pid in _rows(root) if what == "start"]


def _rows(root: Path) -> list[tuple[str, str, str, int]]:
    log = root / "job.log"
    rows = [line.split() for line in log.read_text().splitlines()] if log.exists() else []
    return [(what, name, t, int(pid)) for what, name, t, pid in rows]


def _gone_within(pids: list[int], seconds: float) -> list[int]:
    """The pids still alive after waiting up to `seconds` for them to go."""
    deadline = time.monotonic() + seconds
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_stop_children_like_ctrl_c(workspace, sig, code):
    root = jobs_workspace(workspace, {"slow": ([], 300, "ok"), "slower": ([], 300, "ok")})
    proc = _start(root, "-j", "2")
    pids = _child_pids(root, 2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert "terminated" in err and "Traceback" not in err
    assert not [p for p in pids if _alive(p)], "a child survived polybuild's exit"


def test_children_die_when_polybuild_is_killed(workspace):
    """kill -9 gives polybuild no chance to clean up: its supervisor terminates the children's process groups."""
    root = jobs_workspace(workspace, {"slow": ([], 300, "ok"), "slower": ([], 300, "ok")})
    proc = _start(root, "-j", "2")
    pids = _child_pids(root, 2)
    proc.kill()
    proc.communicate(timeout=30)
    assert not _gone_within(pids, 15), "children kept running after polybuild was killed"


def test_closed_stdout_stops_the_run_quietly(workspace):
    """`polybuild run job --json | head -1`: the reader leaves after the first line; polybuild stops at once
    (it used to wait forever on a worker that had died of the broken pipe, holding the workspace lock)."""
    root = jobs_workspace(workspace, {"a": ([], 0.2, "ok"), "b": (["a"], 0.2, "ok"), "slow": ([], 300, "ok")})
    proc = _start(root, "-j", "2", "--json")
    assert proc.stdout.readline().startswith('{"event": "plan"')
    proc.stdout.close()  # what `head -1` does after its line
    try:
        err = proc.stderr.read()
        proc.wait(timeout=30)
    finally:
        proc.kill()
    pids = [pid for what, _, _, pid in _rows(root) if what == "start"]
    assert proc.returncode == 141  # 128 + SIGPIPE, as for `cat`
    assert "Traceback" not in err and "Exception" not in err, err
    assert not _gone_within(pids, 10)
    again = run_polybuild("run", "job", "a", cwd=root, env=polybuild_env(JOBLOG=str(root / "job.log")), timeout=60)
    assert again.returncode == 0, again.stderr  # the workspace lock was released


def test_closed_stdout_pipe_through_head(workspace):
    """The same through a real shell pipeline, as users type it."""
    root = jobs_workspace(workspace, {"a": ([], 0.2, "ok"), "b": (["a"], 0.2, "ok"), "slow": ([], 300, "ok")})
    env = polybuild_env(JOBLOG=str(root / "job.log"), PYTHONPATH=str(PYTHON_SRC))
    shell = f"'{sys.executable}' -m polybuild run job -j 2 --json | head -1; echo \"exit=${{PIPESTATUS[0]}}\""
    proc = subprocess.run(["bash", "-c", shell], cwd=root, env=env, capture_output=True, text=True, timeout=60)
    assert proc.stdout.splitlines()[-1] == "exit=141", proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_abandoned_staging_directories_are_removed_by_the_next_run(workspace):
    root = jobs_workspace(workspace, {"a": ([], 0.1, "ok")})
    abandoned = root / ".polybuild" / "tmp" / "py_a-0badc0de" / "out"
    abandoned.mkdir(parents=True)
    (abandoned / "half-written.whl").write_bytes(b"PK")
    proc = run_polybuild("run", "job", cwd=root, env=polybuild_env(JOBLOG=str(root / "job.log")), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert not (root / ".polybuild" / "tmp").exists()


def test_grandchildren_die_when_polybuild_is_killed(workspace):
    """A task's own children (rustc under cargo) are in its process group, and go with it."""
    root = workspace({
        "pkgs/a/pyproject.toml": '[project]\nname = "a"\nversion = "1.0"\n',
        "polybuild.toml": '[targets.a.tasks.job]\ncmd = ["sh", "-c", "sleep 300 & echo $! > ../../grandchild; wait"]\n',
    })
    proc = _start(root)
    pid_file = root / "grandchild"
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int(pid_file.read_text())
    proc.kill()
    proc.communicate(timeout=30)
    assert not _gone_within([grandchild], 15), "the task's child kept running after polybuild was killed"


def test_nohup_still_ignores_sighup(workspace):
    root = jobs_workspace(workspace, {"a": ([], 1.0, "ok")})
    env = polybuild_env(JOBLOG=str(root / "job.log"), PYTHONPATH=str(PYTHON_SRC))
    proc = subprocess.Popen(["nohup", sys.executable, "-m", "polybuild", "run", "job"], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _child_pids(root, 1)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
