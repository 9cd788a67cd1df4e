"""polybuild builds itself: its wheel, the native core wheel (maturin) and the Go helper (go build); the three
tree-digest implementations (Rust, Python, Go) agree on this repository's own files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import checkout_copy, polybuild_env, run_polybuild

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = checkout_copy(tmp_path_factory.mktemp("self") / "polybuild")
    proc = run_polybuild("build", cwd=root, env=polybuild_env(POLYBUILD_CACHE_DIR=str(root.parent / "cache")))
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture(scope="module")
def site(built, tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    wheels = [str(w) for w in (built / "dist").glob("*.whl")]
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target",
                    str(site), *wheels], check=True)
    return site


def test_dist_holds_the_three_artifacts_the_helper_image_and_the_report(built):
    names = sorted(p.name for p in (built / "dist").iterdir())
    assert "polybuild-0.1.0-py3-none-any.whl" in names
    assert any(n.startswith("polybuild_core-0.1.0-cp310-abi3-") and n.endswith(".whl") for n in names)
    assert "polybuild-helper" in names and "build-report.json" in names
    report = json.loads((built / "dist" / "build-report.json").read_text())
    targets = {a["target"] for a in report["artifacts"]}
    # the image of the Go helper on scratch is assembled without an engine: it builds wherever the rest does
    assert targets - {"image:polybuild"} == {"py:polybuild", "py:polybuild-core", "go:polybuild-helper",
                                             "image:helper"}
    helper_image = next(i for i in report["images"] if i["image"] == "helper")
    assert helper_image["path"] == "dist/images/helper.oci.tar" and helper_image["digest"].startswith("sha256:")


def test_go_helper_runs_with_the_stamped_version(built):
    out = subprocess.run([str(built / "dist" / "polybuild-helper"), "version"], capture_output=True, text=True)
    assert out.stdout.strip() == "polybuild-helper 0.1.0"


def test_installed_wheel_runs_and_uses_the_native_core(built, site):
    proc = subprocess.run([sys.executable, "-m", "polybuild", "doctor"], cwd=site, capture_output=True,
                          text=True, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert "polybuild 0.1.0" in proc.stdout and "hashing core: native" in proc.stdout


def test_rust_python_and_go_digests_agree_on_this_repository(built, site):
    paths = sorted(str(p.relative_to(built)) for p in built.rglob("*")
                   if (p.is_file() or p.is_symlink()) and "dist" not in p.parts and ".polybuild" not in p.parts)
    code = ("import sys, json; from polybuild.support import fingerprint as f; "
            "print(f.backend(), f.tree_digest(sys.argv[1], json.load(sys.stdin)))")

    def python_digest(**env: str) -> list[str]:
        proc = subprocess.run([sys.executable, "-c", code, str(built)], input=json.dumps(paths), text=True,
                              capture_output=True, env={"PYTHONPATH": str(site), **env}, check=True)
        return proc.stdout.split()

    native_backend, native = python_digest()
    fallback_backend, fallback = python_digest(POLYBUILD_NO_NATIVE="1")
    go = subprocess.run([str(built / "dist" / "polybuild-helper"), "digest", str(built), *paths],
                        capture_output=True, text=True, check=True).stdout.strip()
    assert (native_backend, fallback_backend) == ("native", "python")
    assert native == fallback == go
