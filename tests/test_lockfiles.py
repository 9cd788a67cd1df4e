"""The lockfile preflight (`polybuild lock check`) with the real cargo, go and uv on real lockfiles.

One workspace is built per module (two Cargo locks, one nested; a Go module with a go.sum; a uv project locked by
the real `uv lock` with a Windows-only dependency behind a marker); each test edits a private copy of it.
tests/data/lockfiles/platdeps holds a lock uv wrote for a project with per-platform dependencies, a forked
resolution and a Windows-only binary package without an sdist.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import run_polybuild, write_tree
from polybuild.lockfiles.preflight import before_images as preflight_hook
from polybuild.support.platforms import Platform, host
from polybuild.workspace import pythonlock as wheels

DATA = Path(__file__).parent / "data" / "lockfiles"
OTHER_LINUX = "linux/arm64" if host().arch == "amd64" else "linux/amd64"  # an image platform that is not the host's
GO_SUM = """\
github.com/opencontainers/go-digest v1.0.0 h1:apOUWs51W5PlhuyGyz9FCeeBIOUDA/6nW8Oi/yOhh5U=
github.com/opencontainers/go-digest v1.0.0/go.mod h1:0JzlMkj0TRzQZfJkVvzbP0HBR3IKzErnv2BNG4W4MAM=
"""


def crate(name: str) -> dict[str, str]:
    return {"Cargo.toml": f'[package]\nname = "{name}"\nversion = "0.1.0"\nedition = "2021"\n\n[workspace]\n',
            "src/lib.rs": "pub fn f() {}\n"}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace whose every lockfile is fresh, written by the real tools."""
    root = tmp_path_factory.mktemp("lockfiles") / "ws"
    files = {
        "polybuild.toml": 'platforms = ["linux/amd64", "linux/arm64", "windows/amd64"]\n',
        **{f"rust/core/{k}": v for k, v in crate("core").items()},
        **{f"tools/nested/gen/{k}": v for k, v in crate("gen").items()},
        "deploy/m/go.mod": "module example.com/m\n\ngo 1.23\n\nrequire github.com/opencontainers/go-digest v1.0.0\n",
        "deploy/m/go.sum": GO_SUM,
        "deploy/m/main.go": 'package main\n\nimport "github.com/opencontainers/go-digest"\n\n'
                            'func main() { println(digest.FromString("x")) }\n',
        "py/app/pyproject.toml": """\
            [project]
            name = "app"
            version = "0.1.0"
            requires-python = ">=3.11"
            dependencies = ["six", "pywin32; sys_platform == 'win32'"]

            [tool.uv]
            required-version = ">=0.9"
            package = false
            """,
    }
    write_tree(root, files)
    for manifest in ("rust/core", "tools/nested/gen"):
        subprocess.run(["cargo", "generate-lockfile", "--offline", "--quiet"], cwd=root / manifest, check=True)
    subprocess.run(["uv", "lock", "--quiet"], cwd=root / "py/app", check=True)  # the live lock (PyPI)
    subprocess.run(["git", "init", "--quiet"], cwd=root, check=True)
    return root


@pytest.fixture
def ws(fresh: Path, tmp_path: Path) -> Path:
    """A private copy of the fresh workspace."""
    return Path(shutil.copytree(fresh, tmp_path / "ws", symlinks=True))


def lock_check(root: Path, *args: str) -> tuple[int, dict]:
    proc = run_polybuild("lock", "check", "--json", *args, cwd=root)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_fresh_workspace_passes_with_digests(ws: Path) -> None:
    code, report = lock_check(ws)
    assert (code, report["problems"]) == (0, [])
    assert sorted(report["digests"]) == ["deploy/m/go.sum", "py/app/uv.lock", "rust/core/Cargo.lock",
                                         "tools/nested/gen/Cargo.lock"]
    assert report["digests"]["py/app/uv.lock"] == hashlib.sha256((ws / "py/app/uv.lock").read_bytes()).hexdigest()
    assert [c.split(",")[0] for c in report["checked"]] == ["linux/amd64", "linux/arm64", "windows/amd64"]
    proc = run_polybuild("lock", "check", cwd=ws)  # the human output
    assert proc.returncode == 0 and "lock check: ok: 4 lockfile(s)" in proc.stdout


def test_stale_cargo_locks_root_and_nested(ws: Path) -> None:
    nested = ws / "tools/nested/gen/Cargo.toml"
    nested.write_text(nested.read_text().replace('version = "0.1.0"', 'version = "0.2.0"'))
    code, report = lock_check(ws)
    assert code == 1
    assert len(report["problems"]) == 1, report["problems"]
    problem = report["problems"][0]
    assert problem.startswith("tools/nested/gen/Cargo.lock: out of date with tools/nested/gen/Cargo.toml")
    assert "cargo update" in problem
    root_manifest = ws / "rust/core/Cargo.toml"
    root_manifest.write_text(root_manifest.read_text() + '[dependencies]\ngen = { path = "../../tools/nested/gen" }\n')
    _, report = lock_check(ws)
    assert [p.split(":")[0] for p in report["problems"]] == ["rust/core/Cargo.lock", "tools/nested/gen/Cargo.lock"]


def test_go_sum_missing_line_and_wrong_hash(ws: Path) -> None:
    go_sum = ws / "deploy/m/go.sum"
    go_sum.write_text(GO_SUM.splitlines()[1] + "\n")
    code, report = lock_check(ws)
    assert code == 1
    assert report["problems"][0].startswith("deploy/m/go.sum: out of date (go.sum would change")
    assert "go mod tidy" in report["problems"][0]
    go_sum.write_text(GO_SUM.replace("apOUWs51", "apOUWs52"))
    _, report = lock_check(ws)
    assert report["problems"][0].startswith("deploy/m/go.sum: a recorded hash does not match the module")
    assert "checksum mismatch" in report["problems"][0]


def test_stale_uv_lock(ws: Path) -> None:
    pyproject = ws / "py/app/pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"six", ', ""))
    code, report = lock_check(ws)
    assert code == 1
    assert report["problems"] == [
        "py/app/uv.lock: out of date with its pyproject.toml (`uv lock --check` fails); fix: run `uv lock` in "
        "py/app with the pinned uv and commit uv.lock"]


def test_uv_version_mismatch_is_not_reported_as_stale(ws: Path) -> None:
    pyproject = ws / "py/app/pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('required-version = ">=0.9"', 'required-version = "==0.4.0"'))
    code, report = lock_check(ws)
    assert code == 1
    [problem] = report["problems"]
    assert problem.startswith("py/app/uv.lock: uv version mismatch, not a stale lock: uv 0.")
    assert "pins uv==0.4.0" in problem and "py/app/pyproject.toml [tool.uv] required-version" in problem
    assert "uv self update 0.4.0" in problem and "out of date" not in problem
    # the same pin from polybuild's config, the pyproject's pin dropped
    pyproject.write_text(pyproject.read_text().replace('required-version = "==0.4.0"', ""))
    (ws / "polybuild.toml").write_text((ws / "polybuild.toml").read_text() + '[lockfiles]\nuv-version = "0.4.0"\n')
    _, report = lock_check(ws)
    assert len(report["problems"]) == 1 and "lockfiles.uv-version" in report["problems"][0]
    assert "uv version mismatch" in report["problems"][0]


def test_unpinned_uv_is_a_note(ws: Path) -> None:
    pyproject = ws / "py/app/pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('required-version = ">=0.9"', ""))
    code, report = lock_check(ws, "--platform", "linux/amd64")
    assert code == 0 and "no uv version is pinned" in report["notes"][0]


@pytest.fixture(scope="module")
def platdeps() -> wheels.Lock:
    return wheels.read(DATA / "platdeps/uv.lock", "uv.lock")


def target(platform: str, python: tuple[int, int] = (3, 12)) -> wheels.Target:
    return wheels.Target(Platform.parse(platform), python)


def test_platform_without_wheels_names_package_needed_and_available_tags(platdeps: wheels.Lock) -> None:
    linux = target("linux/amd64")
    [miss] = wheels.misses(platdeps, linux)
    assert miss.package.name == "pywin32" and miss.chain == ("platdeps", "pywin32 (group win)")
    line = wheels.describe(miss, linux, "uv.lock")
    assert line.startswith("uv.lock: pywin32 312 has no wheel for linux/amd64, Python 3.12 and no sdist")
    assert "cp312/abi3/py3 wheels tagged manylinux_2_28_x86_64" in line  # what it needed
    assert "win32, win_amd64, win_arm64" in line and "cp312" in line  # what it has
    assert "required-environments" in line and "`pywin32; sys_platform == 'win32'`" in line  # how to fix
    assert wheels.misses(platdeps, target("windows/amd64")) == []
    assert wheels.misses(platdeps, target("windows/arm64")) == []


def test_markers_that_exclude_a_package_do_not_flag_it(platdeps: wheels.Lock) -> None:
    def names(platform: str) -> set[str]:
        return {p.label for p, _ in wheels.reachable(platdeps, target(platform))}

    # nvidia-nccl-cu12 has Linux wheels only and no sdist, and applies on Linux only
    assert "nvidia-nccl-cu12 2.32.3" in names("linux/arm64")
    assert "nvidia-nccl-cu12 2.32.3" not in names("darwin/arm64")
    assert [m.package.name for m in wheels.misses(platdeps, target("darwin/arm64"))] == ["pywin32"]
    # the forked resolution: each platform gets its own version of six, and only it
    assert {"six 1.17.0"} == {n for n in names("linux/amd64") if n.startswith("six")}
    assert {"six 1.16.0", "colorama 0.4.6"} <= names("windows/amd64")
    assert "six 1.17.0" not in names("windows/amd64")


def test_glibc_and_musl_levels_decide_linux_wheels(platdeps: wheels.Lock) -> None:
    nccl = next(p for p in platdeps.packages if p.name == "nvidia-nccl-cu12")  # manylinux_2_27 wheels
    assert nccl.installable(target("linux/arm64"))
    assert not nccl.installable(wheels.Target(Platform.parse("linux/arm64"), (3, 12), glibc=(2, 17)))
    assert not nccl.installable(wheels.Target(Platform.parse("linux/amd64"), (3, 12), musl=(1, 2)))


def test_cli_on_the_fixture_lock(tmp_path: Path) -> None:
    root = Path(shutil.copytree(DATA / "platdeps", tmp_path / "ws"))
    (root / "polybuild.toml").write_text("")
    code, report = lock_check(root, "--platform", "darwin/arm64", "--platform", "windows/amd64",
                              "--python", "3.13")
    assert code == 1
    assert [p.split(" has ")[0] for p in report["problems"]] == ["uv.lock: pywin32 312"]
    assert "darwin/arm64, Python 3.13" in report["problems"][0]
    proc = run_polybuild("lock", "check", "--python", "3.10", cwd=root)
    assert proc.returncode == 1 and "Python 3.10 is outside the lock's requires-python '>=3.11'" in proc.stdout
    proc = run_polybuild("lock", "check", "--platform", "linux/s390x", cwd=root)
    assert proc.returncode == 2 and "--platform linux/s390x: not a known platform" in proc.stderr


def test_unreadable_uv_lock_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    root = Path(shutil.copytree(DATA / "platdeps", tmp_path / "ws"))
    (root / "polybuild.toml").write_text("")
    (root / "uv.lock").write_text("version = 1\n[[package]\n")
    code, report = lock_check(root, "--platform", "linux/amd64")
    assert code == 1
    assert any(p.startswith("uv.lock:2:10: cannot read the lock") and "uv lock" in p for p in report["problems"])


def test_broken_uv_setting_file_is_a_located_problem(tmp_path: Path) -> None:
    """uv.toml next to a lock was read as {} when broken: its uv pin silently ignored. Now file:line:col."""
    root = Path(shutil.copytree(DATA / "platdeps", tmp_path / "ws"))
    (root / "polybuild.toml").write_text("")
    (root / "uv.toml").write_text('required-version = ">=0.9"\nnative-tls = \n')
    code, report = lock_check(root, "--platform", "linux/amd64")
    assert code == 1
    assert any(p.startswith("uv.toml:2:") and "invalid TOML" in p for p in report["problems"]), report["problems"]


def test_container_build_for_another_platform_runs_the_preflight(ws: Path) -> None:
    config = ws / "polybuild.toml"
    pyproject = ws / "py/app/pyproject.toml"  # pywin32 unconditional: no wheel for Linux
    pyproject.write_text(pyproject.read_text().replace("\"pywin32; sys_platform == 'win32'\"", '"pywin32"'))
    subprocess.run(["uv", "lock", "--quiet", "--offline"], cwd=ws / "py/app", check=True)
    config.write_text(f'platforms = ["{OTHER_LINUX}"]\n\n[images.bundle]\nartifacts = ["m"]\n'
                      f'platforms = ["{OTHER_LINUX}"]\n')
    proc = run_polybuild("build", "bundle", "--platform", OTHER_LINUX, cwd=ws)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"lockfile preflight for {OTHER_LINUX}" in proc.stderr
    assert "py/app/uv.lock: pywin32" in proc.stderr and "no wheel for " + OTHER_LINUX in proc.stderr
    assert not (ws / "dist").exists()  # stopped before anything was built


def test_preflight_hook_fires_for_foreign_image_platforms_only(ws: Path) -> None:
    """In process: the same broken lock stops an image for another platform and lets the host's through."""
    from polybuild import api
    from polybuild.plan import build_plan, choose_dimensions
    from polybuild.support.errors import UserError

    pyproject = ws / "py/app/pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("\"pywin32; sys_platform == 'win32'\"", '"pywin32"'))
    subprocess.run(["uv", "lock", "--quiet", "--offline"], cwd=ws / "py/app", check=True)
    for platform, fires in ((host().name, False), (OTHER_LINUX, True)):
        (ws / "polybuild.toml").write_text(f'[images.bundle]\nartifacts = ["m"]\nplatforms = ["{platform}"]\n')
        loaded = api.load(ws)
        variants, platforms = choose_dimensions(loaded.ws, [], [platform])
        plan = build_plan(loaded.ws, loaded.dag, loaded.dag.closure(["image:bundle"]), variants, platforms)
        ctx = api._context(loaded, api.CacheOptions(enabled=False))
        if fires:
            with pytest.raises(UserError, match=f"lockfile preflight for {OTHER_LINUX}"):
                preflight_hook(plan, ctx)
        else:
            preflight_hook(plan, ctx)


def test_repo_and_serving_example_pass() -> None:
    repo = Path(__file__).resolve().parent.parent
    for root in (repo, repo / "examples/serving"):
        code, report = lock_check(root)
        assert (code, report["problems"]) == (0, []), root
        assert any(p.endswith("Cargo.lock") for p in report["digests"])


def test_a_passed_check_is_remembered_until_its_inputs_change(ws: Path) -> None:
    assert lock_check(ws)[1]["remembered"] == []
    code, report = lock_check(ws)
    assert (code, report["problems"]) == (0, [])
    assert sorted(report["remembered"]) == sorted(report["digests"])  # all four, none re-run
    assert "(4 unchanged since they passed)" in run_polybuild("lock", "check", cwd=ws).stdout
    assert lock_check(ws, "--no-cache")[1]["remembered"] == []
    main = ws / "deploy/m/main.go"  # a source edit that tidy would not answer alike: the module is checked again
    main.write_text(main.read_text().replace("func main()", "// edited\nfunc main()"))
    assert sorted(lock_check(ws)[1]["remembered"]) == ["py/app/uv.lock", "rust/core/Cargo.lock",
                                                       "tools/nested/gen/Cargo.lock"]


def test_a_remembered_pass_never_hides_a_changed_lockfile(ws: Path) -> None:
    assert lock_check(ws)[0] == 0
    go_sum = ws / "deploy/m/go.sum"
    go_sum.write_text(GO_SUM.replace("apOUWs51", "apOUWs52"))
    lock = ws / "tools/nested/gen/Cargo.lock"
    lock.write_text(lock.read_text().replace('name = "gen"\nversion = "0.1.0"', 'name = "gen"\nversion = "0.0.9"'))
    uv_lock = ws / "py/app/uv.lock"
    uv_lock.write_text(uv_lock.read_text().replace('name = "six"', 'name = "sixx"', 1))
    code, report = lock_check(ws)
    assert code == 1
    assert sorted(p.split(":")[0] for p in report["problems"]) == ["deploy/m/go.sum", "py/app/uv.lock",
                                                                     "tools/nested/gen/Cargo.lock"]
    assert report["remembered"] == ["rust/core/Cargo.lock"]


def test_a_remembered_pass_never_hides_an_import_the_go_sum_lacks(ws: Path) -> None:
    assert lock_check(ws)[0] == 0
    (ws / "deploy/m/extra.go").write_text('package main\n\nimport _ "golang.org/x/mod/semver"\n')
    code, report = lock_check(ws)
    assert code == 1
    assert report["problems"][0].startswith("deploy/m/go.sum: out of date")


@pytest.fixture(scope="module")
def other_uv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second real uv, of another version than the one on PATH, from PyPI."""
    target = tmp_path_factory.mktemp("other-uv")
    subprocess.run(["uv", "pip", "install", "--quiet", "--target", str(target), "uv==0.9.30"], check=True)
    return target / "bin"


def test_another_tool_version_checks_again(ws: Path, other_uv: Path) -> None:
    import os

    from conftest import polybuild_env

    assert lock_check(ws)[0] == 0
    env = polybuild_env(PATH=f"{other_uv}{os.pathsep}{os.environ['PATH']}")
    proc = run_polybuild("lock", "check", "--json", cwd=ws, env=env)
    report = json.loads(proc.stdout)
    assert "py/app/uv.lock" not in report["remembered"], report
    assert sorted(report["remembered"]) == ["deploy/m/go.sum", "rust/core/Cargo.lock", "tools/nested/gen/Cargo.lock"]
    nightly = sorted(Path(os.environ.get("RUSTUP_HOME", Path.home() / ".rustup")).glob("toolchains/nightly-*/bin"))
    if not nightly:
        pytest.skip("a second Rust toolchain (nightly) is not installed")
    env = polybuild_env(PATH=f"{nightly[0]}{os.pathsep}{os.environ['PATH']}")
    report = json.loads(run_polybuild("lock", "check", "--json", cwd=ws, env=env).stdout)
    assert report["problems"] == []
    assert [r for r in report["remembered"] if r.endswith("Cargo.lock")] == []


def test_a_cargo_lock_is_checked_from_the_registry_index_alone(tmp_path: Path) -> None:
    """`cargo metadata` would download every locked crate (1.2 GB for dynamo on a fresh machine): the check reads
    only the index, so a fresh Cargo home holds no crate afterwards."""
    from conftest import polybuild_env

    root = write_tree(tmp_path / "ws", {
        "polybuild.toml": "",
        "Cargo.toml": '[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n'
                      'itoa = "=1.0.11"\n\n[workspace]\n',
        "src/lib.rs": "",
    })
    home = tmp_path / "cargo-home"
    env = polybuild_env(CARGO_HOME=str(home))
    subprocess.run(["cargo", "generate-lockfile", "--quiet"], cwd=root, env=env, check=True)  # the index (crates.io)
    subprocess.run(["git", "init", "--quiet"], cwd=root, check=True)
    proc = run_polybuild("lock", "check", "--json", cwd=root, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in home.glob("registry/cache/*/*.crate")) == []
    manifest = root / "Cargo.toml"
    manifest.write_text(manifest.read_text().replace("=1.0.11", "=1.0.10"))
    proc = run_polybuild("lock", "check", "--json", cwd=root, env=env)
    assert proc.returncode == 1 and json.loads(proc.stdout)["problems"][0].startswith("Cargo.lock: out of date")
