"""`polybuild ci matrix` on real git histories of the serving demo, `build --ci-job`, the GitHub step outputs,
summaries and annotations, and this repository's workflows checked by actionlint."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import networkx as nx
import pytest
import yaml

from conftest import REPO, copy_example, polybuild_env, run_polybuild
from polybuild import api
from polybuild.ci.github import output_lines
from polybuild.ci.matrix import _shards, compute

PLATFORMS = ["linux/amd64", "linux/arm64", "darwin/arm64"]
ACTIONLINT = "github.com/rhysd/actionlint/cmd/actionlint@v1.7.7"
ACTIONLINT_DIR = REPO / "target" / "tests" / "actionlint-1.7.7"
GITHUB_VARS = ("GITHUB_ACTIONS", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY")


def git(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True, text=True).stdout


def commit(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


@pytest.fixture(scope="module")
def demo_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo as a git repository with one commit."""
    root = copy_example("serving", tmp_path_factory.mktemp("ci") / "serving")
    append(root / ".gitignore", "/.polybuild/\n")  # as in a checkout of its own (the repository's covers it)
    git(root, "init", "-q", "-b", "main")
    commit(root, "demo")
    return root


@pytest.fixture
def demo(demo_base: Path, tmp_path: Path) -> Path:
    """A private clone of the demo's history, to commit changes into."""
    return Path(shutil.copytree(demo_base, tmp_path / "serving", symlinks=True))


def env(**extra: str) -> dict[str, str]:
    base = polybuild_env(**extra)
    for name in GITHUB_VARS:
        if name not in extra:
            base.pop(name, None)  # the tests may themselves run inside GitHub Actions
    return base


def matrix(root: Path, *args: str, **extra_env: str) -> list[dict]:
    proc = run_polybuild("ci", "matrix", *args, cwd=root, env=env(**extra_env))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["include"]


def all_targets(include: list[dict]) -> set[str]:
    return {t for entry in include for t in entry["targets"]}


def append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def read_outputs(path: Path) -> dict[str, str]:
    """`$GITHUB_OUTPUT` parsed the way the runner parses it (`name=value` and `name<<DELIM` blocks)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    outputs, i = {}, 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            end = lines.index(delimiter, i + 1)
            outputs[name] = "\n".join(lines[i + 1:end])
            i = end + 1
            continue
        if line:
            name, value = line.split("=", 1)
            outputs[name] = value
        i += 1
    return outputs


# --- matrices of real git histories ------------------------------------------------------------------------------

def test_leaf_go_change_gives_the_binary_and_the_images_holding_it(demo: Path) -> None:
    append(demo / "deploy/operator/cmd/operator/main.go", "\n// a comment changes the binary's inputs\n")
    commit(demo, "operator: comment")
    include = matrix(demo, "--since", "HEAD~1", "--platforms", *PLATFORMS)
    assert all_targets(include) == {"go:operator", "image:frontend", "image:operator-image"}
    by_platform = {e["platform"]: e for e in include}
    assert len(include) == 3 and set(by_platform) == set(PLATFORMS)
    assert by_platform["darwin/arm64"]["targets"] == ["go:operator"]  # images are Linux only
    assert "python" not in by_platform["darwin/arm64"]  # a Go-only job has no Python version
    for p in ("linux/amd64", "linux/arm64"):
        assert by_platform[p]["targets"] == ["go:operator", "image:frontend", "image:operator-image"]  # one job
    assert by_platform["linux/arm64"]["runner"] == "ubuntu-24.04-arm"
    assert by_platform["darwin/arm64"]["runner"] == "macos-15"


def test_library_and_python_changes_over_several_commits(demo: Path) -> None:
    append(demo / "deploy/api/deployment.go", "\n// the library the operator imports\n")
    commit(demo, "api: comment")
    assert all_targets(matrix(demo, "--since", "HEAD~1", "--platforms", *PLATFORMS)) == {
        "go:operator", "image:frontend", "image:operator-image"}
    append(demo / "components/serving/README.md", "\nmore words\n")
    commit(demo, "serving: docs")
    include = matrix(demo, "--since", "HEAD~1", "--platforms", *PLATFORMS)
    # A pure wheel is built once; each Linux platform rebuilds the image holding it; nothing runs on macOS.
    assert [e["platform"] for e in include] == ["linux/amd64", "linux/arm64"]
    amd64, arm64 = include
    assert amd64["targets"][:2] == ["py:serving", "image:frontend"] and arm64["targets"] == ["image:frontend"]
    dependents = nx.ancestors(api.load(demo).graph, "py:serving")  # what the demo grows stays in the check
    assert set(amd64["targets"]) <= dependents | {"py:serving"}
    both = all_targets(matrix(demo, "--since", "HEAD~2", "--platforms", *PLATFORMS))
    assert both == {"go:operator", "image:operator-image"} | set(amd64["targets"])


def test_rust_core_change_gives_its_wheel_the_pure_wheel_and_the_images(demo: Path) -> None:
    append(demo / "lib/runtime/src/lib.rs", "\n// touched\n")
    commit(demo, "core: comment")
    include = matrix(demo, "--since", "HEAD~1", "--platforms", *PLATFORMS)
    found = all_targets(include)
    assert {"py:serving-runtime", "py:serving", "image:frontend"} <= found
    assert "go:operator" not in found
    graph = api.load(demo).graph
    assert found <= nx.ancestors(graph, "rust:serving-core")  # only what depends on the core
    linux = next(e for e in include if e["platform"] == "linux/amd64")
    assert linux["python"] == "3.12" and linux["libc"] == "manylinux"
    # The pure wheel is built once, in the first job; the others restore it (or rebuild it) as a dependency.
    assert sum("py:serving" in e["targets"] for e in include) == 1


def test_no_change_is_an_empty_matrix_and_a_skip_flag(demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "github_output"
    out.write_text("earlier=kept\n")
    assert matrix(demo, "--since", "HEAD", GITHUB_OUTPUT=str(out)) == []
    outputs = read_outputs(out)
    assert outputs["earlier"] == "kept"  # appended, not rewritten
    assert outputs["empty"] == "true" and outputs["jobs"] == "0"
    assert json.loads(outputs["matrix"]) == {"include": []}


def test_matrix_output_for_github(demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "github_output"
    include = matrix(demo, "--platforms", "linux/amd64", GITHUB_OUTPUT=str(out))
    outputs = read_outputs(out)
    assert outputs["empty"] == "false" and json.loads(outputs["matrix"]) == {"include": include}
    assert outputs["jobs"] == str(len(include))
    assert matrix(demo, "--platforms", "linux/amd64") == include  # deterministic


def test_multiline_outputs_use_the_delimiter_syntax(tmp_path: Path) -> None:
    value = json.dumps({"include": [{"targets": ["a"]}]}, indent=2)
    text = output_lines({"matrix": value, "empty": "false"})
    assert text.startswith("matrix<<POLYBUILD_EOF_")
    path = tmp_path / "out"
    path.write_text(text)
    assert read_outputs(path) == {"matrix": value, "empty": "false"}


def test_an_unknown_ref_is_a_clear_error(demo: Path) -> None:
    proc = run_polybuild("ci", "matrix", "--since", "no-such-branch", cwd=demo, env=env())
    assert proc.returncode == 2
    assert "cannot compare with 'no-such-branch'" in proc.stderr and "Traceback" not in proc.stderr


# --- sharding, wheel axes, valid combinations --------------------------------------------------------------------

def test_sharding_rules() -> None:
    # Small groups share a job (first fit, in order); a group over the size is cut in dependency order.
    assert _shards([["a", "b"], ["c"], ["d", "e"]], 3) == [["a", "b", "c"], ["d", "e"]]
    assert _shards([["a", "b", "c", "d", "e"]], 2) == [["a", "b"], ["c", "d"], ["e"]]
    assert _shards([["a"], ["b", "c", "d"], ["e"]], 2) == [["a", "e"], ["b", "c"], ["d"]]


def test_shards_keep_dependencies_in_the_same_or_an_earlier_job(demo: Path) -> None:
    loaded = api.load(demo)
    whole = compute(loaded, platforms=["linux/amd64"]).include
    sharded = compute(loaded, platforms=["linux/amd64"], shard_size=2).include
    assert len(whole) == 1 and len(sharded) > 1
    assert all(len(e["targets"]) <= 2 for e in sharded)
    assert [t for e in sharded for t in e["targets"]] == whole[0]["targets"]  # same builds, dependency order
    position = {t: i for i, e in enumerate(sharded) for t in e["targets"]}
    for t, i in position.items():
        for dep in loaded.dag.closure([t]) & position.keys():
            assert position[dep] <= i, f"{t} is in job {i} but its dependency {dep} in job {position[dep]}"
    assert len({e["id"] for e in sharded}) == len(sharded)  # ids name artifacts: unique


def test_more_jobs_than_github_allows_is_an_error(demo: Path) -> None:
    from polybuild.support.errors import UserError

    with pytest.raises(UserError, match="GitHub Actions runs at most 2 per matrix"):
        compute(api.load(demo), platforms=PLATFORMS, shard_size=1, max_jobs=2)


def test_shard_size_from_config_and_bad_values(demo: Path) -> None:
    append(demo / "polybuild.toml", "\n[ci]\nshard-size = 1\n")
    include = compute(api.load(demo), platforms=["linux/amd64"]).include
    assert all(len(e["targets"]) == 1 for e in include)
    proc = run_polybuild("ci", "matrix", "--shard-size", "0", cwd=demo, env=env())
    assert proc.returncode == 2 and "--shard-size 0" in proc.stderr


def test_abi3_wheel_is_one_job_per_flavour_and_others_one_per_python(demo: Path) -> None:
    append(demo / "polybuild.toml", '\n[ci]\npython = ["3.11", "3.12", "3.13"]\nlibc = ["manylinux", "musllinux"]\n')
    loaded = api.load(demo)
    assert loaded.ws.targets["py:serving-runtime"].info.abi3
    abi3 = [e for e in compute(loaded, platforms=PLATFORMS).include if "py:serving-runtime" in e["targets"]]
    assert sorted((e["platform"], e.get("libc")) for e in abi3) == [
        ("darwin/arm64", None), ("linux/amd64", "manylinux"), ("linux/amd64", "musllinux"),
        ("linux/arm64", "manylinux"), ("linux/arm64", "musllinux")]
    musl = next(e for e in abi3 if e.get("libc") == "musllinux" and e["platform"] == "linux/arm64")
    assert musl["container"] == "quay.io/pypa/musllinux_1_2_aarch64" and musl["targets"] == ["py:serving-runtime"]

    cargo = demo / "Cargo.toml"
    cargo.write_text(cargo.read_text().replace('"abi3-py310"', '"macros"'))  # the same crate, not abi3
    loaded = api.load(demo)
    assert not loaded.ws.targets["py:serving-runtime"].info.abi3
    wheels = [e for e in compute(loaded, platforms=PLATFORMS).include if "py:serving-runtime" in e["targets"]]
    combos = sorted((e["platform"], e.get("libc") or "", e["python"]) for e in wheels)
    expected = sorted((p, libc, py) for p, libcs in (("linux/amd64", ("manylinux", "musllinux")),
                                                     ("linux/arm64", ("manylinux", "musllinux")),
                                                     ("darwin/arm64", ("",)))
                      for libc in libcs for py in ("3.11", "3.12", "3.13"))
    assert combos == expected


def test_invalid_combinations_never_appear(demo: Path) -> None:
    polybuild_toml = demo / "polybuild.toml"
    polybuild_toml.write_text(polybuild_toml.read_text().replace(
        'exclude = [{ device = "cuda", platform = "linux/arm64" }]',
        'exclude = [{ device = "cuda", platform = "linux/arm64" }, { variant = "cuda", platform = "linux/arm64" }]'))
    include = compute(api.load(demo), platforms=PLATFORMS, variants=["cpu", "cuda", "metal"]).include
    combos = {(e["platform"], e["variant"]) for e in include}
    assert ("darwin/arm64", "cuda") not in combos and ("linux/amd64", "metal") not in combos
    assert ("linux/amd64", "cuda") in combos and ("darwin/arm64", "metal") in combos
    for e in include:
        if e["platform"].startswith("darwin/"):
            assert not [t for t in e["targets"] if t.startswith("image:")]
    cuda_arm = [e for e in include if (e["platform"], e["variant"]) == ("linux/arm64", "cuda")]
    assert cuda_arm and all("image:frontend" not in e["targets"] for e in cuda_arm)  # the image's exclude
    assert any("image:frontend" in e["targets"] for e in include if e["platform"] == "linux/amd64")
    # A cuda job holds only what the variant changes; the Go binary is built once per platform, in cpu jobs.
    assert all("go:operator" not in e["targets"] for e in include if e["variant"] == "cuda")

    proc = run_polybuild("ci", "matrix", "--platforms", "darwin/arm64", "--variants", "cuda", cwd=demo, env=env())
    assert proc.returncode == 2 and "no requested variant can be built" in proc.stderr
    proc = run_polybuild("ci", "matrix", "--variants", "cudaa", cwd=demo, env=env())
    assert proc.returncode == 2 and "did you mean 'cuda'" in proc.stderr


def test_bad_ci_config_is_located(demo: Path) -> None:
    append(demo / "polybuild.toml", '\n[ci]\nlibc = ["glibc"]\n')
    proc = run_polybuild("ci", "matrix", cwd=demo, env=env())
    assert proc.returncode == 2
    assert "polybuild.toml:" in proc.stderr and "unknown wheel flavour 'glibc'" in proc.stderr


# --- one job: --ci-job, step summary, annotations -----------------------------------------------------------------

def test_ci_job_builds_exactly_its_entry_and_writes_the_summary(demo: Path, tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    entry = {"id": "linux-arm64-cpu", "name": "linux-arm64 cpu", "platform": "linux/arm64",
             "runner": "ubuntu-24.04-arm", "variant": "cpu", "targets": ["go:operator"]}
    proc = run_polybuild("build", "--ci-job", json.dumps(entry), cwd=demo,
                         env=env(GITHUB_STEP_SUMMARY=str(summary)))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((demo / "dist/build-report.json").read_text())
    assert [t["id"] for t in report["tasks"]] == ["go:operator [linux/arm64]"]
    [artifact] = report["artifacts"]
    binary = demo / artifact["path"]
    assert artifact["platform"] == "linux/arm64" and binary.is_file()
    sha = hashlib.sha256(binary.read_bytes()).hexdigest()
    text = summary.read_text()
    assert "| `go:operator` | `go:operator [linux/arm64]` | ✅ built |" in text
    assert f"{sha}  {artifact['path']}" in text
    assert "**1 built**" in text


def test_every_build_in_a_job_writes_its_summary(demo: Path, tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    for run in range(3):
        # Past the fast path's two-second window, so that without the summary the third run would be answered by
        # the no-op fast path (which prints no per-task results).
        time.sleep(2.1 if run else 0)
        proc = run_polybuild("build", "operator", cwd=demo,
                             env=env(GITHUB_STEP_SUMMARY=str(summary), POLYBUILD_FAST_PATH="1"))
        assert proc.returncode == 0, proc.stderr
    text = summary.read_text()
    assert text.count("**1 built**") == 1 and text.count("**1 cached**") == 2
    assert text.count("Artifact digests (1)") == 3


def test_ci_job_input_errors(demo: Path) -> None:
    cases = {
        "not json": "--ci-job is not JSON",
        '["go:operator"]': "must be a JSON object",
        '{"targets": ["operatr"]}': "operatr",
        '{"targets": ["go:operator"], "python": "3.99"}': "Python 3.99, which is not installed here",
        '{"targets": ["go:operator"], "libc": "musllinux"}': "builds musllinux wheels but runs on glibc",
    }
    for job, message in cases.items():
        proc = run_polybuild("build", "--ci-job", job, cwd=demo, env=env())
        assert proc.returncode == 2, (job, proc.stderr)
        assert message in proc.stderr and "Traceback" not in proc.stderr, (job, proc.stderr)
    proc = run_polybuild("build", "serving", "--ci-job", '{"targets": []}', cwd=demo, env=env())
    assert proc.returncode == 2 and "--ci-job names the targets" in proc.stderr


def test_failure_is_annotated_at_the_manifest(demo: Path, tmp_path: Path) -> None:
    append(demo / "deploy/operator/cmd/operator/main.go", "\nfunc broken( {\n")
    summary = tmp_path / "summary.md"
    job = json.dumps({"platform": "linux/amd64", "targets": ["go:operator"]})
    proc = run_polybuild("build", "--ci-job", job, cwd=demo,
                         env=env(GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary)))
    assert proc.returncode == 1
    [annotation] = [line for line in proc.stderr.splitlines() if line.startswith("::error ")]
    module_line = (demo / "deploy/operator/go.mod").read_text().splitlines().index(
        "module example.com/serving/operator") + 1
    assert annotation.startswith(f"::error file=deploy/operator/go.mod,line={module_line},"
                                 f"title=polybuild%3A go%3Aoperator failed::go:operator failed%0Acommand: ")
    assert "main.go" in annotation  # the compiler's message, from the log tail
    assert "| `go:operator` | `go:operator` | ❌ failed |" in summary.read_text()


def test_no_annotations_outside_github(demo: Path) -> None:
    append(demo / "deploy/operator/cmd/operator/main.go", "\nfunc broken( {\n")
    proc = run_polybuild("build", "operator", cwd=demo, env=env())
    assert proc.returncode == 1 and "::error" not in proc.stderr


# --- this repository's workflows ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def actionlint() -> Path:
    """actionlint, installed once with `go install` into the tests' cache directory."""
    binary = ACTIONLINT_DIR / "actionlint"
    if not binary.is_file():
        assert shutil.which("go"), "go is not installed"
        proc = subprocess.run(["go", "install", ACTIONLINT], env={**os.environ, "GOBIN": str(ACTIONLINT_DIR)},
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"go install {ACTIONLINT} failed:\n{proc.stderr}"
    return binary


def test_workflows_pass_actionlint(actionlint: Path) -> None:
    files = sorted((REPO / ".github/workflows").glob("*.yml"))
    assert {f.name for f in files} >= {"ci.yml", "release.yml"}
    proc = subprocess.run([str(actionlint), "-no-color", *map(str, files)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_rejects_a_broken_workflow(actionlint: Path, tmp_path: Path) -> None:
    broken = (REPO / ".github/workflows/ci.yml").read_text().replace("needs: plan\n", "needs: plann\n", 1)
    assert "plann" in broken
    path = tmp_path / "ci.yml"
    path.write_text(broken)
    proc = subprocess.run([str(actionlint), "-no-color", str(path)], capture_output=True, text=True)
    assert proc.returncode != 0 and "plann" in proc.stdout


def test_ci_workflow_is_planned_by_polybuild() -> None:
    ci = yaml.safe_load((REPO / ".github/workflows/ci.yml").read_text())
    plan, build = ci["jobs"]["plan"], ci["jobs"]["build"]
    assert plan["steps"][0]["with"]["fetch-depth"] == 0
    assert "polybuild ci matrix" in next(s["run"] for s in plan["steps"] if s.get("id") == "matrix")
    assert plan["outputs"]["matrix"] == "${{ steps.matrix.outputs.matrix }}"
    assert build["if"] == "needs.plan.outputs.empty == 'false'"
    assert build["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    assert build["runs-on"] == "${{ matrix.runner }}"
    step = next(s for s in build["steps"] if "--ci-job" in s.get("run", ""))
    assert step["env"]["UPLOAD"] == "${{ github.event_name == 'push' && github.ref == 'refs/heads/main' }}"
    assert ci["env"]["POLYBUILD_REMOTE_URL"] == "${{ secrets.POLYBUILD_REMOTE_URL }}"
    release = yaml.safe_load((REPO / ".github/workflows/release.yml").read_text())
    assert release[True]["push"]["tags"] == ["v*"]  # YAML 1.1 reads the key `on` as true
    assert any('nox -s release -- "${TAG#v}"' in s.get("run", "") for s in release["jobs"]["release"]["steps"])
