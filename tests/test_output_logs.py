"""`--output-logs full|errors-only|none`: the tools' output live (prefixed with its task, whole lines), only a
failure's log (the default), or nothing at all; checked on the real command line, reading its output as it comes."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import polybuild_env, run_polybuild

# Prints a line, waits until the test has seen it (the test creates the file `go`), then prints another.
WAIT_THEN_SAY = """
import os, sys, time
print("first line from a", flush=True)
deadline = time.monotonic() + 120
while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
    time.sleep(0.05)
print("second line from a", flush=True)
"""
FAIL = "import sys; print('b: the error ' + 'a tool printed'); sys.exit(3)"  # the command does not say it
CHATTY = "import sys; [print(sys.argv[1], n, 'x' * 300) for n in range(2000)]"


def _tasks(make, tasks: dict[str, list[str]], extra: str = "") -> Path:
    """Python packages, each with a custom task `job` running `argv` (never cached: every run runs it)."""
    files = {f"pkgs/{name}/pyproject.toml": f'[project]\nname = "{name}"\nversion = "1.0"\n' for name in tasks}
    config = [f"[targets.{name}.tasks.job]\ncmd = {json.dumps(argv)}\ncache = false\n" for name, argv in tasks.items()]
    files["polybuild.toml"] = extra + "\n".join(config)
    return make(files)


def _py(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def test_full_shows_a_childs_line_while_the_task_still_runs(workspace, tmp_path):
    go = tmp_path / "go"
    root = _tasks(workspace, {"a": _py(WAIT_THEN_SAY, str(go))})
    proc = subprocess.Popen([sys.executable, "-m", "polybuild", "run", "job", "--output-logs", "full"], cwd=root,
                            env=polybuild_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = b""
    deadline = time.monotonic() + 60
    try:
        while b"first line from a\n" not in seen and time.monotonic() < deadline:
            if select.select([proc.stderr], [], [], 1)[0]:
                seen += proc.stderr.read1(65536)
        assert b"py:a:job: first line from a\n" in seen, seen
        assert proc.poll() is None and b"second line" not in seen  # the task is still running
    finally:
        go.touch()
    _, rest = proc.communicate(timeout=60)
    err = (seen + rest).decode()
    assert proc.returncode == 0, err
    assert "py:a:job: second line from a\n" in err
    assert err.index("first line") < err.index("second line") < err.index("done   py:a:job")
    log = (root / ".polybuild" / "logs" / "py_a_job.log").read_text()  # still captured, as before
    assert "first line from a\nsecond line from a\n" in log


def test_full_interleaves_parallel_tasks_by_whole_lines(workspace):
    root = _tasks(workspace, {"a": _py(CHATTY, "a"), "b": _py(CHATTY, "b"),
                              "c": _py("import sys; sys.stdout.write('no newline at the end')")})
    proc = run_polybuild("run", "job", "-j", "3", "--output-logs", "full", cwd=root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    child = [line for line in proc.stderr.splitlines() if line.startswith("py:")]
    whole = re.compile(r"py:(a|b):job: \1 \d+ x{300}$")
    assert all(whole.match(line) for line in child if not line.startswith("py:c:")), \
        next(line for line in child if not whole.match(line) and not line.startswith("py:c:"))
    for name in "ab":  # every line, in order
        numbers = [int(line.split()[2]) for line in child if line.startswith(f"py:{name}:")]
        assert numbers == list(range(2000))
    assert "py:c:job: no newline at the end" in child


def test_errors_only_is_the_default_and_shows_a_failures_log(workspace, tmp_path):
    root = _tasks(workspace, {"a": _py("print('chatter ' + 'of a success')"), "b": _py(FAIL)})
    for args in ((), ("--output-logs", "errors-only")):
        proc = run_polybuild("run", "job", "-k", *args, cwd=root)
        assert proc.returncode == 1
        assert "chatter of a success" not in proc.stderr
        assert "error: py:b:job failed" in proc.stderr and "  | b: the error a tool printed" in proc.stderr
        assert "log: .polybuild/logs/py_b_job.log (last 4 lines)" in proc.stderr


def test_none_shows_nothing_of_the_tools_even_on_failure(workspace):
    root = _tasks(workspace, {"a": _py("print('chatter ' + 'of a success')"), "b": _py(FAIL)})
    for env in (polybuild_env(), polybuild_env(GITHUB_ACTIONS="true")):
        proc = run_polybuild("run", "job", "-k", "--output-logs", "none", cwd=root, env=env)
        assert proc.returncode == 1
        assert "chatter" not in proc.stderr and "the error a tool printed" not in proc.stderr.replace("%0A", "\n")
        assert "::group::" not in proc.stderr
        lines = proc.stderr.splitlines()
        details = lines.index("error: py:b:job failed")
        assert lines[details + 2] == "  log: .polybuild/logs/py_b_job.log"  # where the log is, nothing of it
    assert "b: the error a tool printed" in (root / ".polybuild" / "logs" / "py_b_job.log").read_text()


def test_the_config_key_sets_the_default_and_the_flag_wins(workspace):
    root = _tasks(workspace, {"a": _py("print('chatter ' + 'of a success')")}, extra='output-logs = "full"\n')
    assert "py:a:job: chatter of a success" in run_polybuild("run", "job", cwd=root).stderr
    quiet = run_polybuild("run", "job", "--output-logs", "none", cwd=root)
    assert quiet.returncode == 0 and "chatter" not in quiet.stderr
    (root / "polybuild.toml").write_text((root / "polybuild.toml").read_text().replace('"full"', '"loud"'))
    bad = run_polybuild("run", "job", cwd=root)
    assert bad.returncode == 2 and "output-logs" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr


def test_full_in_github_actions_keeps_workflow_commands_inert(workspace):
    say = "print('::endgroup::'); print('::add-mask::hunter2'); print('compiled')"
    root = _tasks(workspace, {"a": _py(say), "b": _py(FAIL)})
    env = polybuild_env(GITHUB_ACTIONS="true")
    proc = run_polybuild("run", "job", "-k", "--output-logs", "full", cwd=root, env=env)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    stop = next(i for i, line in enumerate(lines) if line.startswith("::stop-commands::"))
    token = lines[stop][len("::stop-commands::"):]
    resume = lines.index(f"::{token}::")
    assert len(token) == 32
    assert stop < lines.index("py:a:job: ::endgroup::") < lines.index("py:a:job: ::add-mask::hunter2") < resume
    assert not any(line.startswith("::group::") for line in lines)  # shown as they came: not repeated in groups
    assert any(line.startswith("::error file=pkgs/b/pyproject.toml") for line in lines[resume:])  # commands work again


def test_full_with_json_gives_output_events(workspace):
    root = _tasks(workspace, {"a": _py("print('one'); print('two')")})
    proc = run_polybuild("run", "job", "--json", "--output-logs", "full", cwd=root)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["line"] for e in events if e["event"] == "output"] == ["one", "two"]
    assert all(e["task"] == "py:a:job" for e in events if e["event"] == "output")
    assert "one" not in proc.stderr  # stdout holds the events, stderr none of the tools' lines


def test_full_on_a_terminal_tints_the_prefix_and_clears_the_status_line_first(workspace):
    from test_output import _on_terminal

    say = "import time; print('before', flush=True); time.sleep(1.5); print('after', flush=True)"
    root = _tasks(workspace, {"a": _py(say)})
    out = _on_terminal(root, "run", "job", "--output-logs", "full")
    prefix = re.escape("py:a:job:")
    assert re.search(rf"\x1b\[\d+m{prefix}\x1b\[0m before\r?\n", out), out
    # the live status line was drawn while the task slept, and is cleared before the next line of the task
    assert re.search(rf"running: py:a:job \ds\r\x1b\[2K\x1b\[\d+m{prefix}\x1b\[0m after", out), out
    plain = run_polybuild("run", "job", "--output-logs", "full", cwd=root)
    assert "py:a:job: before\n" in plain.stderr and "\x1b[" not in plain.stderr  # a pipe: no colour


def test_full_does_not_wait_for_a_background_process_holding_the_output(workspace, tmp_path):
    """A tool may leave a process behind (a compiler server, a daemon) that keeps the output pipe open and writes
    to it: the task ends when the tool does, as without streaming."""
    pid_file = tmp_path / "background.pid"
    chatter = (f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
               "while True: print('background chatter', flush=True); time.sleep(0.01)")
    leave = (f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {chatter!r}], start_new_session=True)"
             "; print('tool done', flush=True)")
    root = _tasks(workspace, {"a": _py(leave)})
    start = time.monotonic()
    try:
        proc = run_polybuild("run", "job", "--output-logs", "full", cwd=root, timeout=60)
    finally:
        if pid_file.exists():  # the test's own leftover, if it outlived its closed pipe
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
    assert proc.returncode == 0, proc.stderr
    assert "py:a:job: tool done" in proc.stderr and time.monotonic() - start < 30
