"""Build tools provisioned, not demanded (issue 15): polybuild run by an interpreter that has only its own runtime
dependencies (a fresh `uv venv`, PATH holding git and uv alone) builds hatchling and maturin packages and runs pytest
through cached, locked tool environments it makes with the real uv from the real PyPI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import pytest

from conftest import PYTHON_SRC, REPO, polybuild_env, write_tree

HATCH_PKG = {
    "pkg/pyproject.toml": '[build-system]\nrequires = ["hatchling>=1.26"]\nbuild-backend = "hatchling.build"\n\n'
                          '[project]\nname = "hello"\nversion = "1.0"\n',
    "pkg/src/hello/__init__.py": "ANSWER = 42\n",
}


def _uv() -> str:
    found = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    assert os.access(found, os.X_OK), "uv is needed for these tests (the tests session installs it)"
    return found


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A venv with polybuild's runtime dependencies only (no hatchling, maturin or pytest), a bin dir with git and
    uv alone, and a uv cache private to this module (so the first provisioning really downloads). uv, a dependency
    too, is left out of the venv (it is on PATH instead) so that an install without it can be tested."""
    base = tmp_path_factory.mktemp("bare")
    venv = base / "venv"
    deps = [d for d in runtime_dependencies() if not d.startswith("uv")]
    subprocess.run([_uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    subprocess.run([_uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), *deps], check=True)
    bin_dir = base / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(shutil.which("git") or "/usr/bin/git")
    (bin_dir / "uv").symlink_to(_uv())
    python = venv / "bin" / "python"
    probe = "import importlib.util as u; print([m for m in ('hatchling', 'maturin', 'pytest') if u.find_spec(m)])"
    assert subprocess.run([str(python), "-c", probe], capture_output=True, text=True).stdout.strip() == "[]"
    return {"python": python, "bin": bin_dir, "uv_cache": base / "uv-cache"}


def runtime_dependencies() -> list[str]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]


def run(bare: dict[str, Path], *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """polybuild through the bare interpreter, with PATH = git and uv only."""
    full = polybuild_env(PATH=str(bare["bin"]), PYTHONPATH=str(PYTHON_SRC), UV_CACHE_DIR=str(bare["uv_cache"]))
    full.pop("VIRTUAL_ENV", None)
    full.pop("UV_OFFLINE", None)
    full.update(env)
    return subprocess.run([str(bare["python"]), "-m", "polybuild", *args], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=600)


def report(root: Path) -> dict:
    return json.loads((root / "dist" / "build-report.json").read_text())


def statuses(root: Path) -> dict[str, str]:
    return {t["id"]: t["status"] for t in report(root)["tasks"]}


def tool_root(root: Path) -> Path:
    (env,) = report(root)["tools"]
    return Path(env["env"])


def wheel_generator(root: Path) -> str:
    (wheel,) = (root / "dist").glob("hello-*.whl")
    with zipfile.ZipFile(wheel) as z:
        text = z.read("hello-1.0.dist-info/WHEEL").decode()
    return next(line for line in text.splitlines() if line.startswith("Generator:"))


def test_missing_backend_is_provisioned_once_then_installed_offline(bare, tmp_path, private_cache):
    root = write_tree(tmp_path / "ws", HATCH_PKG)
    first = run(bare, "build", cwd=root)
    assert first.returncode == 0, first.stderr
    (tools,) = report(root)["tools"]
    assert tools["requirements"] == ["build", "hatchling>=1.26"]
    version = tools["versions"]["hatchling"]
    assert wheel_generator(root) == f"Generator: hatchling {version}"  # built by the provisioned backend
    assert tools["lock"] == "polybuild.lock" and f"hatchling=={version}" in (root / "polybuild.lock").read_text()
    lock = Path(tools["env"]) / "requirements.lock"
    assert lock.is_relative_to(private_cache / "tools")
    assert f"hatchling=={version}" in lock.read_text() and "--hash=sha256:" in lock.read_text()
    made = (lock.parent / "env" / ".polybuild-ready").stat()
    lock_stat = lock.stat()

    # an edit: the task runs again, with uv offline; the lock is not resolved again and the env is reused
    (root / "pkg/src/hello/__init__.py").write_text("ANSWER = 43\n")
    second = run(bare, "build", cwd=root, UV_OFFLINE="1")
    assert second.returncode == 0, second.stderr
    assert statuses(root) == {"py:hello": "built"}
    assert lock.stat().st_mtime_ns == lock_stat.st_mtime_ns and lock.read_text() == lock.read_text()
    assert (lock.parent / "env" / ".polybuild-ready").stat().st_ino == made.st_ino
    assert report(root)["tools"] == [tools]

    # nothing changed: cached, and the tool environment is not even looked at
    shutil.rmtree(lock.parent / "env")
    third = run(bare, "build", cwd=root, UV_OFFLINE="1")
    assert third.returncode == 0, third.stderr
    assert statuses(root) == {"py:hello": "cached"}
    assert not (lock.parent / "env").exists()


def test_a_new_pin_changes_the_key_and_remakes_the_environment(bare, tmp_path):
    root = write_tree(tmp_path / "ws", HATCH_PKG)
    assert run(bare, "build", cwd=root).returncode == 0
    assert report(root)["tools"][0]["versions"]["hatchling"] != "1.26.3"
    time.sleep(2.1)  # the no-op fast path records a run only when nothing changed in its last two seconds
    assert run(bare, "build", cwd=root, POLYBUILD_FAST_PATH="1").returncode == 0
    assert statuses(root) == {"py:hello": "cached"}
    assert "nothing changed since the last run" in run(bare, "build", cwd=root, POLYBUILD_FAST_PATH="1").stderr

    # the committed pins change (a colleague re-pinned, as `lock upgrade --tools` would): hatchling 1.26.3
    pin_hatchling(root, "1.26.3", bare)
    proc = run(bare, "build", cwd=root, POLYBUILD_FAST_PATH="1")  # the fast path sees the new lock too
    assert proc.returncode == 0, proc.stderr
    assert statuses(root) == {"py:hello": "built"}  # the key changed with the pin
    assert report(root)["tools"][0]["versions"]["hatchling"] == "1.26.3"
    assert wheel_generator(root) == "Generator: hatchling 1.26.3"  # and the environment was made again from it


def pin_hatchling(root: Path, version: str, bare: dict[str, Path]) -> None:
    """Replace the committed pins of `build, hatchling>=1.26` in root/polybuild.lock with hatchling==`version`,
    resolved as polybuild resolves (universal, with hashes)."""
    from polybuild.config import includelock

    pinned = root.parent / "pinned.in"
    pinned.write_text(f"build\nhatchling=={version}\n")
    compiled = subprocess.run([_uv(), "pip", "compile", "--quiet", "--no-header", "--no-annotate", "--universal",
                               "--generate-hashes", "--python-version", "3.11", str(pinned)], capture_output=True,
                              text=True, check=True, env={**os.environ, "UV_CACHE_DIR": str(bare["uv_cache"])})
    path = root / "polybuild.lock"
    lock = includelock.read(path, "polybuild.lock") or includelock.LockFile(None, {})
    key = ("build", "hatchling>=1.26")
    lock.tools[key] = includelock.ToolEntry(key, ">=3.11", compiled.stdout)
    includelock.write(path, lock)


def test_a_damaged_tool_environment_is_made_again(bare, tmp_path):
    root = write_tree(tmp_path / "ws", HATCH_PKG)
    assert run(bare, "build", cwd=root).returncode == 0
    env = tool_root(root) / "env"
    site = next(env.glob("lib/python*/site-packages"))
    for path in site.glob("hatchling*"):
        shutil.rmtree(path)
    proc = run(bare, "build", "--no-cache", cwd=root, UV_OFFLINE="1")
    assert proc.returncode == 0, proc.stderr
    assert any(site.glob("hatchling-*.dist-info")) and (site / "hatchling").is_dir()

    # a half-made one (no ready marker: a run killed while making it) too
    (env / ".polybuild-ready").unlink()
    proc = run(bare, "build", "--no-cache", cwd=root, UV_OFFLINE="1")
    assert proc.returncode == 0, proc.stderr
    assert (env / ".polybuild-ready").is_file()
    assert [p.name for p in env.parent.iterdir() if p.name.startswith(("env.", "old."))] == []


def test_provision_never_keeps_the_install_error(bare, tmp_path, private_cache):
    root = write_tree(tmp_path / "ws", {**HATCH_PKG, "polybuild.toml": '[tools]\nprovision = "never"\n'})
    proc = run(bare, "build", cwd=root)
    assert proc.returncode == 2, proc.stderr
    assert f"py:hello: the Python at {bare['python']} lacks hatchling>=1.26" in proc.stderr
    assert "-m pip install 'hatchling>=1.26'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (private_cache / "tools").exists()


def test_provision_value_is_validated(bare, tmp_path):
    root = write_tree(tmp_path / "ws", {**HATCH_PKG, "polybuild.toml": '[tools]\nprovision = "sometimes"\n'})
    proc = run(bare, "build", cwd=root)
    assert proc.returncode == 2, proc.stderr
    assert "polybuild.toml:2:" in proc.stderr and "auto" in proc.stderr and "never" in proc.stderr


def test_an_unresolvable_requirement_refuses_its_package_alone(bare, tmp_path):
    pyproject = HATCH_PKG["pkg/pyproject.toml"].replace("hatchling>=1.26", "hatchling>=999").replace("hello", "bad")
    root = write_tree(tmp_path / "ws", {**HATCH_PKG, "bad/pyproject.toml": pyproject, "bad/src/bad/__init__.py": ""})
    proc = run(bare, "build", cwd=root)
    assert proc.returncode == 2, proc.stderr
    assert "py:bad: cannot provision build, hatchling>=999: uv could not resolve it" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert statuses(root) == {"py:bad": "failed", "py:hello": "built"}


def test_pytest_is_provisioned_for_test_tasks(bare, tmp_path):
    root = write_tree(tmp_path / "ws", {
        **HATCH_PKG,
        "pkg/tests/test_answer.py": "import hello\n\n\ndef test_answer():\n    assert hello.ANSWER == 42\n",
    })
    proc = run(bare, "run", "test", cwd=root)
    assert proc.returncode == 0, proc.stderr
    log = (root / ".polybuild" / "logs" / "py_hello_test.log").read_text()
    assert f"{bare['python']} -m pytest -q" in log and "1 passed" in log  # the run's Python, a provisioned pytest


def test_doctor_says_provisionable_not_missing(bare, tmp_path):
    root = write_tree(tmp_path / "ws", HATCH_PKG)
    proc = run(bare, "doctor", cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "provision hatchling" in proc.stdout
    never = write_tree(tmp_path / "never", {**HATCH_PKG, "polybuild.toml": '[tools]\nprovision = "never"\n'})
    proc = run(bare, "doctor", cwd=never)
    assert proc.returncode != 0 and "MISSING  hatchling" in proc.stdout


PYO3_PKG = {
    "Cargo.toml": '[package]\nname = "native"\nversion = "0.1.0"\nedition = "2021"\n\n[lib]\ncrate-type = ["cdylib"]'
                  '\n\n[dependencies]\npyo3 = { version = "0.30", features = ["extension-module", "abi3-py310"] }\n',
    "src/lib.rs": "use pyo3::prelude::*;\n\n#[pymodule]\nmod native {\n    use super::*;\n\n    #[pyfunction]\n"
                  "    fn answer() -> u32 {\n        42\n    }\n}\n",
    "pyproject.toml": '[build-system]\nrequires = ["maturin>=1.8,<2"]\nbuild-backend = "maturin"\n\n'
                      '[project]\nname = "native"\nversion = "0.1.0"\nrequires-python = ">=3.10"\n',
}


def test_maturin_is_provisioned_from_build_system_requires(bare, tmp_path):
    for tool in ("cargo", "rustc"):
        found = shutil.which(tool)
        if not found:
            pytest.skip(f"{tool} is needed for a maturin build")
        if not (bare["bin"] / tool).exists():
            (bare["bin"] / tool).symlink_to(found)
    assert not any(Path(d, "maturin").exists() for d in ("/usr/bin", "/bin"))
    root = write_tree(tmp_path / "ws", PYO3_PKG)
    proc = run(bare, "build", cwd=root, PATH=f"{bare['bin']}:/usr/bin:/bin")  # the C compiler and linker too
    assert proc.returncode == 0, proc.stderr
    (tools,) = report(root)["tools"]
    assert tools["requirements"] == ["maturin>=1.8,<2"]
    version = tools["versions"]["maturin"]
    (wheel,) = (root / "dist").glob("native-0.1.0-cp310-abi3-*.whl")
    with zipfile.ZipFile(wheel) as z:
        assert f"Generator: maturin ({version})" in z.read("native-0.1.0.dist-info/WHEEL").decode()


def test_provision_always_uses_the_locked_versions_even_when_installed(tmp_path):
    """The test session's Python has hatchling; `always` still builds with the pinned one from the lock."""
    root = write_tree(tmp_path / "ws", {**HATCH_PKG, "polybuild.toml": '[tools]\nprovision = "always"\n'})
    proc = subprocess.run([sys.executable, "-m", "polybuild", "build"], cwd=root, env=polybuild_env(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    (tools,) = report(root)["tools"]
    assert wheel_generator(root) == f"Generator: hatchling {tools['versions']['hatchling']}"
    assert f"{tool_root(root)}/env/bin/python -m build" in (root / ".polybuild" / "logs" / "py_hello.log").read_text()


def test_concurrent_builds_make_one_environment(bare, tmp_path, private_cache):
    roots = [write_tree(tmp_path / f"ws{i}", HATCH_PKG) for i in range(2)]
    env = polybuild_env(PATH=str(bare["bin"]), PYTHONPATH=str(PYTHON_SRC), UV_CACHE_DIR=str(bare["uv_cache"]))
    procs = [subprocess.Popen([str(bare["python"]), "-m", "polybuild", "build"], cwd=root, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for root in roots]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    (tools_dir,) = (p for p in (private_cache / "tools").iterdir() if p.is_dir())
    assert sorted(p.name for p in tools_dir.iterdir()) == ["env", "lock", "requirements.in", "requirements.lock"]
    assert {report(root)["tools"][0]["env"] for root in roots} == {str(tools_dir)}
    assert (roots[0] / "polybuild.lock").read_text() == (roots[1] / "polybuild.lock").read_text()


def test_without_uv_the_hint_is_to_install_it(bare, tmp_path):
    no_uv = tmp_path / "bin"
    no_uv.mkdir()
    (no_uv / "git").symlink_to(bare["bin"] / "git")
    root = write_tree(tmp_path / "ws", HATCH_PKG)
    proc = run(bare, "build", cwd=root, PATH=str(no_uv))
    assert proc.returncode == 2, proc.stderr
    assert "py:hello: uv is not installed (needed by provisioning build, hatchling>=1.26" in proc.stderr
    assert "hint: pip install uv" in proc.stderr and "Traceback" not in proc.stderr


def test_the_uv_installed_with_polybuild_is_found_beside_the_interpreter(bare, tmp_path):
    """`pip install polybuild` brings uv: provisioning works with nothing but git on PATH (a venv's bin/ need not be
    on PATH)."""
    venv = tmp_path / "venv"
    subprocess.run([_uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    subprocess.run([_uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
                    *runtime_dependencies()], check=True, env={**os.environ, "UV_CACHE_DIR": str(bare["uv_cache"])})
    only_git = tmp_path / "bin"
    only_git.mkdir()
    (only_git / "git").symlink_to(bare["bin"] / "git")
    root = write_tree(tmp_path / "ws", HATCH_PKG)
    proc = run({**bare, "python": venv / "bin" / "python"}, "build", cwd=root, PATH=str(only_git))
    assert proc.returncode == 0, proc.stderr
    assert statuses(root) == {"py:hello": "built"}


# The pins are committed with the workspace (polybuild.lock), so every machine builds with the same tool versions
# and computes the same keys (MISSION.md §3.3).

def checkout(src: Path, dest: Path, with_lock: bool = True) -> Path:
    """A second checkout of `src` (its sources, and its committed polybuild.lock unless not `with_lock`)."""
    files = {**HATCH_PKG, **({"polybuild.lock": (src / "polybuild.lock").read_text()} if with_lock else {})}
    return write_tree(dest, files)


def test_the_pins_are_written_into_the_workspace_and_a_second_checkout_reuses_them(bare, tmp_path):
    first = write_tree(tmp_path / "laptop", HATCH_PKG)
    proc = run(bare, "build", cwd=first)
    assert proc.returncode == 0, proc.stderr
    lock = (first / "polybuild.lock").read_text()
    version = report(first)["tools"][0]["versions"]["hatchling"]
    build_version = report(first)["tools"][0]["versions"]["build"]
    said = f"polybuild: locked build tools build=={build_version}, hatchling=={version} into polybuild.lock"
    assert said in proc.stderr.splitlines()
    assert 'requirements = ["build", "hatchling>=1.26"]' in lock and "--hash=sha256:" in lock
    assert "; os_name == 'nt'" in lock  # universal: the pins serve every platform, not only this one

    # CI: another directory, another (empty) polybuild cache, the committed lock: same pins, same keys, no resolve
    second = checkout(first, tmp_path / "ci")
    proc = run(bare, "build", cwd=second, CI="true", POLYBUILD_CACHE_DIR=str(tmp_path / "ci-cache"))
    assert proc.returncode == 0, proc.stderr
    assert "locked build tools" not in proc.stderr
    assert (second / "polybuild.lock").read_text() == lock
    assert statuses(second) == {"py:hello": "built"}
    assert Path(report(second)["tools"][0]["env"]).is_relative_to(tmp_path / "ci-cache")
    keys = [{t["id"]: t["inputs_sha256"] for t in report(root)["tasks"]} for root in (first, second)]
    assert keys[0] == keys[1]  # a shared remote cache would hit between them
    assert report(second)["tools"][0]["versions"] == report(first)["tools"][0]["versions"]

    # a third checkout without the lock resolves again, to the same bytes
    third = checkout(first, tmp_path / "again", with_lock=False)
    assert run(bare, "build", cwd=third, POLYBUILD_CACHE_DIR=str(tmp_path / "third-cache")).returncode == 0
    assert (third / "polybuild.lock").read_text() == lock


def test_a_checkout_with_an_empty_cache_builds_with_the_committed_older_pins(bare, tmp_path):
    root = write_tree(tmp_path / "ws", HATCH_PKG)
    pin_hatchling(root, "1.26.3", bare)  # committed by a colleague: older than the newest hatchling
    proc = run(bare, "build", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert "locked build tools" not in proc.stderr
    assert report(root)["tools"][0]["versions"]["hatchling"] == "1.26.3"
    assert wheel_generator(root) == "Generator: hatchling 1.26.3"


@pytest.mark.parametrize("variable", ["CI", "POLYBUILD_LOCKED"])
def test_locked_mode_without_pins_is_an_error_naming_the_fix(bare, tmp_path, private_cache, variable):
    root = write_tree(tmp_path / "ws", HATCH_PKG)
    proc = run(bare, "build", cwd=root, **{variable: "true"})
    assert proc.returncode == 2, proc.stderr
    assert "py:hello: polybuild.lock has no pins for the build tools build, hatchling>=1.26" in proc.stderr
    assert "hint: run `polybuild lock upgrade --tools`" in proc.stderr and "commit polybuild.lock" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (root / "polybuild.lock").exists()
    assert not any(p.is_dir() for p in (private_cache / "tools").glob("*"))  # nothing resolved, nothing made


def test_changed_build_requires_are_re_pinned_locally_and_refused_in_ci(bare, tmp_path):
    root = write_tree(tmp_path / "ws", HATCH_PKG)
    assert run(bare, "build", cwd=root).returncode == 0
    pyproject = root / "pkg" / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("hatchling>=1.26", "hatchling>=1.26.1"))

    proc = run(bare, "build", cwd=root, CI="true")
    assert proc.returncode == 2, proc.stderr
    assert "polybuild.lock has no pins for the build tools build, hatchling>=1.26.1 (they changed since it was " \
           "written" in proc.stderr and "polybuild lock upgrade --tools" in proc.stderr

    proc = run(bare, "build", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert "polybuild: locked build tools build==" in proc.stderr
    lock = (root / "polybuild.lock").read_text()
    assert lock.count("[[tool]]") == 1 and 'requirements = ["build", "hatchling>=1.26.1"]' in lock  # replaced
    assert run(bare, "build", cwd=root, CI="true").returncode == 0


def test_lock_check_reports_stale_tool_pins_and_upgrade_re_pins_them(bare, tmp_path):
    root = write_tree(tmp_path / "ws", HATCH_PKG)
    assert run(bare, "build", cwd=root).returncode == 0
    ok = run(bare, "lock", "check", cwd=root)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    pyproject = root / "pkg" / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("hatchling>=1.26", "hatchling>=1.26.1"))

    stale = run(bare, "lock", "check", cwd=root)
    assert stale.returncode == 1, stale.stdout + stale.stderr
    assert "polybuild.lock: no pins for the build tools build, hatchling>=1.26.1" in stale.stdout
    assert "polybuild.lock: pins for build, hatchling>=1.26, which nothing in the workspace needs" in stale.stdout
    assert "fix: run `polybuild lock upgrade --tools`" in stale.stdout

    upgrade = run(bare, "lock", "upgrade", "--tools", cwd=root)
    assert upgrade.returncode == 0, upgrade.stderr
    assert "polybuild.lock: locked build tools build==" in upgrade.stdout
    assert 'requirements = ["build", "hatchling>=1.26.1"]' in (root / "polybuild.lock").read_text()
    ok = run(bare, "lock", "check", cwd=root)
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_the_tool_pins_share_polybuild_lock_with_the_include_pins(bare, tmp_path):
    """One polybuild.lock: locking an include keeps the tool pins, and pinning tools keeps the includes."""
    root = write_tree(tmp_path / "ws", {
        **HATCH_PKG,
        "polybuild.toml": '[[include]]\npath = "shared.toml"\nname = "base"\n',
        "shared.toml": '[tools]\nprovision = "always"\n',
    })
    proc = run(bare, "build", cwd=root)
    assert proc.returncode == 0, proc.stderr
    lock = (root / "polybuild.lock").read_text()
    assert '[include."base"]' in lock and 'requirements = ["build", "hatchling>=1.26"]' in lock

    (root / "shared.toml").write_text('[tools]\nprovision = "always"\n\n[python]\nsdist = false\n')
    proc = run(bare, "lock", "upgrade", "base", cwd=root)
    assert proc.returncode == 0, proc.stderr
    lock = (root / "polybuild.lock").read_text()
    assert "sdist = false" in lock and 'requirements = ["build", "hatchling>=1.26"]' in lock
    proc = run(bare, "build", cwd=root, CI="true")
    assert proc.returncode == 0, proc.stderr
