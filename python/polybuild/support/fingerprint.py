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
`os.path.join(root, path)`; so does a directory (`IsADirectoryError`) and a FIFO, socket or device
file, which is refused without being opened (a FIFO would block) with
`OSError(errno.EINVAL, "Not a regular file or symlink", path)`.

`StatCache(file)` is the persistent stat cache (see its docstring); the native core implements it too
(on Unix), with the same semantics and a byte-identical file.

The native core is used when `polybuild_core` is importable; it hashes in parallel without the GIL.
Setting the environment variable `POLYBUILD_NO_NATIVE=1` forces the fallback (read on first use).
"""

from __future__ import annotations

import errno
import functools
import hashlib
import os
import re
import stat
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Protocol

from polybuild.support.fs import racy, write_atomic

__all__ = ["StatCache", "backend", "file_digests", "tree_digest"]

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
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):  # a directory fails in open() below
        raise OSError(errno.EINVAL, _SPECIAL_FILE, path)
    digest = hashlib.sha256()
    # Size the buffer to the file: zeroing 1 MiB per small file would dominate the cost.
    buf = bytearray(max(1, min(_CHUNK, st.st_size)))
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            digest.update(view[:n])
    return ("100755" if st.st_mode & 0o111 else "100644"), digest.hexdigest()


_SPECIAL_FILE = "Not a regular file or symlink"


def _py_hash_entries(root: StrPath, paths: Sequence[str]) -> list[tuple[str, str]]:
    """Hash all paths, raising for the first failing one in input order."""
    root = os.fspath(root)
    full = [os.path.join(root, p) for p in paths]
    return _py_hash_stated(full, [_lstat(p) for p in full])


def _py_hash_stated(full: list[str], stats: Sequence[os.stat_result | OSError]) -> list[tuple[str, str]]:
    """Hash the paths `full` whose `_lstat`s are `stats`, raising for the first failing one in input order.

    Large files go to a thread pool (reads and hashlib updates on big buffers release the GIL, so
    that scales with cores); small files are hashed inline, as threads only add GIL ping-pong there.
    """
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


_STATCACHE_HEADER = b"polybuild-statcache 1\n"
# mode digest size mtime_ns ctime_ns inode path
_STATCACHE_LINE = re.compile(
    rb"(100644|100755|120000) ([0-9a-f]{64}) ([0-9]+) (-?[0-9]+) (-?[0-9]+) ([0-9]+) (.+)", re.S
)
_U64 = (0, 1 << 64)
_I128 = (-(1 << 127), 1 << 127)

_Signature = tuple[int, int, int, int]


class _StatCacheImpl(Protocol):
    def entries(self, root: str, paths: list[str]) -> dict[str, tuple[str, str]]: ...
    def save(self) -> None: ...


class StatCache:
    """Persistent stat cache, like git's index: an unchanged file costs one `lstat`.

    `entries(root, paths)` gives path -> (mode, digest) for the regular files and symlinks among `paths`, in input
    order with duplicates merged (special files, directories included, are skipped; a missing path raises
    `OSError` for the first one in input order); `save()` writes the file if anything changed. Semantics:

    * an entry is used only if its (size, mtime_ns, ctime_ns, inode) equal the path's `lstat`;
    * a hashed file is stored only if its mtime and ctime are more than 2 s in the past (racy-clean protection),
      and never if its path contains a newline;
    * `save` writes only if an entry was added, changed or dropped, atomically (temp file + rename).

    File format (identical bytes from both implementations, so either reads the other's): the header line
    `polybuild-statcache 1`, then one line per entry, sorted by the path's bytes:
    `mode digest size mtime_ns ctime_ns inode path`, with mode one of 100644/100755/120000, digest 64 lowercase
    hex, integers in canonical decimal, the path non-empty and encoded as UTF-8 with surrogateescape. A file with
    another header or any malformed line is ignored as a whole (a damaged cache only costs re-hashing).

    The native core's `StatCache` is used when available (same `_native()` switch and `POLYBUILD_NO_NATIVE`):
    it stats and hashes in parallel without the GIL. Both are thread-safe.
    """

    def __init__(self, file: StrPath) -> None:
        self.file = os.fspath(file)
        native = _native()
        native_cls = getattr(native, "StatCache", None)  # Unix only
        self._impl: _StatCacheImpl = native_cls(self.file) if native_cls is not None else _PyStatCache(self.file)

    @property
    def backend(self) -> str:
        """Which implementation this cache uses: "native" or "python"."""
        return "python" if isinstance(self._impl, _PyStatCache) else "native"

    def entries(self, root: StrPath, paths: Sequence[str]) -> dict[str, tuple[str, str]]:
        """path -> (mode, digest) for the regular files and symlinks among `paths` (special files are skipped)."""
        return self._impl.entries(os.fspath(root), _as_list(paths))

    def save(self) -> None:
        """Write the cache file if anything changed, atomically (temp file + rename)."""
        self._impl.save()


class _PyStatCache:
    """Pure-Python `StatCache`; the native core's class has the same interface and semantics."""

    def __init__(self, file: str) -> None:
        self.file = file
        self._entries: dict[str, tuple[_Signature, tuple[str, str]]] = {}
        self._dirty = False
        self._lock = threading.Lock()
        try:
            with open(file, "rb") as f:
                self._entries = _parse_statcache(f.read())
        except OSError:
            pass

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self, root: str, paths: list[str]) -> dict[str, tuple[str, str]]:
        out: dict[str, tuple[str, str]] = {}
        misses: list[tuple[str, str, os.stat_result]] = []
        for path in dict.fromkeys(paths):
            full = os.path.join(root, path)
            st = os.lstat(full)
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                continue
            cached = self._entries.get(path)
            if cached and cached[0] == _signature(st):
                out[path] = cached[1]
            else:
                out[path] = ("", "")  # placeholder, keeps the input order
                misses.append((path, full, st))
        if not misses:
            return out
        now = time.time_ns()
        hashed = _py_hash_stated([full for _, full, _ in misses], [st for _, _, st in misses])
        with self._lock:
            for (path, _, st), entry in zip(misses, hashed, strict=True):
                out[path] = entry
                if not racy(st.st_mtime_ns, st.st_ctime_ns, now) and "\n" not in path:
                    new = (_signature(st), entry)
                    changed = self._entries.get(path) != new
                    self._entries[path] = new
                else:
                    changed = self._entries.pop(path, None) is not None
                self._dirty |= changed
        return out

    def save(self) -> None:
        with self._lock:
            if not self._dirty:
                return
            write_atomic(self.file, _serialize_statcache(self._entries), durable=False)  # a loss costs re-hashing
            self._dirty = False


def _signature(st: os.stat_result) -> _Signature:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _encode_path(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape")


def _parse_statcache(data: bytes) -> dict[str, tuple[_Signature, tuple[str, str]]]:
    """The entries of a stat cache file; empty if it is not one (another header, any malformed line)."""
    entries: dict[str, tuple[_Signature, tuple[str, str]]] = {}
    if not data.startswith(_STATCACHE_HEADER):
        return entries
    body = data[len(_STATCACHE_HEADER) :]
    if not body:
        return entries
    if not body.endswith(b"\n"):
        return entries  # truncated
    for line in body[:-1].split(b"\n"):
        m = _STATCACHE_LINE.fullmatch(line)
        if m is None:
            return {}
        mode, digest, size, mtime, ctime, ino, path = m.groups()
        try:
            sig = (_int(size, _U64), _int(mtime, _I128), _int(ctime, _I128), _int(ino, _U64))
        except ValueError:
            return {}
        entries[path.decode("utf-8", "surrogateescape")] = (sig, (mode.decode(), digest.decode()))
    return entries


def _int(field: bytes, bounds: tuple[int, int]) -> int:
    """A canonical decimal integer (as f"{n}" writes it) within [lo, hi)."""
    value = int(field)
    if str(value).encode() != field or not bounds[0] <= value < bounds[1]:
        raise ValueError(field)
    return value


def _serialize_statcache(entries: dict[str, tuple[_Signature, tuple[str, str]]]) -> bytes:
    lines = [_STATCACHE_HEADER]
    for key, path in sorted((_encode_path(p), p) for p in entries):
        (size, mtime, ctime, ino), (mode, digest) = entries[path]
        lines.append(f"{mode} {digest} {size} {mtime} {ctime} {ino} ".encode() + key + b"\n")
    return b"".join(lines)
