"""The scheduler and task runner, driven through the real command line with real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import PYTHON_SRC, polybuild_env, run_polybuild

JOB = """
import os, sys, time
name, seconds, outcome = sys.argv[1], float(sys.argv[2]), sys.argv[3]
log = os.environ["JOBLOG"]
def note(what):
    with open(log, "a") as f:
        f.write(f"{what} {name} {time.time():.3f} {os.getpid()}\\n")
note("start")
time.sleep(seconds)
if outcome == "fail":
    print(f"{name}: simulated compiler error on line 42")
    sys.exit(3)
note("end")
"""


def package(name: str, deps: list[str]) -> str:
    return f'[project]\nname = "{name}"\nversion = "1.0"\ndependencies = {json.dumps(deps)}\n'


def jobs_workspace(make, plan: dict[str, tuple[list[str], float, str]]) -> Path:
    """Python packages whose custom task `job` sleeps and logs; plan = {name: (deps, seconds, ok|fail)}."""
    files = {"tools/job.py": JOB}
    config = []
    for name, (deps, seconds, outcome) in plan.items():
        files[f"pkgs/{name}/pyproject.toml"] = package(name, deps)
        argv = [sys.executable, "../../tools/job.py", name, str(seconds), outcome]
        config.append(f"[targets.{name}.tasks.job]\ncmd = {json.dumps(argv)}\n")
    files["polybuild.toml"] = "\n".join(config)
    return make(files)


def events(root: Path) -> list[tuple[str, str, float]]:
    log = root / "job.log"
    if not log.exists():
        return []
    rows = [line.split() for line in log.read_text().splitlines()]
    return [(what, name, float(t)) for what, name, t, _ in rows]


def when(evts, what: str, name: str) -> float:
    return next(t for w, n, t in evts if w == what and n == name)


def run_jobs(root: Path, *args: str):
    return run_polybuild("run", "job", *args, cwd=root, env=polybuild_env(JOBLOG=str(root / "job.log")))


def test_dependencies_run_first_and_independent_tasks_overlap(workspace):
    root = jobs_workspace(workspace, {"a": ([], 0.2, "ok"), "b": (["a"], 0.2, "ok"), "c": (["b"], 0.2, "ok"),
                                      "d": ([], 1.0, "ok")})
    proc = run_jobs(root, "-j", "2")
    assert proc.returncode == 0, proc.stderr
    evts = events(root)
    assert when(evts, "end", "a") <= when(evts, "start", "b")
    assert when(evts, "end", "b") <= when(evts, "start", "c")
    assert when(evts, "start", "d") < when(evts, "end", "a")  # d ran alongside the chain


def test_longest_critical_path_starts_first(workspace):
    root = jobs_workspace(workspace, {"a": ([], 0.1, "ok"), "x": ([], 0.1, "ok"), "y": (["x"], 0.1, "ok"),
                                      "z": (["y"], 0.1, "ok")})
    proc = run_jobs(root, "-j", "1")
    assert proc.returncode == 0, proc.stderr
    starts = [n for w, n, _ in events(root) if w == "start"]
    assert starts[:2] == ["x", "y"]  # the chain x -> y -> z is longer than `a`, so it goes first


def test_fail_fast_stops_running_tasks_and_shows_the_log(workspace):
    root = jobs_workspace(workspace, {"x": ([], 0.5, "fail"), "y": (["x"], 0.1, "ok"), "slow": ([], 60, "ok")})
    start = time.monotonic()
    proc = run_jobs(root, "-j", "2")
    assert time.monotonic() - start < 30
    assert proc.returncode == 1
    assert "error: py:x:job failed" in proc.stderr
    assert "job.py x 0.5 fail" in proc.stderr  # the failing command
    assert "| x: simulated compiler error on line 42" in proc.stderr  # the tail of its log
    assert "log: .polybuild/logs/py_x_job.log" in proc.stderr
    evts = events(root)
    assert ("start", "slow") in {(w, n) for w, n, _ in evts}
    assert ("end", "slow") not in {(w, n) for w, n, _ in evts}
    assert "y" not in {n for _, n, _ in evts}


def test_keep_going_finishes_independent_work(workspace):
    root = jobs_workspace(workspace, {"x": ([], 0.1, "fail"), "y": (["x"], 0.1, "ok"), "other": ([], 0.5, "ok")})
    proc = run_jobs(root, "-j", "2", "--keep-going")
    assert proc.returncode == 1
    names = {(w, n) for w, n, _ in events(root)}
    assert ("end", "other") in names and ("start", "y") not in names
    assert "polybuild: 1 done, 1 failed, 1 skipped" in proc.stderr


def test_ctrl_c_terminates_children_and_exits_130(workspace):
    root = jobs_workspace(workspace, {"slow": ([], 120, "ok"), "slower": ([], 120, "ok")})
    env = polybuild_env(JOBLOG=str(root / "job.log"), PYTHONPATH=str(PYTHON_SRC))
    proc = subprocess.Popen([sys.executable, "-m", "polybuild", "run", "job", "-j", "2"], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while len(events(root)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    pids = [int(line.split()[3]) for line in (root / "job.log").read_text().splitlines()]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "interrupted" in err and "Traceback" not in err
    for pid in pids:
        assert not _alive(pid), f"child {pid} survived Ctrl-C"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie of an already-dead child is not alive
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_missing_toolchain_is_named_with_install_hint(workspace, tmp_path):
    root = workspace({"go.mod": "module example.com/hello\n\ngo 1.22\n", "main.go": "package main\nfunc main(){}\n"})
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to("/usr/bin/git")
    proc = run_polybuild("build", cwd=root, env=polybuild_env(PATH=str(bin_dir)))
    assert proc.returncode == 2
    assert "go is not installed (needed by go:hello (go))" in proc.stderr
    assert "hint: install Go" in proc.stderr
    assert not (root / "dist").exists()


def test_compiler_error_is_shown_and_nothing_half_written(workspace):
    root = workspace({
        "good/go.mod": "module example.com/good\n\ngo 1.22\n",
        "good/main.go": "package main\n\nfunc main() {}\n",
        "bad/go.mod": "module example.com/bad\n\ngo 1.22\n",
        "bad/main.go": "package main\n\nfunc main() { undefinedThing() }\n",
    })
    proc = run_polybuild("build", "-j", "1", "bad", cwd=root)
    assert proc.returncode == 1
    assert "error: go:bad failed" in proc.stderr
    assert "undefined: undefinedThing" in proc.stderr
    assert sorted(p.name for p in (root / "dist").iterdir()) == ["build-report.json"]
    report = json.loads((root / "dist" / "build-report.json").read_text())
    assert report["status"] == "failed" and report["artifacts"] == []
    assert report["tasks"][0]["failed_command"].startswith(str(Path(report["tasks"][0]["failed_command"].split()[0])))
    assert not (root / ".polybuild" / "tmp").exists()


def test_go_build_stamps_version_and_publishes_atomically(workspace):
    root = workspace({
        "pyproject.toml": "[project]\nname = 'tools'\nversion = '2.5.0'\n[tool.polybuild]\npython-roots = []\n",
        "hello/go.mod": "module example.com/hello\n\ngo 1.22\n",
        "hello/main.go": 'package main\n\nimport "fmt"\n\nvar version = "dev"\n\n'
                         'func main() { fmt.Println(version) }\n',
    })
    proc = run_polybuild("build", "--json", cwd=root)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines[0]["event"] == "plan" and lines[0]["tasks"] == 1
    assert lines[-2]["status"] == "built" and lines[-1]["event"] == "summary"
    out = subprocess.run([str(root / "dist" / "hello")], capture_output=True, text=True)
    assert out.stdout.strip() == "2.5.0"
    report = json.loads((root / "dist" / "build-report.json").read_text())
    (artifact,) = report["artifacts"]
    assert artifact["path"] == "dist/hello" and artifact["target"] == "go:hello"
    import hashlib

    assert artifact["sha256"] == hashlib.sha256((root / "dist" / "hello").read_bytes()).hexdigest()


def test_cross_platform_go_binary_lands_in_its_own_directory(workspace):
    root = workspace({
        "polybuild.toml": "",
        "hello/go.mod": "module example.com/hello\n\ngo 1.22\n",
        "hello/main.go": "package main\n\nfunc main() {}\n",
    })
    proc = run_polybuild("build", "--platform", "linux/arm64", "--platform", "windows/amd64", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert (root / "dist" / "linux-arm64" / "hello").is_file()
    assert (root / "dist" / "windows-amd64" / "hello.exe").is_file()
    head = (root / "dist" / "linux-arm64" / "hello").read_bytes()[:20]
    assert head[:4] == b"\x7fELF" and head[18] == 0xB7  # e_machine = EM_AARCH64


SPEAK = "import os, sys; print(os.environ.get('SAY', ''), end=''); sys.exit(int(os.environ.get('FAIL', '0')))"


def test_a_log_is_kept_when_the_task_printed_or_failed(workspace):
    """A silent success leaves no log file (file creation is most of a small task's cost); output, failures and
    cache hits of tasks that printed keep theirs, and a stale log from an earlier failure never lingers."""
    files = {f"{n}/pyproject.toml": package(n, []) for n in ("quiet", "loud")}
    argv = json.dumps([sys.executable, "-c", SPEAK])
    files["polybuild.toml"] = (f'env-inputs = ["FAIL"]\n[tasks.speak]\ncmd = {argv}\n'
                               '[targets.loud.tasks.speak]\ncmd = ' + argv + '\nenv = { SAY = "hello" }\n')
    root = workspace(files)
    logs = root / ".polybuild" / "logs"

    def speak(**env: str):
        return run_polybuild("run", "speak", "-j", "1", "-k", cwd=root, env=polybuild_env(**env))

    proc = speak()
    assert proc.returncode == 0, proc.stderr
    assert not (logs / "py_quiet_speak.log").exists()
    assert (logs / "py_loud_speak.log").read_text().endswith("\nhello")

    assert speak(FAIL="3").returncode == 1
    assert "[polybuild] command exited with status 3" in (logs / "py_quiet_speak.log").read_text()

    (logs / "py_loud_speak.log").unlink()
    proc = speak()  # both are cache hits of the first run
    assert proc.returncode == 0, proc.stderr
    assert not (logs / "py_quiet_speak.log").exists()
    assert (logs / "py_loud_speak.log").read_text().endswith("\nhello")
