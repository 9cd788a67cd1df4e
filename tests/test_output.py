"""What a person sees: the per-task lines, the final summary, colour on a terminal and GitHub Actions log groups,
checked on the real command line (pipes, pseudo-terminals, the CI environment variables)."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time

import pytest

from conftest import PYTHON_SRC, copy_example, polybuild_env, run_polybuild
from test_execute import events, jobs_workspace, run_jobs


def _wait_for_start(root, count: int) -> None:
    deadline = time.monotonic() + 60
    while len(events(root)) < count and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.parametrize(("sig", "code", "why"), [(signal.SIGINT, 130, "interrupted"),
                                                  (signal.SIGTERM, 143, "terminated by SIGTERM")])
def test_ctrl_c_says_the_task_was_interrupted(workspace, sig, code, why):
    """It used to print `[1/1] stoppedpy:slow:job  4.6s (stopped because another task failed)`, and sometimes
    nothing (the run ended before the cancelled task was recorded)."""
    root = jobs_workspace(workspace, {"slow": ([], 300, "ok")})
    env = polybuild_env(JOBLOG=str(root / "job.log"), PYTHONPATH=str(PYTHON_SRC))
    proc = subprocess.Popen([sys.executable, "-m", "polybuild", "run", "job"], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_start(root, 1)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    line = next((line for line in err.splitlines() if line.startswith("[1/1] stopped")), err)
    assert line.startswith("[1/1] stopped py:slow:job  "), line
    assert line.endswith(f"s ({why})"), line
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


SGR = re.compile(r"\x1b\[[0-9;]*m")
GREEN_DONE = "\x1b[32mdone\x1b[0m"


def _env(root, **extra: str) -> dict[str, str]:
    """The test environment without the caller's colour settings, plus `extra`."""
    env = polybuild_env(JOBLOG=str(root / "job.log"), TERM="xterm")
    env.pop("NO_COLOR", None)
    return {**env, **extra}


def _on_terminal(root, *args: str, **extra: str) -> str:
    """Run polybuild with stdout and stderr on a pseudo-terminal, as in an interactive shell; what it wrote."""
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "polybuild", *args], cwd=root, env=_env(root, **extra),
                            stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    try:
        while select.select([master], [], [], 60)[0]:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer of the terminal is gone
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        proc.wait(timeout=60)
    return b"".join(chunks).decode()


def test_colour_on_a_terminal_only_for_status_words(workspace):
    root = jobs_workspace(workspace, {"a": ([], 0.1, "ok"), "b": ([], 0.1, "fail")})
    out = _on_terminal(root, "run", "job", "-k")
    assert GREEN_DONE in out, out
    assert "\x1b[1;31mFAILED\x1b[0m" in out and "\x1b[1;31merror:\x1b[0m py:b:job failed" in out, out
    summary = next(line for line in out.splitlines() if line.startswith("polybuild: "))
    assert SGR.sub("", summary).startswith("polybuild: 1 done, 1 failed in "), summary
    assert "py:a:job" in out and "\x1b[32mpy:a:job" not in out  # the task id stays plain


def test_no_color_turns_colour_off_on_a_terminal(workspace):
    root = jobs_workspace(workspace, {"a": ([], 0.1, "ok")})
    out = _on_terminal(root, "run", "job", NO_COLOR="1")
    assert "py:a:job" in out and not SGR.search(out), out
    assert not SGR.search(_on_terminal(root, "--color", "never", "run", "job"))


def test_colour_through_a_pipe_only_when_forced(workspace):
    root = jobs_workspace(workspace, {"a": ([], 0.1, "ok")})
    plain = run_polybuild("run", "job", cwd=root, env=_env(root))
    assert plain.returncode == 0 and "done   py:a:job" in plain.stderr and not SGR.search(plain.stderr)
    forced = run_polybuild("run", "job", cwd=root, env=_env(root, FORCE_COLOR="1"))
    assert "\x1b[36mcached\x1b[0m py:a:job" in forced.stderr, forced.stderr
    always = run_polybuild("--color", "always", "run", "job", cwd=root, env=_env(root, NO_COLOR="1"))
    assert "\x1b[36mcached\x1b[0m py:a:job" in always.stderr, always.stderr  # the option wins over NO_COLOR
    bad = run_polybuild("--color", "sometimes", "run", "job", cwd=root, env=_env(root))
    assert bad.returncode == 2 and "invalid choice: 'sometimes'" in bad.stderr


def test_github_actions_folds_each_task_log_and_expands_failures(workspace):
    say = "import sys; print('compiling', sys.argv[1]); print('::endgroup::'); print('::error::forged')"
    fail = "import sys; print('b: simulated compiler error on line 42'); sys.exit(3)"
    root = workspace({
        "pkgs/a/pyproject.toml": '[project]\nname = "a"\nversion = "1.0"\n',
        "pkgs/b/pyproject.toml": '[project]\nname = "b"\nversion = "1.0"\n',
        "pkgs/c/pyproject.toml": '[project]\nname = "c"\nversion = "1.0"\n',
        "polybuild.toml": (f"[targets.a.tasks.job]\ncmd = {json.dumps([sys.executable, '-c', say, 'a'])}\n"
                           f"[targets.b.tasks.job]\ncmd = {json.dumps([sys.executable, '-c', fail])}\n"
                           f"[targets.c.tasks.job]\ncmd = {json.dumps([sys.executable, '-c', 'pass'])}\n"),
    })
    proc = run_polybuild("run", "job", "-k", cwd=root, env=polybuild_env(GITHUB_ACTIONS="true"))
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    start = lines.index("::group::py:a:job")
    token = lines[start + 1].removeprefix("::stop-commands::")
    end = lines.index(f"::{token}::")
    assert len(token) == 32 and lines[end + 1] == "::endgroup::"
    # the log (its command, then what it printed); its own `::endgroup::` and `::error` are inert: workflow
    # commands are off until the token
    assert lines[start + 2].startswith("$ ")
    assert lines[end - 3:end] == ["compiling a", "::endgroup::", "::error::forged"]
    assert "::group::py:b:job" in lines
    assert not any(line == "::group::py:c:job" for line in lines)  # c printed nothing: no log
    # the failure is expanded after the groups: its tail outside any group, and an annotation
    details = lines.index("error: py:b:job failed")
    assert details > max(i for i, line in enumerate(lines) if line == "::endgroup::")
    assert "  | b: simulated compiler error on line 42" in lines[details:]
    assert any(line.startswith("::error file=pkgs/b/pyproject.toml") for line in lines)
    quiet = run_polybuild("run", "job", "-k", cwd=root, env=polybuild_env())
    assert "::group::" not in quiet.stderr  # outside Actions, no workflow commands


def test_a_skipped_image_is_one_line_with_the_reason(workspace, tmp_path):
    """The engine's error is a chain of causes (several lines with some engines): the note keeps the innermost."""
    from containers import buildah_env

    root = workspace({
        "polybuild.toml": '[images.app]\ntemplate = "Dockerfile"\noptional = true\n[container]\nengine = "buildah"\n',
        "Dockerfile": "FROM 127.0.0.1:9/nothing/base:1\n",
    })
    proc = run_polybuild("build", cwd=root, env=polybuild_env(**buildah_env(tmp_path / "buildah")), timeout=300)
    assert proc.returncode == 0, proc.stderr
    [note] = [line for line in proc.stderr.splitlines() if "image:app" in line]
    assert note.startswith("note: skipped image:app: base image 127.0.0.1:9/nothing/base:1 cannot be pulled: "), note
    assert ": dial tcp 127.0.0.1:9: connect: connection refused (" in note and "initializing source" not in note
    assert note.endswith("(`buildah pull 127.0.0.1:9/nothing/base:1` shows the engine's full message)")


def test_bare_polybuild_prints_the_help(tmp_path):
    proc = run_polybuild(cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: polybuild") and "build" in proc.stdout and "--color" in proc.stdout


def test_run_without_a_task_asks_for_the_task_only(tmp_path):
    proc = run_polybuild("run", cwd=tmp_path)
    assert proc.returncode == 2
    assert "are required: task, TARGET" not in proc.stderr  # argparse's message: TARGETs are optional
    assert "run needs the name of a TASK (e.g. `polybuild run test`)" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_version_check_says_what_it_checked(tmp_path):
    root = copy_example("serving", tmp_path / "serving")
    proc = run_polybuild("version", "check", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "polybuild: version check: 9 places agree on 0.3.0\n"
    assert proc.stdout == ""
