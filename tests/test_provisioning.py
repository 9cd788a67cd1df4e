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
    return Path(env["lock"]).parent


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
    lock = Path(tools["lock"])
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
    lock = tool_root(root) / "requirements.lock"
    assert report(root)["tools"][0]["versions"]["hatchling"] != "1.26.3"
    time.sleep(2.1)  # the no-op fast path records a run only when nothing changed in its last two seconds
    assert run(bare, "build", cwd=root, POLYBUILD_FAST_PATH="1").returncode == 0
    assert statuses(root) == {"py:hello": "cached"}
    assert "nothing changed since the last run" in run(bare, "build", cwd=root, POLYBUILD_FAST_PATH="1").stderr

    # the user re-pins (as `uv pip compile` would after an upgrade): hatchling 1.26.3
    pinned = tmp_path / "pinned.in"
    pinned.write_text("build\nhatchling==1.26.3\n")
    compiled = subprocess.run([_uv(), "pip", "compile", "--quiet", "--no-header", "--generate-hashes", "--python",
                               str(bare["python"]), str(pinned)], capture_output=True, text=True, check=True,
                              env={**os.environ, "UV_CACHE_DIR": str(bare["uv_cache"])})
    lock.write_text(compiled.stdout)
    proc = run(bare, "build", cwd=root, POLYBUILD_FAST_PATH="1")  # the fast path sees the new lock too
    assert proc.returncode == 0, proc.stderr
    assert statuses(root) == {"py:hello": "built"}  # the key changed with the pin
    assert report(root)["tools"][0]["versions"]["hatchling"] == "1.26.3"
    assert wheel_generator(root) == "Generator: hatchling 1.26.3"  # and the environment was made again from it


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
    (tools_dir,) = (private_cache / "tools").iterdir()
    assert sorted(p.name for p in tools_dir.iterdir()) == ["env", "lock", "requirements.in", "requirements.lock"]
    assert {report(root)["tools"][0]["lock"] for root in roots} == {str(tools_dir / "requirements.lock")}


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
