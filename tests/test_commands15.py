"""The everyday commands of issue 15: `doctor` (what this workspace needs), `clean`, target selection (globs,
directories, `--dependents`) and `affected` without `--since`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import copy_example, polybuild_env, run_polybuild

GO_HELLO = {"go.mod": "module example.com/hello\n\ngo 1.22\n", "main.go": "package main\nfunc main(){}\n"}


def _path_without(tool: str) -> str:
    """$PATH minus the directories holding `tool`."""
    return os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / tool).exists())


def test_doctor_lists_every_tool_the_demo_needs(tmp_path):
    root = copy_example("serving", tmp_path / "serving")
    proc = run_polybuild("doctor", cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for tool in ("cargo", "rustc", "maturin", "go", "container engine", "build", "hatchling", "pytest"):
        assert any(line.split()[:2] == ["ok", *tool.split()[:1]] for line in proc.stdout.splitlines()), tool
    assert "all " in proc.stdout.splitlines()[-1]


def test_doctor_json_shape(tmp_path):
    root = copy_example("serving", tmp_path / "serving")
    proc = run_polybuild("doctor", "--json", cwd=root)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["ok"] is True and data["workspace"] == str(root)
    checks = {c["name"]: c for c in data["checks"]}
    assert set(checks["go"]) == {"name", "kind", "needed_by", "found", "path", "version", "hint", "required",
                                  "provisionable"}
    assert checks["go"]["needed_by"] == ["go:api", "go:operator"] and checks["go"]["version"].startswith("go version")
    assert checks["maturin"]["needed_by"] == ["py:serving-runtime"]
    assert checks["hatchling"]["kind"] == "python-package"
    assert checks["container engine"]["required"] is False  # the demo's image is optional


def test_doctor_names_a_missing_tool_with_its_hint_and_fails(workspace):
    root = workspace(GO_HELLO)
    env = polybuild_env(PATH=_path_without("go"))
    proc = run_polybuild("doctor", cwd=root, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "MISSING  go" in proc.stdout and "needed by go:hello" in proc.stdout
    assert "hint: install Go" in proc.stdout
    assert "1 needed tool(s) missing: go" in proc.stdout
    data = json.loads(run_polybuild("doctor", "--json", cwd=root, env=env).stdout)
    assert data["ok"] is False
    assert next(c for c in data["checks"] if c["name"] == "go")["found"] is False


def test_doctor_reports_an_unreachable_remote_cache_without_failing(workspace):
    root = workspace({**GO_HELLO, "polybuild.toml": '[remote]\nurl = "http://127.0.0.1:9"\n'})
    proc = run_polybuild("doctor", cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warning  remote cache" in proc.stdout and "cannot connect" in proc.stdout


def test_doctor_outside_a_workspace_lists_known_toolchains(tmp_path):
    proc = run_polybuild("doctor", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "hashing core:" in proc.stdout and proc.stdout.count("\n") >= 6


def _built(workspace, private_cache) -> Path:
    """A tiny Go workspace, built (the cache and the state filled), with a file in dist/ polybuild did not write."""
    root = workspace({**GO_HELLO, "dist/NOTES.txt": "mine\n"})
    proc = run_polybuild("build", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert (root / "dist" / "hello").is_file() and (root / "dist" / "build-report.json").is_file()
    assert (root / ".polybuild" / "published.json").is_file() and any(private_cache.iterdir())
    return root


def test_clean_outputs_removes_only_what_polybuild_published(workspace, private_cache):
    root = _built(workspace, private_cache)
    size = (root / "dist" / "hello").stat().st_size + (root / "dist" / "build-report.json").stat().st_size
    proc = run_polybuild("clean", "--outputs", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (root / "dist").iterdir()) == ["NOTES.txt"]
    assert f"removed 2 file(s) from dist/ ({size:,} bytes)" in proc.stderr
    assert f"freed {size:,} bytes" in proc.stderr
    assert (root / ".polybuild" / "records.json").is_file() and any(private_cache.iterdir())
    rebuilt = run_polybuild("build", cwd=root)  # the record is gone with the artifacts: a build puts them back
    assert rebuilt.returncode == 0 and (root / "dist" / "hello").is_file(), rebuilt.stderr


def test_clean_state_keeps_outputs_and_the_lock(workspace, private_cache):
    root = _built(workspace, private_cache)
    proc = run_polybuild("clean", "--state", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (root / ".polybuild").iterdir()) == [".gitignore", "lock"]
    assert (root / "dist" / "hello").is_file() and "removed .polybuild/ (" in proc.stderr


def test_clean_cache_empties_the_local_cache_only(workspace, private_cache):
    root = _built(workspace, private_cache)
    proc = run_polybuild("clean", "--cache", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert not any(private_cache.iterdir()) and f"removed {private_cache}/ (" in proc.stderr
    assert (root / "dist" / "hello").is_file() and (root / ".polybuild" / "published.json").is_file()


def test_clean_default_and_all(workspace, private_cache):
    root = _built(workspace, private_cache)
    assert run_polybuild("clean", cwd=root).returncode == 0
    assert [p.name for p in (root / "dist").iterdir()] == ["NOTES.txt"]
    assert sorted(p.name for p in (root / ".polybuild").iterdir()) == [".gitignore", "lock"]
    assert any(private_cache.iterdir())
    assert run_polybuild("build", cwd=root).returncode == 0
    proc = run_polybuild("clean", "--all", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in (root / "dist").iterdir()] == ["NOTES.txt"] and not any(private_cache.iterdir())


def test_clean_refuses_a_cache_dir_that_holds_the_workspace(workspace):
    root = workspace(GO_HELLO)
    proc = run_polybuild("clean", "--cache", cwd=root, env=polybuild_env(POLYBUILD_CACHE_DIR=str(root.parent)))
    assert proc.returncode == 2 and "not removing the cache directory" in proc.stderr
    assert (root / "go.mod").is_file()


def _graph_ids(root: Path, *args: str) -> list[str]:
    proc = run_polybuild("graph", "--format", "json", *args, cwd=root)
    assert proc.returncode == 0, proc.stderr
    return sorted(n["id"] for n in json.loads(proc.stdout)["targets"])


def test_selection_by_glob_directory_and_dependents(tmp_path):
    root = copy_example("serving", tmp_path / "serving")
    assert _graph_ids(root, "py:*") == ["py:serving", "py:serving-client", "py:serving-runtime",
                                        "rust:serving-core"]  # the globbed targets and their dependencies
    assert _graph_ids(root, "*client*") == ["py:serving", "py:serving-client", "py:serving-runtime",
                                            "rust:serving-core"]
    assert _graph_ids(root, "lib/") == ["py:serving-runtime", "rust:serving-cli", "rust:serving-core"]
    assert _graph_ids(root, "go:operator", "--dependents") == ["go:api", "go:operator", "image:frontend",
                                                               "image:operator-image", "py:serving",
                                                               "py:serving-runtime", "rust:serving-core"]
    assert _graph_ids(root, "go:operator") == ["go:api", "go:operator"]


def test_selection_that_matches_nothing_is_a_clear_error(tmp_path):
    root = copy_example("serving", tmp_path / "serving")
    proc = run_polybuild("graph", "py:srving*", cwd=root)
    assert proc.returncode == 2
    assert "no target matches 'py:srving*'" in proc.stderr and "close names: py:serving" in proc.stderr
    (root / "docs").mkdir()
    proc = run_polybuild("build", "docs/", cwd=root)
    assert proc.returncode == 2 and "no target in or below the directory 'docs/'" in proc.stderr


def test_build_and_run_take_globs_and_dependents(workspace):
    root = workspace({
        "polybuild.toml": '[tasks.hello]\ncmd = ["go", "version"]\ncache = false\n'
                          '[targets.tool]\ndeps = ["hello"]\n',
        "hello/go.mod": "module example.com/hello\n\ngo 1.22\n", "hello/main.go": "package main\nfunc main(){}\n",
        "tool/go.mod": "module example.com/tool\n\ngo 1.22\n", "tool/main.go": "package main\nfunc main(){}\n",
    })
    proc = run_polybuild("build", "go:h*", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (root / "dist").iterdir()) == ["build-report.json", "hello"]
    proc = run_polybuild("run", "hello", "tool/", "--json", cwd=root)
    assert proc.returncode == 0, proc.stderr
    ran = [e["task"] for e in map(json.loads, proc.stdout.splitlines()) if e.get("event") == "finish"]
    assert ran == ["go:tool:hello"]
    proc = run_polybuild("run", "hello", "hello", "--dependents", "--json", cwd=root)
    assert proc.returncode == 0, proc.stderr
    ran = [e["task"] for e in map(json.loads, proc.stdout.splitlines()) if e.get("event") == "finish"]
    assert ran == ["go:hello:hello", "go:tool:hello"]


def _git(root: Path, *args: str) -> str:
    import subprocess

    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=root,
                          check=True, capture_output=True, text=True).stdout.strip()


def _repo_with_a_feature_branch(workspace) -> tuple[Path, str]:
    """Two Go modules committed on main; a feature branch changes one of them. (The root, the fork point.)"""
    root = workspace({"polybuild.toml": "", "hello/go.mod": "module example.com/hello\n\ngo 1.22\n",
                      "hello/main.go": "package main\nfunc main(){}\n",
                      "tool/go.mod": "module example.com/tool\n\ngo 1.22\n",
                      "tool/main.go": "package main\nfunc main(){}\n",
                      ".gitignore": "dist/\n.polybuild/\n"})
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "base")
    fork = _git(root, "rev-parse", "HEAD")
    _git(root, "switch", "-qc", "feature")
    (root / "tool" / "main.go").write_text("package main\n\nfunc main() {}\n")
    _git(root, "commit", "-qam", "change tool")
    _git(root, "switch", "-q", "main")  # main moves on: the base is the fork point, not main's tip
    (root / "hello" / "main.go").write_text("package main\n\nfunc main() {}\n")
    _git(root, "commit", "-qam", "change hello")
    _git(root, "switch", "-q", "feature")
    return root, fork


def test_affected_without_since_compares_with_the_merge_base_of_main(workspace):
    root, fork = _repo_with_a_feature_branch(workspace)
    proc = run_polybuild("affected", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["go:tool"]
    assert f"affected since {fork} (merge base with main)" in proc.stderr
    data = json.loads(run_polybuild("affected", "--json", cwd=root).stdout)
    assert data["since"] == fork and data["base"] == "merge base with main" and data["targets"] == ["go:tool"]
    build = run_polybuild("build", "--affected", cwd=root)
    assert build.returncode == 0, build.stderr
    assert f"affected since {fork} (merge base with main)" in build.stderr
    assert sorted(p.name for p in (root / "dist").iterdir()) == ["build-report.json", "tool"]


def test_affected_prefers_origin_head(workspace, tmp_path):
    origin, fork = _repo_with_a_feature_branch(workspace)
    _git(origin, "switch", "-q", "main")
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(origin), str(clone))
    _git(clone, "switch", "-qc", "work", fork)
    (clone / "hello" / "extra.go").write_text("package main\n")
    _git(clone, "add", "-A")
    _git(clone, "commit", "-qm", "work")
    _git(clone, "branch", "-qD", "main")  # only origin/HEAD tells the default branch now
    proc = run_polybuild("affected", cwd=clone)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["go:hello"] and f"{fork} (merge base with origin/main)" in proc.stderr


def test_affected_without_a_default_branch_is_a_clear_error(workspace):
    root = workspace({"polybuild.toml": "", "go.mod": "module example.com/hello\n\ngo 1.22\n"})
    _git(root, "init", "-q", "-b", "trunk")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "base")
    proc = run_polybuild("affected", cwd=root)
    assert proc.returncode == 2
    assert "cannot tell which branch to compare with" in proc.stderr and "--since REF" in proc.stderr


def test_global_options_are_taken_after_the_command_too(tmp_path):
    """`polybuild graph -C DIR` works like `polybuild -C DIR graph` (it was "unrecognized arguments: -C"), and
    given in both places the later one wins."""
    root = copy_example("serving", tmp_path / "serving")
    before = run_polybuild("-C", str(root), "graph", cwd=tmp_path)
    after = run_polybuild("graph", "-C", str(root), "--color", "never", cwd=tmp_path)
    assert before.returncode == 0 and after.returncode == 0, after.stderr
    assert after.stdout == before.stdout and "go:operator" in after.stdout
    later = run_polybuild("-C", str(tmp_path / "missing"), "graph", "-C", str(root), cwd=tmp_path)
    assert later.returncode == 0 and later.stdout == before.stdout, later.stderr


def test_machine_output_and_platforms_are_spelled_alike_on_every_command(tmp_path):
    """`graph --json` (alias of `--format json`) and `ci matrix --platform X --platform Y` (as `build`, `run` and
    `explain` spell it; `--platforms` stays)."""
    root = copy_example("serving", tmp_path / "serving")
    assert run_polybuild("graph", "--json", cwd=root).stdout == run_polybuild("graph", "--format", "json",
                                                                             cwd=root).stdout
    repeated = run_polybuild("ci", "matrix", "--platform", "linux/amd64", "--platform", "linux/arm64", cwd=root)
    listed = run_polybuild("ci", "matrix", "--platforms", "linux/amd64,linux/arm64", cwd=root)
    assert repeated.returncode == 0, repeated.stderr
    assert repeated.stdout == listed.stdout and "linux/arm64" in repeated.stdout
