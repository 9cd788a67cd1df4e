"""Incremental correctness (issue 13 §2, issue 12 §4): what enters a key (gitignored generated files, symlink
targets, sparse checkouts), what the no-op fast path watches, and dist/ holding exactly what the report lists."""

from __future__ import annotations

import json
import os
import subprocess
import time
import zipfile
from pathlib import Path

from conftest import polybuild_env, run_polybuild, write_tree
from test_cache import GO_WS, statuses

HATCH_APP = {
    ".gitignore": "_generated.py\n",
    "app/pyproject.toml": '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
                          '[project]\nname = "app"\nversion = "1.0.0"\n\n'
                          '[tool.hatch.build]\nartifacts = ["app/_generated.py"]\n',
    "app/app/__init__.py": "VALUE = 1\n",
    "app/app/_generated.py": "GENERATED = 1\n",
}


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=root, check=True,
                          capture_output=True, text=True).stdout


def commit_all(root: Path) -> None:
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")


def build(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_polybuild("build", *args, cwd=root, env=polybuild_env(**env))


def wheel_member(root: Path, name: str) -> str:
    (wheel,) = (root / "dist").glob("app-*.whl")
    with zipfile.ZipFile(wheel) as z:
        return z.read(name).decode()


def report(root: Path) -> dict:
    return json.loads((root / "dist" / "build-report.json").read_text())


def dist_listing(root: Path) -> set[str]:
    dist = root / "dist"
    return {p.relative_to(root).as_posix() for p in dist.rglob("*") if p.is_file() and p.name != "build-report.json"}


def test_a_gitignored_file_the_backend_packs_is_an_input(workspace):
    root = workspace(HATCH_APP)
    commit_all(root)
    assert build(root).returncode == 0
    assert wheel_member(root, "app/_generated.py") == "GENERATED = 1\n"
    (root / "app" / "app" / "_generated.py").write_text("GENERATED = 2\n")
    proc = build(root)
    assert proc.returncode == 0, proc.stderr
    assert statuses(proc)["py:app"] == "done"
    assert wheel_member(root, "app/_generated.py") == "GENERATED = 2\n"


def test_other_tools_outputs_and_caches_are_not_inputs(tmp_path):
    from polybuild.workspace.files import unlisted_files

    files = ["pkg/a.py", "pkg/gen/_version.py", "pkg/build/lib/pkg/a.py", "pkg/target/release/x", "pkg/a.pyc",
             "pkg/__pycache__/a.cpython-311.pyc", "pkg/.coverage", "pkg/dist/x.whl", "pkg/src/build/tool.go",
             "pkg/nested/polybuild.toml", "pkg/nested/y.txt", "pkg/vendored/.git/HEAD", "pkg/vendored/z.txt",
             "pkg/.polybuild/statcache", "dist/other.whl"]
    root = write_tree(tmp_path / "ws", dict.fromkeys(files, ""))
    listing = ["pkg/a.py", "pkg/src/build/tool.go", "pkg/nested/polybuild.toml"]
    found = unlisted_files(root, ["pkg", "pkg/src"], listing, ("dist/", "pkg/.polybuild/"), [])
    assert found.files == ["pkg/gen/_version.py"]
    assert "pkg/src/build" in found.dirs and "pkg/build" not in found.dirs


def test_a_symlink_enters_the_key_by_what_it_points_to(workspace):
    root = workspace({**HATCH_APP, "shared/a.txt": "A\n", "shared/b.txt": "B\n"})
    link = root / "app" / "app" / "data.txt"
    link.symlink_to("../../shared/a.txt")
    assert build(root).returncode == 0
    assert wheel_member(root, "app/data.txt") == "A\n"
    link.unlink()
    link.symlink_to("../../shared/b.txt")  # retargeted
    assert build(root).returncode == 0
    assert wheel_member(root, "app/data.txt") == "B\n"
    (root / "shared" / "b.txt").write_text("B2\n")  # the link is the same, its target's content is not
    assert build(root).returncode == 0
    assert wheel_member(root, "app/data.txt") == "B2\n"


def test_a_symlink_leaving_the_workspace_is_refused_unless_allowed(workspace, tmp_path):
    root = workspace(HATCH_APP)
    outside = tmp_path / "outside.txt"
    outside.write_text("secret-ish\n")
    (root / "app" / "app" / "data.txt").symlink_to(outside)
    proc = build(root)
    assert proc.returncode == 2, proc.stderr
    assert "app/app/data.txt is a symlink" in proc.stderr and "outside the workspace" in proc.stderr
    assert "allow-external-symlinks" in proc.stderr and "Traceback" not in proc.stderr
    assert "internal error" not in proc.stderr
    (root / "polybuild.toml").write_text("allow-external-symlinks = true\n")
    assert build(root).returncode == 0
    assert wheel_member(root, "app/data.txt") == "secret-ish\n"
    outside.write_text("changed\n")
    assert build(root).returncode == 0
    assert wheel_member(root, "app/data.txt") == "changed\n"


def test_a_sparse_checkout_builds_without_the_files_it_left_out(workspace):
    root = workspace({**GO_WS, "tool/README.md": "tool\n"})
    commit_all(root)
    git(root, "update-index", "--skip-worktree", "tool/README.md")
    (root / "tool" / "README.md").unlink()
    proc = build(root)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert statuses(build(root))["go:tool"] == "cached"
    # the whole directory of a target outside the sparse cone: that target is not checked out, the rest builds
    for f in ("svc/go.mod", "svc/main.go"):
        git(root, "update-index", "--skip-worktree", f)
        (root / f).unlink()
    (root / "svc").rmdir()
    proc = build(root)
    assert proc.returncode == 0, proc.stderr
    assert "go:svc" not in statuses(proc)


def test_affected_ignores_polybuilds_own_outputs(workspace):
    root = workspace(GO_WS)
    commit_all(root)  # no .gitignore: dist/ and .polybuild/ show up as untracked
    assert build(root).returncode == 0
    proc = run_polybuild("affected", "--since", "HEAD", "--json", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["changed_files"] == [] and json.loads(proc.stdout)["targets"] == []


def fast_path_env(**extra: str) -> dict[str, str]:
    return polybuild_env(POLYBUILD_FAST_PATH="1", **extra)


def settle_and_record(root: Path, *args: str, env: dict[str, str]) -> None:
    """Two runs 2 s apart: the second records the summary (the first one's outputs were too fresh)."""
    time.sleep(2.1)
    assert run_polybuild(*args, cwd=root, env=env).returncode == 0
    time.sleep(2.1)
    assert run_polybuild(*args, cwd=root, env=env).returncode == 0


def test_the_fast_path_sees_a_new_main_package_in_a_directory_of_directories(workspace):
    root = workspace({"go/alpha/go.mod": "module example.com/alpha\n\ngo 1.22\n",
                      "go/alpha/cmd/beta/main.go": 'package main\n\nfunc main() { println("beta") }\n'})
    env = fast_path_env()
    settle_and_record(root, "build", env=env)
    assert "nothing changed" in run_polybuild("build", cwd=root, env=env).stderr
    write_tree(root, {"go/alpha/cmd/gamma/main.go": 'package main\n\nfunc main() { println("gamma") }\n'})
    proc = run_polybuild("build", cwd=root, env=env)
    assert proc.returncode == 0 and "nothing changed" not in proc.stderr, proc.stderr
    assert (root / "dist" / "gamma").is_file()


def test_the_fast_path_keys_only_the_variables_that_matter(workspace, private_cache):
    root = workspace(GO_WS)
    env = fast_path_env()
    settle_and_record(root, "build", env=env)
    fast = run_polybuild("build", cwd=root, env={**env, "SOME_IDE_VARIABLE": "1", "TERM_PROGRAM": "x"})
    assert "nothing changed" in fast.stderr, fast.stderr
    assert "nothing changed" not in run_polybuild("build", cwd=root, env={**env, "DEMO_SECRET": "x"}).stderr
    assert "nothing changed" not in run_polybuild("build", cwd=root, env={**env, "GOFLAGS": "-v"}).stderr
    assert "nothing changed" not in run_polybuild("build", cwd=root, env={**env, "PATH": "/usr/bin:/bin"}).stderr
    assert len(list((private_cache / "fastpath").glob("*.json"))) == 1  # one summary per command, not per env


def test_the_fast_path_keeps_no_unsalted_digest_of_secret_values(workspace, private_cache):
    """A summary compares the environment by a digest keyed with the cache's salt: a plain sha256 of the values
    (DEMO_SECRET is an env-input) could be checked offline against guesses."""
    import hashlib

    root = workspace(GO_WS)
    env = fast_path_env(DEMO_SECRET="hunter2")
    settle_and_record(root, "build", env=env)
    (summary,) = (private_cache / "fastpath").glob("*.json")
    data = json.loads(summary.read_text())
    plain = hashlib.sha256(json.dumps([(k, env.get(k)) for k in data["env_names"]]).encode()).hexdigest()
    assert "DEMO_SECRET" in data["env_names"] and data["env"] != plain
    assert "nothing changed" in run_polybuild("build", cwd=root, env=env).stderr


def test_fast_path_summaries_are_bounded(tmp_path, monkeypatch):
    from polybuild.cache import fastpath

    monkeypatch.setenv("POLYBUILD_CACHE_DIR", str(tmp_path / "cache"))
    root = write_tree(tmp_path / "ws", {"f": "x"})
    time.sleep(2.1)
    for n in range(fastpath.MAX_SUMMARIES + 10):
        fastpath.record(root, ["build", str(n)], ["f"], [], [], [], set(), {})
    assert len(list((tmp_path / "cache" / "fastpath").glob("*.json"))) == fastpath.MAX_SUMMARIES


def test_a_task_with_cache_false_runs_every_time(workspace):
    root = workspace({**GO_WS, "polybuild.toml": GO_WS["polybuild.toml"] + (
        "\n[targets.tool.tasks.stamp]\ncmd = ['sh', '-c', 'date +%s%N >> ../../stamps.txt']\ncache = false\n")})
    env = fast_path_env()
    settle_and_record(root, "run", "stamp", "tool", env=env)
    proc = run_polybuild("run", "stamp", "tool", cwd=root, env=env)
    assert proc.returncode == 0 and "nothing changed" not in proc.stderr
    assert len((root.parent / "stamps.txt").read_text().splitlines()) == 3


def test_dist_holds_exactly_what_the_report_lists(workspace):
    root = workspace({**GO_WS, "extra/go.mod": "module example.com/extra\n\ngo 1.22\n",
                      "extra/main.go": 'package main\n\nfunc main() { println("extra") }\n'})
    (root / "dist").mkdir()
    (root / "dist" / "NOTES.txt").write_text("mine\n")  # never written by polybuild: never touched
    assert build(root).returncode == 0
    assert {"dist/extra", "dist/svc"} <= dist_listing(root)
    assert list((root / "dist").glob("app-1.0.0-*.whl"))
    # a new version: the old wheel goes
    pyproject = root / "app" / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "1.0.0"', 'version = "1.0.1"'))
    assert build(root).returncode == 0
    assert not list((root / "dist").glob("app-1.0.0-*.whl")) and list((root / "dist").glob("app-1.0.1-*.whl"))
    # a deleted target: its binary goes, even when the build names other targets
    for f in ("go.mod", "main.go"):
        (root / "extra" / f).unlink()
    assert build(root, "tool").returncode == 0
    assert "dist/extra" not in dist_listing(root)
    listed = {a["path"] for a in report(root)["artifacts"]}
    assert listed == dist_listing(root) - {"dist/NOTES.txt"}  # the whole of dist/, not only tool's binary
    assert "dist/svc" in listed
    # a failed task: its previous artifact does not stay behind as if it were current
    (root / "svc" / "main.go").write_text("package main\n\nfunc main() { undefined() }\n")
    assert build(root).returncode == 1
    assert "dist/svc" not in dist_listing(root)
    assert {a["path"] for a in report(root)["artifacts"]} == dist_listing(root) - {"dist/NOTES.txt"}
    assert (root / "dist" / "NOTES.txt").read_text() == "mine\n"
    assert os.path.isfile(root / "dist" / "tool")
