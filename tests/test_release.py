"""`polybuild release` on a git copy of the demo monorepo, with the real toolchains: every step's failure stops it
before anything is built or tagged, a dry run checks everything but the tag, two releases of the same commit in
different directories give the same artifacts, and the wheel checks catch real defects of real wheels."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import copy_example, polybuild_env, run_polybuild
from polybuild.release.verify import Expected, verify_wheel
from polybuild.support.platforms import Platform

pytestmark = pytest.mark.e2e

GIT = ["git", "-c", "user.name=Release Engineer", "-c", "user.email=release@example.com"]
# What the demo's license scan reads (the server extra) and what builds its pure wheels, in one build environment.
BUILD_ENV = ["aiohttp==3.12.15", "hatchling==1.27.0", "build==1.2.2.post1"]


def git(root: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def commit_all(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


@pytest.fixture(scope="module")
def build_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("release-env") / "venv"
    subprocess.run(["uv", "venv", "-q", "-p", sys.executable, str(venv)], check=True)
    subprocess.run(["uv", "pip", "install", "-q", "-p", str(venv / "bin" / "python"), *BUILD_ENV], check=True)
    return venv / "bin" / "python"


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory, build_python: Path) -> Path:
    """The demo as a git repository, ready to release 0.3.0: its build environment configured, attributions
    generated and committed, as a release engineer leaves it."""
    root = copy_example("serving", tmp_path_factory.mktemp("release") / "serving")
    (root / ".gitignore").write_text("/dist/\n/.polybuild/\n")
    with open(root / "polybuild.toml", "a") as f:
        f.write(f'\n[python]\ninterpreter = "{build_python}"\n')
    git(root, "init", "-q", "-b", "main")
    commit_all(root, "serving 0.3.0")
    proc = run_polybuild("attributions", "--fetch", cwd=root)
    assert proc.returncode == 0, proc.stderr
    commit_all(root, "attributions")
    return root


def clone(origin: Path, dest: Path) -> Path:
    subprocess.run([*GIT, "clone", "-q", str(origin), str(dest)], check=True, capture_output=True)
    return dest


def release(root: Path, *args: str, cache: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = polybuild_env(**({"POLYBUILD_CACHE_DIR": str(cache)} if cache else {}))
    return run_polybuild("release", *args, cwd=root, env=env, timeout=1800)


def test_a_release_is_checked_reproducible_and_tagged(origin: Path, tmp_path: Path) -> None:
    root = clone(origin, tmp_path / "first")
    proc = release(root, "0.3.0", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    for step in ("[1/9] clean git tree: clean", "[3/9] lockfiles:", "[4/9] licenses: deny.toml passes",
                 "[6/9] wheels: 4 wheel(s) verified", "[7/9] extras:", "[9/9] tag: dry run: v0.3.0 not created"):
        assert step in proc.stderr
    assert git(root, "tag", "--list") == ""
    dist = root / "dist"
    subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=dist, check=True)
    manifest = json.loads((dist / "release-manifest.json").read_text())
    head, epoch = git(root, "log", "-1", "--format=%H %ct").split()
    assert manifest["git"] == {"revision": head, "commit_time": int(epoch)}
    assert manifest["source_date_epoch"] == int(epoch)
    assert manifest["version"] == {"pep440": "0.3.0", "semver": "0.3.0"}
    assert set(manifest["locks"]) == {"Cargo.lock"}
    assert {"rustc", "cargo", "maturin", "go"} <= set(manifest["toolchains"])
    paths = {a["path"] for a in manifest["artifacts"]}
    assert {"operator", "serving-0.3.0-py3-none-any.whl", "cuda/servingctl"} <= paths  # every variant ships
    assert sorted(paths | {"sbom.cdx.json"}) == sorted(line.split("  ")[1] for line in
                                                      (dist / "SHA256SUMS").read_text().splitlines())
    wheel = next(dist.glob("serving-0.3.0-*.whl"))
    with zipfile.ZipFile(wheel) as zf:  # the wheel's timestamps are the release commit's
        stamp = zf.infolist()[0].date_time
    assert stamp[:3] == tuple(int(x) for x in git(root, "log", "-1", "--format=%cd",
                                                  "--date=format-local:%Y %m %d").split())

    other = clone(origin, tmp_path / "elsewhere" / "second")  # another directory, another cache: same bytes
    proc = release(other, "0.3.0", "--dry-run", cache=tmp_path / "other-cache")
    assert proc.returncode == 0, proc.stderr
    assert (other / "dist" / "SHA256SUMS").read_bytes() == (dist / "SHA256SUMS").read_bytes()

    proc = release(root, "0.3.0")
    assert proc.returncode == 0, proc.stderr
    assert "[9/9] tag: created v0.3.0" in proc.stderr
    assert git(root, "cat-file", "-t", "v0.3.0") == "tag"  # annotated
    assert git(root, "rev-list", "-n", "1", "v0.3.0") == head
    again = release(root, "0.3.0")  # the tag workflow runs on the tag it was started by
    assert again.returncode == 0 and "v0.3.0 already at HEAD" in again.stderr


def stopped_at(proc: subprocess.CompletedProcess[str], step: str) -> str:
    assert proc.returncode == 1, proc.stderr
    assert f"stopped at step {step}" in proc.stderr and "nothing was tagged" in proc.stderr
    return proc.stderr


def test_a_dirty_tree_stops_the_release(origin: Path, tmp_path: Path) -> None:
    root = clone(origin, tmp_path / "dirty")
    (root / "components" / "serving" / "notes.txt").write_text("not committed\n")
    err = stopped_at(release(root, "0.3.0", "--dry-run"), "1 (clean git tree)")
    assert "?? components/serving/notes.txt" in err
    assert not (root / "dist").exists()


def test_the_version_must_be_stamped_everywhere_and_never_re_cut(origin: Path, tmp_path: Path) -> None:
    root = clone(origin, tmp_path / "versions")
    err = stopped_at(release(root, "0.4.0", "--dry-run"), "2 (version)")
    assert "the workspace version is 0.3.0, not 0.4.0" in err and "polybuild version set 0.4.0" in err
    manifest = root / "components" / "serving" / "pyproject.toml"
    manifest.write_text(manifest.read_text().replace("serving-runtime==0.3.0", "serving-runtime==0.2.9"))
    commit_all(root, "a pin left behind")
    err = stopped_at(release(root, "0.3.0", "--dry-run"), "2 (version)")
    assert "components/serving/pyproject.toml:" in err and "found 0.2.9, expected 0.3.0" in err
    git(root, "revert", "--no-edit", "HEAD")
    git(root, "tag", "-a", "v0.3.0", "-m", "released earlier", "HEAD~1")
    err = stopped_at(release(root, "0.3.0", "--dry-run"), "2 (version)")
    assert "tag v0.3.0 already exists" in err
    bad = release(root, "0.3.x")
    assert bad.returncode == 2 and "0.3.x" in bad.stderr and "Traceback" not in bad.stderr


def test_a_stale_lock_or_stale_attributions_stop_the_release(origin: Path, tmp_path: Path) -> None:
    root = clone(origin, tmp_path / "stale")
    cargo = root / "lib" / "runtime" / "Cargo.toml"
    cargo.write_text(cargo.read_text() + '\n[dev-dependencies]\nitoa = "1"\n')
    commit_all(root, "a dependency without its lock entry")
    err = stopped_at(release(root, "0.3.0", "--dry-run"), "3 (lockfiles)")
    assert "Cargo.lock" in err
    git(root, "revert", "--no-edit", "HEAD")
    (root / "ATTRIBUTIONS-Rust.md").write_text("# hand-edited\n")
    commit_all(root, "attributions edited by hand")
    err = stopped_at(release(root, "0.3.0", "--dry-run"), "4 (licenses)")
    assert "ATTRIBUTIONS-Rust.md is out of date" in err


# --- wheel checks, on the real wheels of a release -----------------------------------------------------------------

@pytest.fixture(scope="module")
def wheels(origin: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = clone(origin, tmp_path_factory.mktemp("wheels") / "serving")
    proc = run_polybuild("build", "serving", cwd=root)
    assert proc.returncode == 0, proc.stderr
    return {"pure": next((root / "dist").glob("serving-0.3.0-*.whl")),
            "extension": next((root / "dist").glob("serving_runtime-0.3.0-*.whl"))}


PURE = Expected("0.3.0", extension=False, abi3=False, platform=None, modules=("serving",))
EXTENSION = Expected("0.3.0", extension=True, abi3=True, platform=Platform("linux", "amd64"),
                     modules=("serving_runtime",))


def rewrite(wheel: Path, dest: Path, change) -> Path:
    """A copy of `wheel` at `dest` with `change(name, data) -> (name, data) | None` applied to every entry."""
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(dest, "w") as out:
        for info in src.infolist():
            changed = change(info.filename, src.read(info))
            if changed is not None:
                out.writestr(changed[0], changed[1])
    return dest


def test_the_built_wheels_pass(wheels: dict[str, Path]) -> None:
    assert verify_wheel(wheels["pure"], PURE) == []
    assert verify_wheel(wheels["extension"], EXTENSION) == []


def test_wrong_version_platform_and_abi_are_caught(wheels: dict[str, Path]) -> None:
    ext = wheels["extension"].name
    assert verify_wheel(wheels["pure"], Expected("0.3.1", False, False, None, ("serving",))) == [
        f"{wheels['pure'].name}: version 0.3.0 is not the release's 0.3.1"]
    arm = Expected("0.3.0", True, True, Platform("linux", "arm64"), ("serving_runtime",))
    assert any("does not fit linux/arm64" in p and p.startswith(ext) for p in verify_wheel(wheels["extension"], arm))
    per_python = Expected("0.3.0", True, False, Platform("linux", "amd64"), ("serving_runtime",))
    assert any("expected a CPython ABI tag" in p for p in verify_wheel(wheels["extension"], per_python))
    assert verify_wheel(wheels["pure"], Expected("0.3.0", False, False, None, ("serving", "missing_pkg"))) == [
        f"{wheels['pure'].name}: does not hold the module 'missing_pkg'"]


def test_tampered_contents_are_caught(wheels: dict[str, Path], tmp_path: Path) -> None:
    pure = wheels["pure"]

    def edit_module(name: str, data: bytes):
        return (name, data + b"\n# edited after RECORD was written\n") if name.endswith("__init__.py") else (name, data)

    edited = rewrite(pure, tmp_path / pure.name, edit_module)
    assert any("does not match its RECORD hash" in p for p in verify_wheel(edited, PURE))

    def add_binary(name: str, data: bytes):
        return ("serving/_speedups.so", b"\x7fELF") if name.endswith("__init__.py") else (name, data)

    (tmp_path / "b").mkdir()
    compiled = rewrite(pure, tmp_path / "b" / pure.name, add_binary)
    problems = verify_wheel(compiled, PURE)
    assert any("a pure wheel holds compiled files: serving/_speedups.so" in p for p in problems)

    def drop_extension(name: str, data: bytes):
        return None if name.endswith(".so") else (name, data)

    ext = wheels["extension"]
    (tmp_path / "c").mkdir()
    hollow = rewrite(ext, tmp_path / "c" / ext.name, drop_extension)
    assert any("holds no compiled extension module" in p for p in verify_wheel(hollow, EXTENSION))

    def bad_metadata(name: str, data: bytes):
        return (name, data.replace(b"Version: 0.3.0", b"Version: 0.3.0-x")) if name.endswith("METADATA") else (
            name, data)

    (tmp_path / "d").mkdir()
    broken = rewrite(pure, tmp_path / "d" / pure.name, bad_metadata)
    assert any("invalid METADATA" in p for p in verify_wheel(broken, PURE))
