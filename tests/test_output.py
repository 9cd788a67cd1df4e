"""What a person sees: the per-task lines, the final summary, colour on a terminal and GitHub Actions log groups,
checked on the real command line (pipes, pseudo-terminals, the CI environment variables)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

from conftest import PYTHON_SRC, polybuild_env, run_polybuild
from test_execute import events, jobs_workspace, run_jobs


def _wait_for_start(root, count: int) -> None:
    deadline = time.monotonic() + 60
    while len(events(root)) < count and time.monotonic() < deadline:
        time.sleep(0.05)


def test_ctrl_c_says_the_task_was_interrupted(workspace):
    """It used to print `[1/1] stoppedpy:slow:job  4.6s (stopped because another task failed)`."""
    root = jobs_workspace(workspace, {"slow": ([], 300, "ok")})
    env = polybuild_env(JOBLOG=str(root / "job.log"), PYTHONPATH=str(PYTHON_SRC))
    proc = subprocess.Popen([sys.executable, "-m", "polybuild", "run", "job"], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_start(root, 1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    line = next((line for line in err.splitlines() if line.startswith("[1/1] stopped")), err)
    assert line.startswith("[1/1] stopped py:slow:job  "), line
    assert line.endswith("s (interrupted)"), line
    assert "another task failed" not in err


SUMMARY = re.compile(r"^polybuild: (.*) in (\d+\.\d+)s$", re.M)


def test_build_and_run_end_with_a_summary_line_with_wall_time(workspace):
    root = jobs_workspace(workspace, {"a": ([], 0.3, "ok"), "b": (["a"], 0.1, "fail"), "c": (["b"], 0.1, "ok")})
    proc = run_jobs(root, "-k")
    assert proc.returncode == 1
    counts, seconds = SUMMARY.search(proc.stderr).groups()
    assert counts == "1 done, 1 failed, 1 skipped"
    assert 0.3 < float(seconds) < 60  # the whole run, including a's 0.3 s


def test_the_no_op_fast_path_gives_this_runs_time(workspace):
    """The fast path replays the last run's artifacts; its summary line says so and times this run."""
    root = jobs_workspace(workspace, {"a": ([], 1.0, "ok")})
    env = polybuild_env(JOBLOG=str(root / "job.log"), POLYBUILD_FAST_PATH="1")
    time.sleep(2.1)  # files younger than 2 s are never trusted by stat alone
    first = run_polybuild("run", "job", cwd=root, env=env)
    assert SUMMARY.search(first.stderr).group(1) == "1 done", first.stderr
    time.sleep(2.1)
    assert SUMMARY.search(run_polybuild("run", "job", cwd=root, env=env).stderr).group(1) == "1 cached"
    again = run_polybuild("run", "job", cwd=root, env=env)
    counts, seconds = SUMMARY.search(again.stderr).groups()
    assert counts == "1 cached (nothing changed since the last run)"
    assert float(seconds) < 1.0  # this run's time, not the first run's 1 s job
