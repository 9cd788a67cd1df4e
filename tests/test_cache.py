"""Incremental builds: cache keys, the local store, restores, explain, corruption and concurrency."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from conftest import PYTHON_SRC, polybuild_env, run_polybuild
from polybuild.cache.store import open_manifest, seal_manifest
from polybuild.support.fingerprint import StatCache

GO_WS = {
    "polybuild.toml": "version = '1.0.0'\nenv-inputs = ['DEMO_SECRET']\n",
    "lib/go.mod": "module example.com/lib\n\ngo 1.22\n",
    "lib/lib.go": 'package lib\n\nfunc Name() string { return "lib" }\n',
    "svc/go.mod": "module example.com/svc\n\ngo 1.22\n\nrequire example.com/lib v0.0.0\n\n"
                  "replace example.com/lib => ../lib\n",
    "svc/main.go": 'package main\n\nimport (\n\t"fmt"\n\n\t"example.com/lib"\n)\n\nvar version = "dev"\n\n'
                   "func main() { fmt.Println(lib.Name(), version) }\n",
    "tool/go.mod": "module example.com/tool\n\ngo 1.22\n",
    "tool/main.go": 'package main\n\nfunc main() { println("tool") }\n',
    "app/pyproject.toml": '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
                          '[project]\nname = "app"\nversion = "1.0.0"\n',
    "app/app/__init__.py": "VALUE = 1\n",
}


def statuses(proc) -> dict[str, str]:
    """task id -> status word, from the plain progress lines."""
    out = {}
    for line in proc.stderr.splitlines():
        if line.startswith("[") and "] " in line:
            word, _, rest = line.split("] ", 1)[1].partition(" ")
            if word != "start":
                out[rest.strip().split("  ")[0]] = word
    return out


def build(root: Path, *args: str, **env: str):
    proc = run_polybuild("build", *args, cwd=root, env=polybuild_env(**env))
    assert proc.returncode == 0, proc.stderr
    return proc


def test_second_build_is_fully_cached_and_restores_identical_files(workspace):
    root = workspace(GO_WS)
    first = build(root)
    assert set(statuses(first).values()) == {"done"}
    digests = {p.name: p.read_bytes() for p in (root / "dist").iterdir() if p.name != "build-report.json"}
    second = build(root)
    assert set(statuses(second).values()) == {"cached"}
    assert "polybuild: 3 cached" in second.stderr
    for name in digests:
        (root / "dist" / name).unlink()
    third = build(root)
    assert set(statuses(third).values()) == {"cached"}
    assert {p.name: p.read_bytes() for p in (root / "dist").iterdir() if p.name != "build-report.json"} == digests
    assert os.access(root / "dist" / "svc", os.X_OK)  # modes come back too
    report = json.loads((root / "dist" / "build-report.json").read_text())
    assert {t["status"] for t in report["tasks"]} == {"cached"}


def test_an_edit_rebuilds_exactly_what_depends_on_it(workspace):
    root = workspace(GO_WS)
    build(root)
    (root / "lib" / "lib.go").write_text('package lib\n\nfunc Name() string { return "LIB" }\n')
    proc = build(root)
    assert statuses(proc) == {"go:svc": "done", "go:tool": "cached", "py:app": "cached"}
    out = subprocess.run([str(root / "dist" / "svc")], capture_output=True, text=True).stdout
    assert out.strip() == "LIB 1.0.0"


def test_explain_names_the_file_config_and_env_var(workspace):
    root = workspace(GO_WS)
    build(root, DEMO_SECRET="s3cret-value")
    explain = run_polybuild("explain", "svc", cwd=root, env=polybuild_env(DEMO_SECRET="s3cret-value"))
    assert explain.stdout.strip() == "go:svc: up to date"
    (root / "lib" / "lib.go").write_text("package lib\n\nfunc Name() string { return \"x\" }\n")
    (root / "svc" / "extra.go").write_text("package main\n")
    (root / "polybuild.toml").write_text(GO_WS["polybuild.toml"] + "[go]\nldflags = ['-s']\n")
    explain = run_polybuild("explain", "svc", cwd=root, env=polybuild_env(DEMO_SECRET="other"))
    assert explain.returncode == 0, explain.stderr
    lines = explain.stdout.splitlines()
    assert lines[0] == "go:svc: would rebuild"
    assert "  input changed: lib/lib.go (library go:lib)" in lines
    assert "  input added: svc/extra.go" in lines
    assert '  config changed: go.ldflags ([] -> ["-s"])' in lines
    assert "  environment variable changed: DEMO_SECRET" in lines
    # the secret's value is hashed into keys, never stored in clear
    for path in [*root.joinpath(".polybuild").rglob("*"), *Path(os.environ["POLYBUILD_CACHE_DIR"]).rglob("*")]:
        if path.is_file():
            assert b"s3cret-value" not in path.read_bytes(), path


def test_explain_for_a_target_never_built(workspace):
    root = workspace(GO_WS)
    proc = run_polybuild("explain", "tool", cwd=root)
    assert proc.stdout.strip() == "go:tool: would rebuild\n  never built in this workspace"


def cache_entry(cache: Path, task: str) -> tuple[str, bytes]:
    """(key, manifest JSON) of a task's entry in the action cache."""
    with contextlib.closing(sqlite3.connect(cache / "ac.sqlite")) as db:
        rows = [(k, json.dumps(open_manifest(m)).encode()) for k, m in db.execute("SELECT key, manifest FROM ac")]
    return next((k, m) for k, m in rows if json.loads(m)["task"] == task)


def set_cache_entry(cache: Path, key: str, manifest: bytes) -> None:
    """Store a manifest's JSON (sealed with a matching digest, if it is JSON at all)."""
    with contextlib.suppress(ValueError):
        manifest = seal_manifest(json.loads(manifest))
    with contextlib.closing(sqlite3.connect(cache / "ac.sqlite")) as db, db:
        db.execute("UPDATE ac SET manifest = ? WHERE key = ?", (manifest, key))


def test_corrupt_or_truncated_entries_are_dropped_and_rebuilt(workspace, private_cache):
    root = workspace(GO_WS)
    build(root)
    blob = next(p for p in (private_cache / "cas").rglob("*") if p.is_file() and p.stat().st_size > 100_000)
    blob.write_bytes(blob.read_bytes()[:-10] + b"corrupted!")
    key, manifest = cache_entry(private_cache, "py:app")
    set_cache_entry(private_cache, key, seal_manifest(json.loads(manifest))[:100])  # truncated
    (root / "dist" / "svc").unlink()
    (root / "dist" / "tool").unlink()
    next((root / "dist").glob("app-1.0.0-*.whl")).unlink()
    proc = build(root)
    assert proc.stderr.count("warning:") >= 2
    assert "is corrupt" in proc.stderr and "unreadable" in proc.stderr
    rebuilt = [t for t, s in statuses(proc).items() if s == "done"]
    assert "py:app" in rebuilt and len(rebuilt) >= 2
    assert subprocess.run([str(root / "dist" / "svc")], capture_output=True, text=True).stdout.strip() == "lib 1.0.0"
    assert set(statuses(build(root)).values()) == {"cached"}  # the cache healed


def test_a_corrupt_action_cache_database_is_set_aside_and_rebuilt(workspace, private_cache):
    root = workspace(GO_WS)
    build(root)
    (private_cache / "ac.sqlite").write_bytes(b"not a database at all" * 100)
    for wal in private_cache.glob("ac.sqlite-*"):
        wal.unlink()
    proc = build(root)
    assert proc.returncode == 0 and "starting a new one" in proc.stderr
    assert set(statuses(proc).values()) == {"done"}
    assert list(private_cache.glob("ac.sqlite.corrupt-*"))
    assert set(statuses(build(root)).values()) == {"cached"}


def test_missing_blob_is_a_miss_not_an_error(workspace, private_cache):
    root = workspace(GO_WS)
    build(root)
    for blob in (private_cache / "cas").rglob("*"):
        if blob.is_file():
            blob.unlink()
    proc = build(root)
    assert "incomplete" in proc.stderr
    done = statuses(proc)
    assert done["go:svc"] == done["go:tool"] == "done"  # binaries are blobs; the small wheel is in its manifest
    assert set(done.values()) <= {"done", "cached"}


def test_small_outputs_live_in_the_manifest_and_are_verified(workspace, private_cache):
    root = workspace(GO_WS)
    build(root)
    wheel = next((root / "dist").glob("app-1.0.0-*.whl"))
    key, data = cache_entry(private_cache, "py:app")
    manifest = json.loads(data)
    digest = manifest["artifacts"][0]["sha256"]
    assert base64.b64decode(manifest["inline"][digest]) == wheel.read_bytes()
    assert not list((private_cache / "cas").rglob(digest))
    manifest["inline"][digest] = base64.b64encode(b"not the wheel").decode()
    set_cache_entry(private_cache, key, json.dumps(manifest).encode())
    wheel.unlink()
    proc = build(root)
    assert "is corrupt" in proc.stderr and statuses(proc)["py:app"] == "done"
    assert set(statuses(build(root)).values()) == {"cached"}


def test_no_cache_builds_everything(workspace):
    root = workspace(GO_WS)
    build(root)
    assert set(statuses(build(root, "--no-cache")).values()) == {"done"}


def test_cache_stats_and_gc(workspace, private_cache):
    root = workspace(GO_WS)
    build(root)
    stats = run_polybuild("cache", "stats", cwd=root)
    assert "entries: 3" in stats.stdout
    gc = run_polybuild("cache", "gc", "--max-size", "0", cwd=root)
    assert gc.returncode == 0 and "removed 3 entries" in gc.stdout
    assert set(statuses(build(root)).values()) == {"done"}
    bad = run_polybuild("cache", "gc", "--max-size", "lots", cwd=root)
    assert bad.returncode == 2 and "not a size" in bad.stderr


def test_concurrent_builds_in_one_workspace_do_not_corrupt_anything(workspace):
    root = workspace(GO_WS)
    env = polybuild_env(PYTHONPATH=str(PYTHON_SRC))
    procs = [subprocess.Popen([sys.executable, "-m", "polybuild", "build"], cwd=root, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), results
    assert any("waiting for another polybuild run" in err for _, err in results)
    out = subprocess.run([str(root / "dist" / "svc")], capture_output=True, text=True).stdout
    assert out.strip() == "lib 1.0.0"
    assert set(statuses(build(root)).values()) == {"cached"}


def test_stat_cache_trusts_only_unchanged_old_files(tmp_path):
    root = tmp_path / "tree"
    root.mkdir()
    old, fresh = root / "old.txt", root / "fresh.txt"
    old.write_text("aaaa")
    past = time.time() - 60
    os.utime(old, (past, past))
    time.sleep(2.1)  # a file changed within the last 2 s (mtime or ctime) is never trusted from the cache
    fresh.write_text("bbbb")
    cache = StatCache(tmp_path / "statcache")
    first = cache.entries(root, ["old.txt", "fresh.txt"])
    cache.save()
    text = (tmp_path / "statcache").read_text()
    assert " old.txt\n" in text and "fresh.txt" not in text  # racy: too recent to trust
    # same size, same mtime, new content: ctime gives it away
    old.write_text("cccc")
    os.utime(old, (past, past))
    again = StatCache(tmp_path / "statcache").entries(root, ["old.txt", "fresh.txt"])
    assert again["old.txt"] != first["old.txt"] and again["fresh.txt"] == first["fresh.txt"]


CONCAT = ("import pathlib; src = sorted(pathlib.Path('src').glob('*.txt')); "
          "pathlib.Path('out.txt').write_text(''.join(p.read_text() for p in src))")


def test_workspace_task_runs_per_target_and_restores_its_outputs(workspace):
    files = {"polybuild.toml": f"[tasks.concat]\ncmd = {json.dumps([sys.executable, '-c', CONCAT])}\n"
                               "inputs = ['src/*.txt']\noutputs = ['out.txt']\nkinds = ['py']\n"}
    for name, deps in (("a", []), ("b", ["a"])):
        files[f"{name}/pyproject.toml"] = f'[project]\nname = "{name}"\nversion = "1"\ndependencies = {deps}\n'
        files[f"{name}/src/1.txt"] = f"{name}-one\n"
        files[f"{name}/src/2.txt"] = f"{name}-two\n"
    files["gomod/go.mod"] = "module example.com/gomod\n"
    root = workspace(files)
    first = run_polybuild("run", "concat", cwd=root)
    assert first.returncode == 0, first.stderr
    assert statuses(first) == {"py:a:concat": "done", "py:b:concat": "done"}  # go:gomod is not a py target
    assert (root / "b" / "out.txt").read_text() == "b-one\nb-two\n"
    (root / "a" / "out.txt").unlink()
    second = run_polybuild("run", "concat", cwd=root)
    assert statuses(second) == {"py:a:concat": "cached", "py:b:concat": "cached"}
    assert (root / "a" / "out.txt").read_text() == "a-one\na-two\n"
    (root / "a" / "src" / "2.txt").write_text("a-TWO\n")
    third = run_polybuild("run", "concat", cwd=root)
    assert statuses(third) == {"py:a:concat": "done", "py:b:concat": "done"}  # b's key has a's output digest
    assert (root / "a" / "out.txt").read_text() == "a-one\na-TWO\n"


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"})


def affected(root: Path, since: str) -> dict:
    proc = run_polybuild("affected", "--since", since, "--json", cwd=root)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_affected_follows_edits_to_their_dependents(workspace):
    files = dict(GO_WS)
    files["polybuild.toml"] += "[images.svc-image]\ntemplate = 'x.j2'\nartifacts = ['svc']\n"
    root = workspace(files)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    assert affected(root, "HEAD")["targets"] == []
    (root / "lib" / "lib.go").write_text("package lib\n\nfunc Name() string { return \"x\" }\n")
    result = affected(root, "HEAD")
    assert result["changed_files"] == ["lib/lib.go"]
    assert result["targets"] == ["go:lib", "go:svc", "image:svc-image"]
    git(root, "commit", "-qam", "edit lib")
    (root / "tool" / "new.go").write_text("package main\n")  # untracked files count as changes
    assert affected(root, "HEAD~1")["targets"] == ["go:lib", "go:svc", "go:tool", "image:svc-image"]
    (root / "tool" / "new.go").unlink()
    (root / "app" / "app" / "__init__.py").unlink()  # a deletion belongs to the directory's target
    assert affected(root, "HEAD")["targets"] == ["py:app"]
    text = run_polybuild("affected", "--since", "HEAD", cwd=root).stdout
    assert text.strip() == "py:app"


def test_build_affected_builds_only_those(workspace):
    root = workspace(GO_WS)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    nothing = run_polybuild("build", "--affected", "HEAD", cwd=root)
    assert nothing.returncode == 0 and "nothing is affected" in nothing.stderr
    (root / "tool" / "main.go").write_text('package main\n\nfunc main() { println("tool2") }\n')
    proc = build(root, "--affected", "HEAD")
    assert statuses(proc) == {"go:tool": "done"}


def test_affected_with_a_bad_ref_or_outside_git(workspace):
    root = workspace(GO_WS)
    outside = run_polybuild("affected", "--since", "HEAD", cwd=root)
    assert outside.returncode == 2 and "not a git checkout" in outside.stderr
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    bad = run_polybuild("affected", "--since", "no-such-branch", cwd=root)
    assert bad.returncode == 2 and "cannot compare with 'no-such-branch'" in bad.stderr


def test_no_op_fast_path_answers_only_when_nothing_changed(workspace):
    root = workspace(GO_WS)
    time.sleep(2.1)  # files younger than 2 s are never trusted by stat alone
    env = polybuild_env(POLYBUILD_FAST_PATH="1")

    def run(**extra: str):
        proc = run_polybuild("build", cwd=root, env={**env, **extra})
        assert proc.returncode == 0, proc.stderr
        return proc

    assert set(statuses(run()).values()) == {"done"}
    time.sleep(2.1)
    assert set(statuses(run()).values()) == {"cached"}  # outputs were too fresh to record a summary
    fast = run()
    assert "3 cached (nothing changed since the last run)" in fast.stderr and not statuses(fast)
    assert "dist/svc" in fast.stderr
    report = json.loads((root / "dist" / "build-report.json").read_text())
    assert {t["status"] for t in report["tasks"]} == {"cached"}
    # every kind of change goes the normal way
    assert statuses(run(DEMO_SECRET="x"))
    (root / "dist" / "tool").unlink()
    assert statuses(run())["go:tool"] == "cached" and (root / "dist" / "tool").exists()
    (root / "svc" / "new.go").write_text("package main\n")
    assert statuses(run())["go:svc"] == "done"
    (root / "lib" / "lib.go").write_text('package lib\n\nfunc Name() string { return "edited" }\n')
    assert statuses(run())["go:svc"] == "done"
    out = subprocess.run([str(root / "dist" / "svc")], capture_output=True, text=True).stdout
    assert out.strip() == "edited 1.0.0"


def test_fast_path_speaks_json_too(workspace):
    root = workspace(GO_WS)
    time.sleep(2.1)
    env = polybuild_env(POLYBUILD_FAST_PATH="1")
    run_polybuild("build", "--json", cwd=root, env=env)
    time.sleep(2.1)
    normal = run_polybuild("build", "--json", cwd=root, env=env)  # records the summary (outputs are old now)
    assert json.loads((root / "dist" / "build-report.json").read_text())["duration_s"] > 0
    fast = run_polybuild("build", "--json", cwd=root, env=env)
    assert fast.returncode == 0 and "nothing changed" not in fast.stderr
    assert json.loads((root / "dist" / "build-report.json").read_text())["duration_s"] == 0.0  # the fast path
    events = [json.loads(line) for line in fast.stdout.splitlines()]
    expected = [json.loads(line) for line in normal.stdout.splitlines() if '"start"' not in line]
    assert events[0] == expected[0] and events[0]["tasks"] == 3 and events[0]["schema"] == 1
    finished = [e for e in events if e["event"] == "finish"]
    expected_finished = [e for e in expected if e["event"] == "finish"]
    assert sorted(e["task"] for e in finished) == sorted(e["task"] for e in expected_finished)
    assert {e["status"] for e in finished} == {"cached"}
    assert {p for e in finished for p in e["artifacts"]} == {p for e in expected_finished for p in e["artifacts"]}
    summary, expected_summary = events[-1], expected[-1]
    assert summary["event"] == "summary" and summary["counts"]["cached"] == 3 and summary["exit_code"] == 0
    assert (summary["artifacts"], summary["report"]) == (expected_summary["artifacts"], expected_summary["report"])
