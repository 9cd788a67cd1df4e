"""End to end on the demo monorepo (examples/serving) with the real cargo, maturin, hatchling and go."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import copy_example, polybuild_env, run_polybuild
from test_newcomer import readme_output

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo_build(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The demo built once, cpu and cuda variants, from outside its directory (`-C`), and what the build printed."""
    root = copy_example("serving", tmp_path_factory.mktemp("demo") / "serving")
    proc = run_polybuild("-C", str(root), "build", "--variant", "cpu", "--variant", "cuda", cwd=root.parent,
                         env=demo_env(root))
    assert proc.returncode == 0, proc.stderr
    return root, proc


@pytest.fixture(scope="module")
def demo(demo_build) -> Path:
    return demo_build[0]


def demo_env(root: Path) -> dict[str, str]:
    """The demo's own cache, shared by the tests of this module (each test otherwise gets an empty one)."""
    return polybuild_env(POLYBUILD_CACHE_DIR=str(root.parent / "cache"))


def wheel(dist: Path, pattern: str) -> Path:
    (found,) = dist.glob(pattern)
    return found


def install(wheels: list[Path], site: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target",
                    str(site), *map(str, wheels)], check=True)
    return site


def python_in(site: Path, code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, cwd=site)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_artifacts_have_the_right_names_and_tags(demo):
    dist = demo / "dist"
    cpu = wheel(dist, "serving_runtime-0.3.0-cp310-abi3-*linux*_x86_64.whl")
    cuda = wheel(dist / "cuda", "serving_runtime-0.3.0-cp310-abi3-*linux*_x86_64.whl")
    assert cpu.name == cuda.name and cpu.read_bytes() != cuda.read_bytes()  # same name, never the same path
    pure = wheel(dist, "serving-0.3.0-py3-none-any.whl")
    with zipfile.ZipFile(pure) as z:
        metadata = z.read("serving-0.3.0.dist-info/METADATA").decode()
    assert "Requires-Dist: serving-runtime==0.3.0" in metadata
    assert "Provides-Extra: server" in metadata
    with zipfile.ZipFile(cpu) as z:
        assert any(n.startswith("serving_runtime/_native") and n.endswith(".so") for n in z.namelist())


def test_extension_imports_and_works_per_variant(demo, tmp_path):
    dist = demo / "dist"
    code = "import serving_runtime as s; print(s.top_k([1.0, 3.0, 2.0], 2), s.device(), s.__version__)"
    cpu_site = install([wheel(dist, "serving_runtime-*.whl"), wheel(dist, "serving-*.whl")], tmp_path / "cpu")
    assert python_in(cpu_site, code) == "[(1, 3.0), (2, 2.0)] cpu 0.3.0"
    cuda_site = install([wheel(dist / "cuda", "serving_runtime-*.whl")], tmp_path / "cuda")
    assert python_in(cuda_site, code).endswith("cuda 0.3.0")
    # the pure package runs on top of the extension wheel it pins
    assert python_in(cpu_site, "from serving.cli import main; main(['rank', '1.0', '3.0', '2.0', '--k', '2'])"
                     ).split() == ["1", "2"]


def test_go_binary_runs_with_the_stamped_version(demo):
    out = subprocess.run([str(demo / "dist" / "operator"), "version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "operator 0.3.0"


def test_rust_binary_is_built_per_variant(demo):
    for sub, device in (("", "cpu"), ("cuda", "cuda")):
        binary = demo / "dist" / sub / "servingctl"
        out = subprocess.run([str(binary), "version"], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == f"servingctl 0.3.0 ({device})"
    out = subprocess.run([str(demo / "dist" / "servingctl"), "top-k", "2", "1.0", "3.0", "2.0"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "2"]


def test_readme_shows_what_the_build_prints(demo_build):
    """The README's walkthrough: the build's summary and its artifacts, in order (the wheel's platform tag is the
    machine's)."""
    _, proc = demo_build
    shown = readme_output("polybuild -C examples/serving build --variant cpu --variant cuda")
    printed = proc.stderr.splitlines()
    summary = next(line for line in printed if line.startswith("polybuild: "))
    assert summary.startswith(next(line for line in shown if line.startswith("polybuild: ")))

    def artifacts(lines: list[str]) -> list[str]:
        return [re.sub(r"manylinux_\d+_\d+", "manylinux", line.split()[0]) for line in lines
                if line.startswith("  dist/")]

    assert artifacts(shown) == artifacts(printed)


def test_sdist_is_built_on_request(demo):
    with tarfile.open(demo / "dist" / "serving-0.3.0.tar.gz") as sdist:
        assert "serving-0.3.0/src/serving/cli.py" in sdist.getnames()


def test_build_report_lists_every_artifact_with_its_digest(demo):
    report = json.loads((demo / "dist" / "build-report.json").read_text())
    assert report["status"] == "ok"
    by_path = {a["path"]: a for a in report["artifacts"]}
    assert sorted(p.split("/")[-1].split("-")[0] for p in by_path) == [
        "operator", "serving", "serving", "serving_client", "serving_runtime", "serving_runtime", "servingctl",
        "servingctl"]
    assert any(p.startswith("dist/cuda/") and a["variant"] == "cuda" for p, a in by_path.items())
    for path, entry in by_path.items():
        data = (demo / path).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["size"] == len(data)
    tasks = {t["id"]: t for t in report["tasks"]}
    assert set(tasks) == {"go:operator", "py:serving", "py:serving-client", "py:serving-runtime",
                          "py:serving-runtime [cuda]",
                          "rust:serving-cli", "rust:serving-cli [cuda]"}
    assert all(t["status"] == "built" and t["duration_s"] > 0 for t in tasks.values())
    assert tasks["py:serving-runtime"]["inputs_sha256"] == tasks["py:serving-runtime [cuda]"]["inputs_sha256"]
    assert len({t["inputs_sha256"] for t in tasks.values()}) == 5  # one per target


def test_invalid_variant_for_platform_is_rejected_before_anything_runs(demo):
    proc = run_polybuild("build", "--variant", "metal", cwd=demo)
    assert proc.returncode == 2
    assert "variant 'metal' cannot be built for linux/amd64" in proc.stderr
    assert "'metal' is valid for: darwin/arm64" in proc.stderr
    assert "start" not in proc.stderr


def test_tests_run_in_graph_order_against_built_wheels(demo):
    proc = run_polybuild("run", "test", cwd=demo, env=demo_env(demo))
    assert proc.returncode == 0, proc.stderr
    for task in ("rust:serving-core:test", "rust:serving-cli:test", "go:api:test", "go:operator:test",
                 "py:serving:test", "py:serving-client:test"):
        assert f"done   {task}" in proc.stderr
    pytest_log = (demo / ".polybuild" / "logs" / "py_serving_test.log").read_text()
    assert " passed" in pytest_log


def test_custom_task_runs(demo):
    proc = run_polybuild("run", "lint", cwd=demo, env=demo_env(demo))
    assert proc.returncode == 0, proc.stderr
    assert "done   py:serving:lint" in proc.stderr


def test_clean_builds_in_two_directories_are_bit_identical(demo, tmp_path):
    other = copy_example("serving", tmp_path / "elsewhere" / "serving")
    proc = run_polybuild("build", "--no-cache", cwd=other)
    assert proc.returncode == 0, proc.stderr
    for rel in ("operator", "servingctl", "serving-0.3.0.tar.gz"):
        assert (other / "dist" / rel).read_bytes() == (demo / "dist" / rel).read_bytes()
    for pattern in ("serving_runtime-*.whl", "serving-*.whl"):
        assert wheel(other / "dist", pattern).read_bytes() == wheel(demo / "dist", pattern).read_bytes()
