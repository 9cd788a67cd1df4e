"""Tests for polybuild.support.fingerprint: the pure-Python fallback against the spec, and the native core
(built for real with maturin) against the fallback."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib
import os
import random
import shutil
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from polybuild.support import fingerprint

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


# (d) special files: never opened, refused identically by both backends


@contextlib.contextmanager
def fifo_watch(fifo: Path) -> Iterator[list[str]]:
    """Notes whether anything opens `fifo` for reading meanwhile, and unblocks such a reader by opening the write
    end, so a regression fails the test instead of hanging it."""
    opened: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.002):
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO while there is no reader
            except OSError:
                continue
            opened.append(str(fifo))
            os.close(fd)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield opened
    finally:
        stop.set()
        thread.join()


def _error(func: Callable[[str, list[str]], object], root: Path, paths: list[str]) -> tuple[object, ...]:
    with pytest.raises(OSError) as info:
        func(str(root), paths)
    e = info.value
    return type(e), e.errno, e.strerror, e.filename, str(e)


def test_special_files_raise_identically(native: ModuleType, tmp_path: Path) -> None:
    """A FIFO or socket raises OSError(EINVAL, "Not a regular file or symlink", path) without being opened; a
    directory raises IsADirectoryError; both backends, both functions, the first failing path in input order."""
    root = make_known_tree(tmp_path)
    os.mkfifo(root / "pipe")
    (root / "dir").mkdir()
    sock = socket.socket(socket.AF_UNIX)
    with contextlib.closing(sock), fifo_watch(root / "pipe") as opened:
        sock.bind(str(root / "sock"))
        for name in ("file_digests", "tree_digest"):
            py_func, native_func = getattr(fingerprint, f"_py_{name}"), getattr(native, name)
            for special in ("pipe", "sock"):
                paths = ["a.txt", "link", special, "bin/run.sh"]
                expected = _error(py_func, root, paths)
                assert expected[:4] == (OSError, errno.EINVAL, "Not a regular file or symlink", str(root / special))
                assert _error(native_func, root, paths) == expected
            paths = ["a.txt", "dir"]
            expected = _error(py_func, root, paths)
            assert expected[:4] == (IsADirectoryError, errno.EISDIR, os.strerror(errno.EISDIR), str(root / "dir"))
            assert _error(native_func, root, paths) == expected
    assert not opened


# (e) the stat cache: native and fallback behave identically and share one file format

STATCACHE_HEADER = b"polybuild-statcache 1\n"
NEWLINE_NAME = "new\nline.txt"  # hashed, never stored
FUTURE_NAME = "future.txt"  # mtime ahead of the clock: never old enough to store
BAD_UTF8_NAME = os.fsdecode(b"\xff.txt")  # "\udcff.txt": before "\ue000.txt" by code point, after it by bytes
SPECIAL_NAMES = ["pipe", "sub"]  # a FIFO and a directory: skipped


@pytest.fixture(scope="module")
def old_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A read-only tree whose files are all more than 2 s old (mtime and ctime), so a stat cache stores them:
    regular files with and without exec bits, symlinks, unicode, spaces, CR, newline and non-UTF-8 names, a FIFO,
    a directory, mtimes before 1970 and in the future. Returns (root, paths with duplicates)."""
    root = make_known_tree(tmp_path_factory.mktemp("old"))
    (root / "rand").mkdir()
    paths = [*KNOWN_INPUT, *(f"rand/{p}" for p in make_random_tree(root / "rand", seed=4, count=80))]
    for name in (NEWLINE_NAME, FUTURE_NAME, BAD_UTF8_NAME, "\ue000.txt", "cr\r.txt", "sp ace s.txt", "ancient"):
        write(root, name, name.encode("utf-8", "surrogateescape") * 3)
        paths.append(name)
    os.utime(root / "ancient", ns=(0, -1_500_000_000))
    os.utime(root / FUTURE_NAME, ns=(0, time.time_ns() + 3600 * 10**9))
    os.mkfifo(root / "pipe")
    paths = [*SPECIAL_NAMES, *paths, "pipe"]
    newest = max(max(st.st_mtime_ns, st.st_ctime_ns) for st in (os.lstat(root / p) for p in paths if p != FUTURE_NAME))
    time.sleep(max(0.0, (newest + 2_100_000_000 - time.time_ns()) / 1e9))  # ctime cannot be set: wait it out
    return root, paths


def _statcaches(native: ModuleType, directory: Path) -> dict[str, Any]:
    return {
        "python": fingerprint._PyStatCache(str(directory / "python.statcache")),
        "native": native.StatCache(str(directory / "native.statcache")),
    }


def _cache_lines(data: bytes) -> list[list[bytes]]:
    assert data.startswith(STATCACHE_HEADER) and data.endswith(b"\n")
    return (
        [line.split(b" ", 6) for line in data[len(STATCACHE_HEADER) : -1].split(b"\n")]
        if data != STATCACHE_HEADER
        else []
    )


def test_statcache_native_matches_fallback(
    native: ModuleType, old_tree: tuple[Path, list[str]], tmp_path: Path
) -> None:
    root, paths = old_tree
    files = [p for p in dict.fromkeys(paths) if p not in SPECIAL_NAMES]
    expected = dict(zip(files, fingerprint._py_hash_entries(root, files), strict=True))
    caches = _statcaches(native, tmp_path)
    with fifo_watch(root / "pipe") as opened:
        results = {name: cache.entries(str(root), paths) for name, cache in caches.items()}
        for cache in caches.values():
            cache.save()
        # second run: all hits, nothing changed, so nothing is written
        before = {name: os.stat(cache.file) for name, cache in caches.items()}
        again = {name: cache.entries(str(root), paths) for name, cache in caches.items()}
        for cache in caches.values():
            cache.save()
    assert not opened
    for name in caches:
        assert results[name] == again[name] == expected
        assert list(results[name]) == list(again[name]) == files  # input order, duplicates merged
        after = os.stat(caches[name].file)
        assert (after.st_ino, after.st_mtime_ns) == (before[name].st_ino, before[name].st_mtime_ns)
    data = (tmp_path / "python.statcache").read_bytes()
    assert (tmp_path / "native.statcache").read_bytes() == data
    lines = _cache_lines(data)
    stored = [line[6] for line in lines]
    assert stored == sorted(stored)  # by bytes: "\xff.txt" after "\ue000.txt"
    assert stored.index(os.fsencode(BAD_UTF8_NAME)) > stored.index("\ue000.txt".encode())
    unstored = {NEWLINE_NAME, FUTURE_NAME}
    assert {p.decode("utf-8", "surrogateescape") for p in stored} == set(files) - unstored
    for mode, digest, size, mtime, ctime, ino, path in lines:
        st = os.lstat(root / path.decode("utf-8", "surrogateescape"))
        assert (int(size), int(mtime), int(ctime), int(ino)) == (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        assert (mode.decode(), digest.decode()) == expected[path.decode("utf-8", "surrogateescape")]
    assert b" -1500000000 " in data  # mtime before 1970


def _fake_digests(data: bytes) -> tuple[bytes, dict[str, str]]:
    """`data` with every digest replaced by a fake one, and path -> fake digest."""
    fakes = {}
    lines = [STATCACHE_HEADER]
    for fields in _cache_lines(data):
        fields[1] = sha(b"fake " + fields[1]).encode()
        fakes[fields[6].decode("utf-8", "surrogateescape")] = fields[1].decode()
        lines.append(b" ".join(fields) + b"\n")
    return b"".join(lines), fakes


@pytest.mark.parametrize("writer", ["python", "native"])
@pytest.mark.parametrize("reader", ["python", "native"])
def test_statcache_reads_either_file(
    native: ModuleType, old_tree: tuple[Path, list[str]], tmp_path: Path, writer: str, reader: str
) -> None:
    """Each implementation trusts every entry of the other's file: a faked digest in it comes back unchecked."""
    root, paths = old_tree
    cache = _statcaches(native, tmp_path / "w")[writer]
    real = cache.entries(str(root), paths)
    cache.save()
    data, fakes = _fake_digests(Path(cache.file).read_bytes())
    assert len(fakes) == len(real) - 2  # all but the newline and future names
    for name in ("python.statcache", "native.statcache"):
        (tmp_path / name).write_bytes(data)
    got = _statcaches(native, tmp_path)[reader].entries(str(root), paths)
    assert got == {p: (mode, fakes.get(p, digest)) for p, (mode, digest) in real.items()}


@pytest.mark.parametrize("impl", ["python", "native"])
def test_statcache_detects_changes_via_ctime(native: ModuleType, tmp_path: Path, impl: str) -> None:
    """Same size, mtime and inode but new content: the ctime gives it away, and the entry is dropped (racy)."""
    root = tmp_path / "tree"
    write(root, "f.txt", b"aaaa")
    write(root, "fresh.txt", b"new")
    st = os.lstat(root / "f.txt")
    fake = sha(b"fake")
    line = f"100644 {fake} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns} {st.st_ino} f.txt\n"
    cache_file = tmp_path / f"{impl}.statcache"
    cache_file.write_bytes(STATCACHE_HEADER + line.encode())
    caches = _statcaches(native, tmp_path)
    assert caches[impl].entries(str(root), ["f.txt"]) == {"f.txt": ("100644", fake)}
    time.sleep(0.05)  # past the kernel's coarse timestamp tick
    (root / "f.txt").write_bytes(b"bbbb")
    os.utime(root / "f.txt", ns=(st.st_atime_ns, st.st_mtime_ns))
    st2 = os.lstat(root / "f.txt")
    assert (st2.st_size, st2.st_mtime_ns, st2.st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino)
    expected = {"f.txt": ("100644", sha(b"bbbb")), "fresh.txt": ("100644", sha(b"new"))}
    assert caches[impl].entries(str(root), ["f.txt", "fresh.txt"]) == expected
    assert _statcaches(native, tmp_path)[impl].entries(str(root), ["f.txt", "fresh.txt"]) == expected
    caches[impl].save()
    assert cache_file.read_bytes() == STATCACHE_HEADER  # the changed entry is dropped, the fresh file not stored
    # nothing to store, nothing dropped: no file is written
    untouched = _statcaches(native, tmp_path / "none")[impl]
    untouched.entries(str(root), ["f.txt", "fresh.txt"])
    untouched.save()
    assert not (tmp_path / "none").exists()


DIGEST = "ab" * 32


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(b"", id="valid"),
        pytest.param(b"100644 " + DIGEST.encode() + b" 1 2 3 4 other path\n", id="valid-space-in-path"),
        pytest.param(b"100644 " + DIGEST.encode() + b" 1 2 3 4 p", id="truncated"),
        pytest.param(b"\n", id="empty-line"),
        pytest.param(b"100600 " + DIGEST.encode() + b" 1 2 3 4 p\n", id="bad-mode"),
        pytest.param(b"100644 " + DIGEST.upper().encode() + b" 1 2 3 4 p\n", id="upper-hex"),
        pytest.param(b"100644 " + DIGEST.encode() + b" 01 2 3 4 p\n", id="leading-zero"),
        pytest.param(b"100644 " + DIGEST.encode() + b" +1 2 3 4 p\n", id="plus-sign"),
        pytest.param(b"100644 " + DIGEST.encode() + b" 1 -0 3 4 p\n", id="minus-zero"),
        pytest.param(b"100644 " + DIGEST.encode() + b" 1 2 3 18446744073709551616 p\n", id="inode-overflow"),
        pytest.param(b"100644 " + DIGEST.encode() + b" 1 2 3 4 \n", id="empty-path"),
        pytest.param(b"100644 " + DIGEST.encode() + b" 1 2 3 4\n", id="six-fields"),
        pytest.param(b"100644 " + DIGEST.encode() + b" 1 2 3 1_0 p\n", id="underscore"),
        pytest.param(b"100644 " + DIGEST.encode() + "\u0661".encode() + b" 2 3 4 p\n", id="unicode-digit"),
    ],
)
def test_statcache_damaged_files_are_ignored_identically(native: ModuleType, tmp_path: Path, extra: bytes) -> None:
    """A cache file with any malformed line is ignored as a whole, by both implementations alike."""
    root = tmp_path / "tree"
    write(root, "f.txt", b"aaaa")
    st = os.lstat(root / "f.txt")
    line = f"100644 {DIGEST} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns} {st.st_ino} f.txt\n".encode()
    for data in (STATCACHE_HEADER + line + extra, STATCACHE_HEADER + extra + line):
        for name in ("python.statcache", "native.statcache"):
            (tmp_path / name).write_bytes(data)
        got = {n: c.entries(str(root), ["f.txt"]) for n, c in _statcaches(native, tmp_path).items()}
        trusted = extra in (b"", b"100644 " + DIGEST.encode() + b" 1 2 3 4 other path\n")
        assert got["python"] == got["native"] == {"f.txt": ("100644", DIGEST if trusted else sha(b"aaaa"))}
    for header in (b"polybuild-statcache 2\n", b"polybuild-statcache 1\r\n", b""):
        (tmp_path / "python.statcache").write_bytes(header + line)
        (tmp_path / "native.statcache").write_bytes(header + line)
        got = {n: c.entries(str(root), ["f.txt"]) for n, c in _statcaches(native, tmp_path).items()}
        assert got["python"] == got["native"] == {"f.txt": ("100644", sha(b"aaaa"))}


@pytest.mark.usefixtures("reset_backend")
def test_public_statcache_backends(
    native: ModuleType, old_tree: tuple[Path, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, paths = old_tree
    results, files = {}, {}
    for no_native, backend in (("0", "native"), ("1", "python")):
        monkeypatch.setenv("POLYBUILD_NO_NATIVE", no_native)
        fingerprint._native.cache_clear()
        cache = fingerprint.StatCache(tmp_path / backend / "state" / "statcache")  # parent directories are made
        assert cache.backend == backend
        assert cache.file == str(tmp_path / backend / "state" / "statcache")
        with pytest.raises(TypeError):
            cache.entries(root, "a.txt")
        with pytest.raises(FileNotFoundError) as info:
            cache.entries(root, ["a.txt", "missing/one", "missing-two"])
        assert info.value.filename == os.path.join(root, "missing/one")
        results[backend] = cache.entries(root, tuple(paths))
        cache.save()
        files[backend] = Path(cache.file).read_bytes()
    assert results["native"] == results["python"]
    assert files["native"] == files["python"]


def test_native_statcache_is_thread_safe(native: ModuleType, old_tree: tuple[Path, list[str]], tmp_path: Path) -> None:
    """Concurrent entries() and save() on one cache, as the executor's worker threads do."""
    root, paths = old_tree
    cache = native.StatCache(str(tmp_path / "statcache"))
    expected = fingerprint._PyStatCache(str(tmp_path / "unused")).entries(str(root), paths)

    def work(i: int) -> dict[str, tuple[str, str]]:
        result = cache.entries(str(root), paths[i % 7 :] + paths[: i % 7])
        cache.save()
        return result

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(r == expected for r in pool.map(work, range(32)))
    assert len(cache) == len(expected) - 2
