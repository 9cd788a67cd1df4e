"""Tests for polybuild.fingerprint: the pure-Python fallback against the spec, and the native core
(built for real with maturin) against the fallback."""

from __future__ import annotations

import hashlib
import importlib
import os
import random
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from polybuild import fingerprint

REPO = Path(__file__).resolve().parents[1]
CRATE_MANIFEST = str(REPO / "rust" / "polybuild-core" / "Cargo.toml")

# Regression pin for the known tree below: changing it invalidates every existing cache key.
KNOWN_TREE_DIGEST = "970974b255ad3fd5edd5c33d8e9281e205bd4f96d83eac87eb2ef6ddec2b373a"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write(root: Path, rel: str, data: bytes, mode: int = 0o644) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)  # explicit, so the umask cannot change the expected modes


# rel path -> (mode, content or link target); the modes are what the spec says they must be.
KNOWN_FILES: dict[str, tuple[str, bytes]] = {
    "a.txt": ("100644", b"hello\n"),
    "bin/run.sh": ("100755", b"#!/bin/sh\necho hi\n"),
    "empty": ("100644", b""),
    "sub/dir/data.bin": ("100644", bytes(range(256)) * 300),
    "sub-file": ("100644", b"'-' sorts before '/' in a flat byte order\n"),
    "Zebra": ("100644", b"upper case sorts first\n"),
    "ünïcødé/名前.txt": ("100644", "héllo wörld\n".encode()),
    "link": ("120000", b"a.txt"),
    "dangling": ("120000", b"does/not/exist"),
}
# Unsorted and with duplicates, as callers may pass them.
KNOWN_INPUT = [*reversed(KNOWN_FILES), "a.txt", "link", "ünïcødé/名前.txt"]


def make_known_tree(root: Path) -> Path:
    for rel, (mode, data) in KNOWN_FILES.items():
        if mode == "120000":
            os.symlink(data.decode(), root / rel)
        else:
            write(root, rel, data, 0o755 if mode == "100755" else 0o644)
    return root


def expected_tree_digest() -> str:
    """The spec, spelled out independently of fingerprint.py."""
    unique = sorted(set(KNOWN_INPUT), key=lambda p: p.encode("utf-8"))
    lines = "".join(f"{KNOWN_FILES[p][0]} {sha(KNOWN_FILES[p][1])} {p}\n" for p in unique)
    return sha(lines.encode("utf-8"))


def make_random_tree(root: Path, seed: int, count: int = 300) -> list[str]:
    """Many files of random sizes (a few up to 3 MiB, chunk-boundary sizes included) and exec bits."""
    rng = random.Random(seed)
    boundary = [0, 1, 4095, 4096, 65535, 65536, 65537, (1 << 20) - 1, 1 << 20, (1 << 20) + 1]
    names = ["x", "Y", "é", "日本", "a b", "z-1", "z.2"]
    paths: list[str] = []
    for i in range(count):
        depth = rng.randrange(4)
        rel = "/".join([*(rng.choice(names) + str(rng.randrange(3)) for _ in range(depth)), f"f{i}"])
        if i < len(boundary):
            size = boundary[i]
        elif rng.random() < 0.05:
            size = rng.randrange(3 << 20)
        else:
            size = rng.randrange(20_000)
        if rng.random() < 0.05:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(rng.choice(["f0", "../up", "é/" + str(i)]), root / rel)
        else:
            write(root, rel, rng.randbytes(size), rng.choice([0o644, 0o600, 0o755, 0o744, 0o654, 0o601]))
        paths.append(rel)
    rng.shuffle(paths)
    return paths + paths[: count // 10]


@pytest.fixture
def reset_backend() -> Iterator[None]:
    """Forget the cached native-core lookup before and after the test."""
    fingerprint._native.cache_clear()
    yield
    fingerprint._native.cache_clear()


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The real native core: built as a release wheel by maturin and pip-installed into a temp dir."""
    scripts = sysconfig.get_path("scripts")
    maturin = shutil.which("maturin", path=os.pathsep.join([scripts, os.environ.get("PATH", "")]))
    if maturin is None:
        pytest.fail("maturin is not installed (pip install 'maturin>=1.9.4'): cannot build the native core")
    wheel_dir = tmp_path_factory.mktemp("wheel")
    site_dir = tmp_path_factory.mktemp("site")
    env = {**os.environ, "CARGO_TARGET_DIR": os.environ.get("CARGO_TARGET_DIR") or str(REPO / "target")}
    cmd = [maturin, "build", "--release", "-m", CRATE_MANIFEST, "-i", sys.executable, "-o", str(wheel_dir)]
    build = subprocess.run(cmd, check=False, cwd=REPO, env=env, capture_output=True, text=True)
    if build.returncode != 0:
        pytest.fail(f"maturin build failed ({build.returncode}):\n{build.stdout}\n{build.stderr}")
    (wheel,) = wheel_dir.glob("polybuild_core-*.whl")
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(site_dir)]
    subprocess.run([*pip, str(wheel)], check=True, capture_output=True)

    saved = sys.modules.pop("polybuild_core", None)
    sys.path.insert(0, str(site_dir))
    importlib.invalidate_caches()
    try:
        module = importlib.import_module("polybuild_core")
        assert Path(module.__file__ or "").is_relative_to(site_dir), module.__file__
        yield module
    finally:
        sys.path.remove(str(site_dir))
        sys.modules.pop("polybuild_core", None)
        if saved is not None:
            sys.modules["polybuild_core"] = saved
        fingerprint._native.cache_clear()


# (a) the fallback against the spec


def test_fallback_known_tree(tmp_path: Path) -> None:
    root = make_known_tree(tmp_path)
    assert fingerprint._py_tree_digest(root, KNOWN_INPUT) == expected_tree_digest() == KNOWN_TREE_DIGEST
    assert fingerprint._py_tree_digest(str(root), list(reversed(KNOWN_INPUT))) == KNOWN_TREE_DIGEST
    assert fingerprint._py_file_digests(root, KNOWN_INPUT) == [sha(KNOWN_FILES[p][1]) for p in KNOWN_INPUT]


def test_fallback_empty_tree(tmp_path: Path) -> None:
    assert fingerprint._py_tree_digest(tmp_path, []) == sha(b"")
    assert fingerprint._py_file_digests(tmp_path, []) == []


@pytest.mark.usefixtures("reset_backend")
def test_env_var_forces_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYBUILD_NO_NATIVE", "1")
    assert fingerprint.backend() == "python"
    assert fingerprint.tree_digest(make_known_tree(tmp_path), KNOWN_INPUT) == KNOWN_TREE_DIGEST


def test_str_paths_rejected(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        fingerprint.tree_digest(tmp_path, "a.txt")


# (b) native core against the fallback


@pytest.mark.usefixtures("reset_backend")
def test_native_backend_selected(native: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POLYBUILD_NO_NATIVE", raising=False)
    assert fingerprint.backend() == "native"
    assert fingerprint._native() is native
    assert native.__version__ == "0.1.0"
    assert "120000" in (native.__doc__ or "")


def test_native_known_tree(native: ModuleType, tmp_path: Path) -> None:
    root = make_known_tree(tmp_path)
    assert native.tree_digest(str(root), KNOWN_INPUT) == KNOWN_TREE_DIGEST
    assert native.file_digests(str(root), KNOWN_INPUT) == fingerprint._py_file_digests(root, KNOWN_INPUT)
    assert native.tree_digest(str(root), []) == sha(b"")


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.usefixtures("reset_backend")
def test_native_matches_fallback_random_tree(
    native: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    paths = make_random_tree(tmp_path, seed)
    expected = fingerprint._py_tree_digest(tmp_path, paths)
    monkeypatch.delenv("POLYBUILD_NO_NATIVE", raising=False)
    assert fingerprint.backend() == "native"
    assert fingerprint.tree_digest(tmp_path, paths) == expected
    assert fingerprint.file_digests(tmp_path, paths) == fingerprint._py_file_digests(tmp_path, paths)


def test_native_matches_fallback_subsets(native: ModuleType, tmp_path: Path) -> None:
    """Different subsets and orders of one tree: equal inputs agree, different inputs differ."""
    paths = make_random_tree(tmp_path, seed=3, count=60)
    digests = set()
    for subset in (paths[:1], paths[:7], paths[5:40], paths[::-1], sorted(set(paths))):
        digest = native.tree_digest(str(tmp_path), subset)
        assert digest == fingerprint._py_tree_digest(tmp_path, subset)
        digests.add(digest)
    assert len(digests) == 4  # the last two name the same set of files


def test_native_digest_tracks_content_and_mode(native: ModuleType, tmp_path: Path) -> None:
    root = make_known_tree(tmp_path)
    before = native.tree_digest(str(root), KNOWN_INPUT)
    (root / "a.txt").chmod(0o744)
    after_chmod = native.tree_digest(str(root), KNOWN_INPUT)
    (root / "empty").write_bytes(b"x")
    after_write = native.tree_digest(str(root), KNOWN_INPUT)
    assert len({before, after_chmod, after_write}) == 3
    assert after_write == fingerprint._py_tree_digest(root, KNOWN_INPUT)


# (c) errors


# tree_digest hashes in sorted order ('-' < '/'), file_digests in input order; both raise for the first
# failing path in that order, so the error does not depend on thread scheduling.
MISSING_INPUT = ["a.txt", "missing/one", "missing-two"]
FIRST_MISSING = {"tree_digest": "missing-two", "file_digests": "missing/one"}


def _check_missing(func: Callable[[object, list[str]], object], root: Path, first_missing: str) -> None:
    for root_arg in (root, str(root)):
        with pytest.raises(FileNotFoundError) as info:
            func(root_arg, MISSING_INPUT)
        assert info.value.filename == os.path.join(root, first_missing)
        assert first_missing in str(info.value)


@pytest.mark.parametrize("name", ["tree_digest", "file_digests"])
def test_fallback_missing_file(tmp_path: Path, name: str) -> None:
    _check_missing(getattr(fingerprint, f"_py_{name}"), make_known_tree(tmp_path), FIRST_MISSING[name])


@pytest.mark.parametrize("name", ["tree_digest", "file_digests"])
def test_native_missing_file(native: ModuleType, tmp_path: Path, name: str) -> None:
    _check_missing(getattr(native, name), make_known_tree(tmp_path), FIRST_MISSING[name])


@pytest.mark.usefixtures("reset_backend")
def test_public_missing_file(native: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_known_tree(tmp_path)
    for no_native, backend in (("0", "native"), ("1", "python")):
        monkeypatch.setenv("POLYBUILD_NO_NATIVE", no_native)
        fingerprint._native.cache_clear()
        assert fingerprint.backend() == backend
        for name, first_missing in FIRST_MISSING.items():
            _check_missing(getattr(fingerprint, name), root, first_missing)
