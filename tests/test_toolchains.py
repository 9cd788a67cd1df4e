"""Missing toolchains and backends, other PEP 517 backends, and command-line mistakes, with real processes."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import polybuild_env, run_polybuild

CRATE = {
    "Cargo.toml": '[package]\nname = "native"\nversion = "0.1.0"\nedition = "2021"\n\n'
                  '[lib]\ncrate-type = ["cdylib"]\n',
    "src/lib.rs": "pub fn answer() -> u32 { 42 }\n",
}


NO_PROVISIONING = '[tools]\nprovision = "never"\n'  # what is missing is an error, not provisioned


def bare_bin(tmp_path: Path, *tools: str) -> Path:
    """A bin dir holding only git, `tools` and a symlinked interpreter, so neither PATH nor sys.executable's
    directory offers anything else (a venv's bin/ would have maturin). Inside a venv the bin dir gets a venv root
    of its own (the venv's pyvenv.cfg and lib/), so the symlinked interpreter still sees the venv's packages."""
    home = tmp_path / "python-home"
    bin_dir = home / "bin"
    bin_dir.mkdir(parents=True)
    if sys.prefix != sys.base_prefix:
        shutil.copy(Path(sys.prefix) / "pyvenv.cfg", home / "pyvenv.cfg")
        (home / "lib").symlink_to(Path(sys.prefix) / "lib")
    (bin_dir / "python").symlink_to(sys.executable)
    (bin_dir / "git").symlink_to(shutil.which("git") or "/usr/bin/git")
    for tool in tools:
        found = shutil.which(tool)
        assert found, f"{tool} is needed on this machine for the test"
        (bin_dir / tool).symlink_to(found)
    return bin_dir


def isolated_env(bin_dir: Path) -> dict[str, str]:
    return polybuild_env(PATH=str(bin_dir))


def run_isolated(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """polybuild through the symlinked interpreter with PATH = bin_dir only."""
    return subprocess.run([str(bin_dir / "python"), "-m", "polybuild", *args], cwd=cwd, env=isolated_env(bin_dir),
                          capture_output=True, text=True, timeout=600)


def found_by_polybuild(bin_dir: Path, *tools: str) -> dict[str, str | None]:
    """What polybuild's own toolchain lookup sees in that environment (PATH, then next to sys.executable)."""
    probe = ("import json, sys; from polybuild.support.toolchains import find; "
             "print(json.dumps({'exe': sys.executable, **{t: find(t) for t in sys.argv[1:]}}))")
    proc = subprocess.run([str(bin_dir / "python"), "-c", probe, *tools], env=isolated_env(bin_dir),
                          capture_output=True, text=True, check=True)
    found = json.loads(proc.stdout)
    assert Path(found.pop("exe")).parent == bin_dir  # so "next to sys.executable" means bin_dir
    return found


def assert_refused(proc: subprocess.CompletedProcess[str], root: Path, *messages: str) -> None:
    """A usage error (exit 2) saying `messages`, with no traceback and nothing built."""
    assert proc.returncode == 2, proc.stderr
    for message in messages:
        assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (root / "dist").exists()


def test_missing_cargo_is_named_with_rustup_hint(workspace, tmp_path):
    root = workspace(CRATE)
    bin_dir = bare_bin(tmp_path)
    assert found_by_polybuild(bin_dir, "cargo", "maturin") == {"cargo": None, "maturin": None}
    assert_refused(run_isolated(bin_dir, "build", cwd=root), root, "cargo is not installed",
                   "hint: install Rust with rustup (https://rustup.rs)")


def test_missing_maturin_is_named_with_pip_hint(workspace, tmp_path):
    root = workspace({
        **CRATE,
        "polybuild.toml": NO_PROVISIONING,
        "pyproject.toml": '[build-system]\nrequires = ["maturin>=1.0"]\nbuild-backend = "maturin"\n\n'
                          '[project]\nname = "native-ext"\nversion = "0.1.0"\n',
    })
    bin_dir = bare_bin(tmp_path, "cargo", *(["rustc"] if shutil.which("rustc") else []))
    found = found_by_polybuild(bin_dir, "cargo", "maturin")
    assert found["cargo"] == str(bin_dir / "cargo") and found["maturin"] is None
    assert_refused(run_isolated(bin_dir, "build", cwd=root), root,
                   "maturin is not installed (needed by py:native-ext (maturin))", "hint: pip install maturin")


def absent_backend() -> str:
    if importlib.util.find_spec("flit_core") is None:
        return "flit_core.buildapi"
    assert importlib.util.find_spec("polybuild_absent_backend") is None
    return "polybuild_absent_backend.build"


def test_missing_pep517_backend_is_named_before_anything_runs(workspace):
    backend = absent_backend()
    module = backend.split(".")[0]
    root = workspace({
        "polybuild.toml": NO_PROVISIONING,
        "pkg/pyproject.toml": f'[build-system]\nrequires = ["{module}"]\nbuild-backend = "{backend}"\n\n'
                              '[project]\nname = "flitpkg"\nversion = "1.0"\n',
        "pkg/flitpkg.py": '"""A flit package."""\n__version__ = "1.0"\n',
    })
    proc = run_polybuild("build", cwd=root)
    assert proc.returncode == 2, proc.stderr
    assert f"py:flitpkg: the Python at {sys.executable} lacks {module}" in proc.stderr
    assert f"hint: {sys.executable} -m pip install {module}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (root / "dist").exists()
    assert not (root / ".polybuild" / "logs").exists()  # no task started


def test_too_old_build_requirement_names_the_found_version(workspace):
    root = workspace({
        "polybuild.toml": NO_PROVISIONING,
        "pkg/pyproject.toml": '[build-system]\nrequires = ["hatchling>=999"]\nbuild-backend = "hatchling.build"\n\n'
                              '[project]\nname = "future"\nversion = "1.0"\n',
    })
    proc = run_polybuild("build", cwd=root)
    assert proc.returncode == 2, proc.stderr
    assert "lacks hatchling>=999 (found " in proc.stderr
    assert "[build-system] requires in pkg/pyproject.toml" in proc.stderr
    assert "-m pip install 'hatchling>=999'" in proc.stderr


SETUPTOOLS_PKG = {
    "pkgs/greet/pyproject.toml": '[build-system]\nrequires = ["setuptools>=61"]\n'
                                 'build-backend = "setuptools.build_meta"\n\n'
                                 '[project]\nname = "greet"\nversion = "1.2.0"\n',
    "pkgs/greet/greet.py": 'def hello():\n    return "hello"\n',
}


@pytest.mark.parametrize("config", ["", "[targets.greet]\nsdist = true\n", "[python]\nsdist = true\n"],
                         ids=["wheel-only", "target-sdist", "workspace-sdist"])
def test_setuptools_backend_builds_wheel_and_sdist(workspace, config):
    root = workspace({**SETUPTOOLS_PKG, "polybuild.toml": config})
    proc = run_polybuild("build", cwd=root)
    assert proc.returncode == 0, proc.stderr
    dist = root / "dist"
    wheel, sdist = dist / "greet-1.2.0-py3-none-any.whl", dist / "greet-1.2.0.tar.gz"
    with zipfile.ZipFile(wheel) as whl:
        assert "greet.py" in whl.namelist()
        generator = whl.read("greet-1.2.0.dist-info/WHEEL").decode()
    assert "Generator: setuptools" in generator or "Generator: bdist_wheel" in generator  # not hatchling
    want = {wheel}
    if config:
        with tarfile.open(sdist) as tar:
            assert "greet-1.2.0/greet.py" in tar.getnames()
        want.add(sdist)
    else:
        assert not sdist.exists()
    assert {p for p in dist.iterdir() if p.name != "build-report.json"} == want
    report = json.loads((dist / "build-report.json").read_text())
    assert report["status"] == "ok"
    arts = {a["path"]: a for a in report["artifacts"]}
    assert set(arts) == {f"dist/{p.name}" for p in want}
    for path in want:
        entry = arts[f"dist/{path.name}"]
        assert entry["target"] == "py:greet"
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert entry["size"] == path.stat().st_size


def test_unknown_target_suggests_close_names(workspace):
    root = workspace({"greeter/pyproject.toml": '[project]\nname = "greeter"\nversion = "1.0"\n'})
    proc = run_polybuild("build", "nosuchtarget", cwd=root)
    assert proc.returncode == 2, proc.stderr
    assert "no target named 'nosuchtarget'" in proc.stderr
    assert "hint: run `polybuild graph` to list targets" in proc.stderr
    proc = run_polybuild("build", "greetr", cwd=root)
    assert proc.returncode == 2, proc.stderr
    assert "no target named 'greetr'" in proc.stderr
    assert "did you mean 'greeter'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (root / "dist").exists()


def test_bad_jobs_and_unknown_command_are_usage_errors(workspace):
    root = workspace({"greeter/pyproject.toml": '[project]\nname = "greeter"\nversion = "1.0"\n'})
    proc = run_polybuild("build", "-j", "0", cwd=root)
    assert proc.returncode == 2
    assert "-j/--jobs: 0 is out of range: use 1 to 1024" in proc.stderr
    proc = run_polybuild("bogus-command", cwd=root)
    assert proc.returncode == 2
    assert "invalid choice: 'bogus-command'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (root / "dist").exists()


def test_one_interpreter_probe_answers_every_reader(tmp_path: Path) -> None:
    """Cache keys, the lock check's default Python and CI's interpreter lookup each started the interpreter with
    their own probe; now one probe per interpreter and process answers them all."""
    from polybuild.builders import ToolProbe
    from polybuild.cache.keys import Toolchains
    from polybuild.ci.job import _version_of
    from polybuild.support.toolchains import python_facts

    starts = tmp_path / "starts"
    python = tmp_path / "python3"
    python.write_text(f'#!/bin/sh\necho start >> "{starts}"\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    facts = python_facts(str(python))
    assert facts.ran and facts.version == sys.version_info[:2]
    assert _version_of(str(python)) == f"{sys.version_info[0]}.{sys.version_info[1]}"
    toolchains = Toolchains(str(python))
    toolchains.identity(ToolProbe("python"), tmp_path)
    assert toolchains.versions() == {"python": sys.version.splitlines()[0]}
    assert starts.read_text().count("start") == 1
