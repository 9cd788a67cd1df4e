"""`polybuild build --dry-run`: the plan with each task cached or to run (and why) and its key; nothing is run or
written."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import polybuild_env, run_polybuild

GO_WS = {
    "polybuild.toml": "version = '1.0.0'\n",
    "lib/go.mod": "module example.com/lib\n\ngo 1.22\n",
    "lib/lib.go": 'package lib\n\nfunc Name() string { return "lib" }\n',
    "svc/go.mod": "module example.com/svc\n\ngo 1.22\n\nrequire example.com/lib v0.0.0\n\n"
                  "replace example.com/lib => ../lib\n",
    "svc/main.go": 'package main\n\nimport (\n\t"fmt"\n\n\t"example.com/lib"\n)\n\n'
                   "func main() { fmt.Println(lib.Name()) }\n",
    "tool/go.mod": "module example.com/tool\n\ngo 1.22\n",
    "tool/main.go": 'package main\n\nfunc main() { println("tool") }\n',
}


def polybuild(root: Path, *args: str):
    proc = run_polybuild("build", *args, cwd=root, env=polybuild_env())
    assert proc.returncode == 0, proc.stderr
    return proc


def snapshot(*dirs: Path) -> dict[str, tuple[int, int]]:
    """Every file under `dirs` with its size and mtime: what a dry run must leave as it was."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for d in dirs if d.exists()
            for p in sorted(d.rglob("*")) if p.is_file()}


def test_dry_run_after_a_build_says_all_cached_not_the_fast_path(workspace):
    root = workspace(GO_WS)
    env = {k: v for k, v in polybuild_env().items() if k != "POLYBUILD_FAST_PATH"}
    for _ in range(2):  # the second build is answered by the fast path, which a dry run must not be
        assert run_polybuild("build", cwd=root, env=env).returncode == 0
    proc = run_polybuild("build", "--dry-run", cwd=root, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert sorted(line.split()[1] for line in lines) == ["go:svc", "go:tool"]
    assert all(line.split()[0] == "cached" and len(line.split()[-1]) == 16 for line in lines), lines
    assert proc.stderr.splitlines()[-1] == "polybuild: dry run: 0 to run, 2 cached"


def test_dry_run_after_an_edit_names_the_file_and_writes_nothing(workspace, tmp_path):
    root = workspace(GO_WS)
    cache_dir = tmp_path / "cache"
    env = polybuild_env(POLYBUILD_CACHE_DIR=str(cache_dir))
    assert run_polybuild("build", cwd=root, env=env).returncode == 0
    (root / "tool" / "main.go").write_text('package main\n\nfunc main() { println("TOOL") }\n')
    before = snapshot(root / "dist", cache_dir, root / ".polybuild")
    proc = run_polybuild("build", "--dry-run", cwd=root, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[1]: line for line in proc.stdout.splitlines()}
    assert lines["go:tool"].split() == ["run", "go:tool", "input", "changed:", "tool/main.go"]
    assert lines["go:svc"].startswith("cached ")
    assert "polybuild: dry run: 1 to run, 1 cached" in proc.stderr
    assert snapshot(root / "dist", cache_dir, root / ".polybuild") == before  # no artifact, cache entry or record
    proc = run_polybuild("build", cwd=root, env=env)  # the edit is still there to build
    assert proc.returncode == 0 and "1 built" in proc.stderr, proc.stderr


def test_dry_run_json_has_every_field(workspace):
    root = workspace(GO_WS)
    polybuild(root)
    (root / "lib" / "lib.go").write_text('package lib\n\nfunc Name() string { return "LIB" }\n')
    doc = json.loads(polybuild(root, "--dry-run", "--json").stdout)
    assert doc["schema"] == 1
    tasks = {t["id"]: t for t in doc["tasks"]}
    assert set(tasks) == {"go:svc", "go:tool"}
    for task in tasks.values():
        assert set(task) == {"id", "target", "builder", "action", "platform", "variant", "key", "cached", "reasons"}
        assert task["action"] == "build" and task["builder"] and task["platform"]
    assert tasks["go:svc"]["cached"] is False
    assert "input changed: lib/lib.go (library go:lib)" in tasks["go:svc"]["reasons"]
    assert tasks["go:tool"]["cached"] is True and tasks["go:tool"]["reasons"] == []
    assert len(tasks["go:tool"]["key"]) == 64
