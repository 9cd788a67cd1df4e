"""Content fingerprints of files and file trees, for cache keys.

`tree_digest(root, paths)` is defined exactly as follows, so that the native core (`polybuild_core`,
Rust) and the pure-Python fallback here give identical results:

    Take the given relative paths (POSIX separators, relative to root), deduplicate, sort by their
    UTF-8 bytes; for each produce the line f"{mode} {sha256hex} {path}\\n" where mode is "120000"
    for a symlink (hash = sha256 of link target bytes, the link is not followed), "100755" for a
    regular file with any execute bit set, else "100644"; the tree digest is the lowercase hex
    sha256 of the concatenated UTF-8 lines. An empty list gives the sha256 of the empty string.

`file_digests(root, paths)` gives the lowercase hex sha256 of each path (a symlink: of its target
string), in input order, duplicates kept. A missing or unreadable path raises `OSError`
(`FileNotFoundError` if missing) for the first failing path in input order, with `filename` set to
`os.path.join(root, path)`.

The native core is used when `polybuild_core` is importable; it hashes in parallel without the GIL.
Setting the environment variable `POLYBUILD_NO_NATIVE=1` forces the fallback (read on first use).
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

__all__ = ["backend", "file_digests", "tree_digest"]

StrPath = str | os.PathLike[str]

_CHUNK = 1 << 20
# Files at least this large are hashed in a thread pool. Measured on 2 cores: ~2x faster for multi-MiB
# files, while pooling small files was slower than hashing them inline (GIL hand-offs per file).
_POOL_MIN_SIZE = 256 << 10


@functools.cache
def _native() -> ModuleType | None:
    """The native core, or None; cached so the import is attempted once (tests call cache_clear)."""
    if os.environ.get("POLYBUILD_NO_NATIVE") == "1":
        return None
    try:
        import polybuild_core
    except ImportError:
        return None
    return polybuild_core


def backend() -> str:
    """Which implementation the public functions use: "native" or "python"."""
    return "native" if _native() is not None else "python"


def file_digests(root: StrPath, paths: Sequence[str]) -> list[str]:
    """Hex sha256 of each file under `root` (symlinks: of their target), in input order."""
    paths = _as_list(paths)
    native = _native()
    if native is not None:
        return native.file_digests(os.fspath(root), paths)
    return _py_file_digests(root, paths)


def tree_digest(root: StrPath, paths: Sequence[str]) -> str:
    """Digest of the tree formed by `paths` under `root`, as specified in the module docstring."""
    paths = _as_list(paths)
    native = _native()
    if native is not None:
        return native.tree_digest(os.fspath(root), paths)
    return _py_tree_digest(root, paths)


def _as_list(paths: Sequence[str]) -> list[str]:
    # A lone str is a Sequence[str] too; hashing its characters would be a silent bug.
    if isinstance(paths, str):
        raise TypeError("paths must be a sequence of path strings, not a str")
    return list(paths)


def _lstat(path: str) -> os.stat_result | OSError:
    """`os.lstat`, with a failure returned so it can be raised in input order later."""
    try:
        return os.lstat(path)
    except OSError as e:
        return e


def _py_hash_entry(path: str, st: os.stat_result | OSError) -> tuple[str, str]:
    """(mode, hex sha256) of one path whose `_lstat` is `st`; a final symlink is not followed."""
    if isinstance(st, OSError):
        raise st
    if stat.S_ISLNK(st.st_mode):
        return "120000", hashlib.sha256(os.readlink(os.fsencode(path))).hexdigest()
    digest = hashlib.sha256()
    # Size the buffer to the file: zeroing 1 MiB per small file would dominate the cost.
    buf = bytearray(max(1, min(_CHUNK, st.st_size)))
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            digest.update(view[:n])
    return ("100755" if st.st_mode & 0o111 else "100644"), digest.hexdigest()


def _py_hash_entries(root: StrPath, paths: Sequence[str]) -> list[tuple[str, str]]:
    """Hash all paths, raising for the first failing one in input order.

    Large files go to a thread pool (reads and hashlib updates on big buffers release the GIL, so
    that scales with cores); small files are hashed inline, as threads only add GIL ping-pong there.
    """
    root = os.fspath(root)
    full = [os.path.join(root, p) for p in paths]
    stats = [_lstat(p) for p in full]
    big = [
        i
        for i, st in enumerate(stats)
        if isinstance(st, os.stat_result) and stat.S_ISREG(st.st_mode) and st.st_size >= _POOL_MIN_SIZE
    ]
    if len(big) < 2:
        return [_py_hash_entry(p, st) for p, st in zip(full, stats, strict=True)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        pending = {i: pool.submit(_py_hash_entry, full[i], stats[i]) for i in big}
        results = []
        for i, (path, st) in enumerate(zip(full, stats, strict=True)):
            results.append(pending[i].result() if i in pending else _py_hash_entry(path, st))
        return results


def _py_file_digests(root: StrPath, paths: Sequence[str]) -> list[str]:
    """Pure-Python `file_digests`."""
    return [digest for _, digest in _py_hash_entries(root, paths)]


def _py_tree_digest(root: StrPath, paths: Sequence[str]) -> str:
    """Pure-Python `tree_digest`."""
    # Code point order of str equals the byte order of its UTF-8 encoding.
    unique = sorted(set(paths))
    tree = hashlib.sha256()
    for path, (mode, digest) in zip(unique, _py_hash_entries(root, unique), strict=True):
        tree.update(f"{mode} {digest} {path}\n".encode())
    return tree.hexdigest()


def tree_digest_of(entries: dict[str, tuple[str, str]]) -> str:
    """The tree digest of already-hashed entries (path -> (mode, digest)), same format as `tree_digest`."""
    tree = hashlib.sha256()
    for path in sorted(entries):
        mode, digest = entries[path]
        tree.update(f"{mode} {digest} {path}\n".encode())
    return tree.hexdigest()


# An entry is trusted only once its file is older than this, so an edit within the timestamp granularity of
# the filesystem right after hashing can never be mistaken for the cached content (git's "racy clean" problem).
_RACY_NS = 2_000_000_000
_STATCACHE_HEADER = "polybuild-statcache 1\n"


class StatCache:
    """Persistent (size, mtime_ns, ctime_ns, inode) -> digest cache, like git's index: an unchanged file costs one
    `lstat`. File format, one entry per line, sorted by path: `mode digest size mtime_ns ctime_ns inode path`."""

    def __init__(self, file: StrPath) -> None:
        self.file = os.fspath(file)
        self._entries: dict[str, tuple[tuple[int, int, int, int], tuple[str, str]]] = {}
        self._dirty = False
        self._load()

    def _load(self) -> None:
        try:
            with open(self.file, encoding="utf-8", errors="surrogateescape") as f:
                if f.readline() != _STATCACHE_HEADER:
                    return
                for line in f:
                    mode, digest, size, mtime, ctime, ino, path = line.rstrip("\n").split(" ", 6)
                    self._entries[path] = ((int(size), int(mtime), int(ctime), int(ino)), (mode, digest))
        except (OSError, ValueError):
            self._entries.clear()  # a missing or damaged cache only costs re-hashing

    def entries(self, root: StrPath, paths: Sequence[str]) -> dict[str, tuple[str, str]]:
        """path -> (mode, digest) for the regular files and symlinks among `paths` (special files are skipped)."""
        root = os.fspath(root)
        out: dict[str, tuple[str, str]] = {}
        misses: list[tuple[str, os.stat_result]] = []
        for path in paths:
            st = os.lstat(os.path.join(root, path))
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                continue
            cached = self._entries.get(path)
            if cached and cached[0] == _signature(st):
                out[path] = cached[1]
            else:
                misses.append((path, st))
        if misses:
            now = time.time_ns()
            digests = file_digests(root, [p for p, _ in misses])
            for (path, st), digest in zip(misses, digests, strict=True):
                mode = "120000" if stat.S_ISLNK(st.st_mode) else "100755" if st.st_mode & 0o111 else "100644"
                out[path] = (mode, digest)
                if now - max(st.st_mtime_ns, st.st_ctime_ns) > _RACY_NS and "\n" not in path:
                    self._entries[path] = (_signature(st), (mode, digest))
                else:
                    self._entries.pop(path, None)
                self._dirty = True
        return out

    def save(self) -> None:
        """Write atomically (temp file + rename); concurrent writers just race to a complete file."""
        if not self._dirty:
            return
        os.makedirs(os.path.dirname(self.file) or ".", exist_ok=True)
        tmp = f"{self.file}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(_STATCACHE_HEADER)
            for path in sorted(self._entries):
                (size, mtime, ctime, ino), (mode, digest) = self._entries[path]
                f.write(f"{mode} {digest} {size} {mtime} {ctime} {ino} {path}\n")
        os.replace(tmp, self.file)
        self._dirty = False


def _signature(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
