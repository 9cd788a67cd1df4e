"""What a person sees: the per-task lines, the final summary, colour on a terminal and GitHub Actions log groups,
checked on the real command line (pipes, pseudo-terminals, the CI environment variables)."""

from __future__ import annotations

import signal
import subprocess
import sys

from conftest import PYTHON_SRC, polybuild_env
from test_execute import events, jobs_workspace


def _wait_for_start(root, count: int) -> None:
    import time

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
