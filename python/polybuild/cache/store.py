"""The local content-addressed store: blobs by sha256 (`cas/`) and an action cache mapping keys to output
manifests (`ac.sqlite`), the same split as Bazel's remote cache so a remote one can sit behind it.

Blobs are written as a temp file plus rename; manifests are rows of one SQLite database in WAL mode (like Pants'
LMDB store), so a cold build of a thousand small tasks, whose outputs live inline in their manifests, creates no
file per task in the cache, and concurrent builds share it safely. A manifest is written after its blobs.

Everything read back is treated as data from outside: a manifest carries its own sha256 and is checked against the
key it was stored under and its schema (digests are 64 hex characters before they name a file, paths are relative
and normalised, modes are permission bits), every restore verifies each file's digest, and a damaged entry, blob or
database is set aside with one warning and rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, TypeVar

from polybuild.support.fs import atomic_path, atomic_writer, write_atomic

if TYPE_CHECKING:
    import sqlite3

MANIFEST_FORMAT = 3  # 2: small files inline; 3: sealed with their own sha256
_T = TypeVar("_T")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class CorruptEntry(Exception):
    """A cache entry whose content does not match its digest, or that is not one the store could have written."""


@dataclass
class Stats:
    entries: int
    blobs: int
    bytes: int


def is_digest(value: object) -> bool:
    """A sha256 as blobs are named: 64 lowercase hex characters, so it can never name another path."""
    return isinstance(value, str) and _SHA256.fullmatch(value) is not None


def is_safe_path(value: object) -> bool:
    """A relative, normalised POSIX path (no empty, `.` or `..` part), which stays inside the directory it is
    joined to."""
    return (isinstance(value, str) and bool(value) and "\0" not in value and not value.startswith("/")
            and all(part not in ("", ".", "..") for part in value.split("/")))


def clashing_paths(paths: list[str]) -> bool:
    """Whether a path is listed twice, or is also the directory of another: no build can produce both."""
    unique = set(paths)
    return len(unique) != len(paths) or any(p[:i] in unique for p in paths for i, c in enumerate(p) if c == "/")


def seal_manifest(manifest: dict[str, Any]) -> bytes:
    """A manifest as stored: the sha256 of its JSON, a space, the JSON, a newline, then the inline files' JSON
    (digest -> base64). The sealed part names the inline files by digest and each is verified by it when used, so a
    changed byte anywhere makes a miss, and a hit whose files are in place never reads the inline part."""
    contents = manifest.get("inline") if isinstance(manifest, dict) else None
    meta = {**manifest, "inline": sorted(contents)} if isinstance(contents, dict) else manifest
    body = json.dumps(meta, sort_keys=True).encode()  # ASCII, no newline
    return hashlib.sha256(body).hexdigest().encode() + b" " + body + b"\n" + json.dumps(contents or {}).encode()


def unseal_manifest(data: object) -> tuple[Any, bytes]:
    """(the sealed part, parsed; the inline files' JSON, unparsed); CorruptEntry when the sealed part does not match
    its digest or is not JSON."""
    if not isinstance(data, bytes) or data[64:65] != b" ":
        raise CorruptEntry("it is not sealed")
    body, _, contents = data[65:].partition(b"\n")
    if hashlib.sha256(body).hexdigest().encode() != data[:64]:
        raise CorruptEntry("its content does not match its digest")
    try:
        return json.loads(body), contents
    except ValueError:
        raise CorruptEntry("it is not JSON") from None


def inline_files(contents: bytes) -> dict[str, str]:
    """The inline files' part of a manifest (digest -> base64); CorruptEntry if it is not that."""
    try:
        files = json.loads(contents)
    except ValueError:
        files = None
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise CorruptEntry("its inline files are unreadable")
    return files


def open_manifest(data: object) -> dict[str, Any]:
    """A whole stored manifest, inline files included (for tools and tests; builds read the parts lazily)."""
    meta, contents = unseal_manifest(data)
    return {**meta, "inline": inline_files(contents)}


def manifest_problem(manifest: object, key: str) -> str | None:
    """What makes a manifest (of the current format) one the store could not have written, or None."""
    if not isinstance(manifest, dict):
        return "it is not an object"
    if manifest.get("key") != key:
        return "it was stored under another key"
    artifacts, inline, log = manifest.get("artifacts"), manifest.get("inline"), manifest.get("log")
    if not isinstance(artifacts, list) or not isinstance(inline, list) or not isinstance(manifest.get("task"), str):
        return "its fields have the wrong types"
    if not (log is None or is_digest(log)) or not all(is_digest(d) for d in inline):
        return "a digest is malformed"
    for a in artifacts:
        if not (isinstance(a, dict) and is_safe_path(a.get("path")) and is_digest(a.get("sha256"))
                and _is_count(a.get("size")) and _is_count(a.get("mode")) and not a["mode"] & ~0o777):
            return f"an artifact is malformed or leaves the output directory: {json.dumps(a)[:120]}"
    if clashing_paths([a["path"] for a in artifacts]):
        return "an artifact path is listed twice, or as a file and a directory"
    return None


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class BlobSink(Protocol):
    """Where a remote cache's downloads go: the store, or a caller that keeps small blobs in memory (the same
    verification either way)."""

    def has_blob(self, digest: str) -> bool: ...

    def blob_writer(self, digest: str, size: int) -> contextlib.AbstractContextManager[BlobWriter]: ...


class ActionCache:
    """key -> manifest and when it was last used, in `ac.sqlite`. Recency is remembered in memory and written in one
    transaction by `flush`, so a run of cache hits does not write per hit.

    A damaged database (found when it opens or by any later query) is set aside as `ac.sqlite.corrupt-*`, with its
    WAL files, and the operation runs again on a new one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._inode: int | None = None  # of the file the connection opened: set aside only that one
        self._used: set[str] = set()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = self._connect()
        return self._conn

    def _connect(self) -> sqlite3.Connection:
        import sqlite3

        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        try:
            self._inode = os.stat(self.path).st_ino
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # a crash may lose the last entries, never corrupt one
            conn.execute("CREATE TABLE IF NOT EXISTS ac (key TEXT PRIMARY KEY, manifest BLOB NOT NULL, "
                         "used INTEGER NOT NULL)")
        except BaseException:
            conn.close()
            raise
        return conn

    def _guarded(self, op: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run `op` under the lock; if the database turns out to be damaged, set it aside and run `op` on a new
        one (locked or unwritable is not damage: that error goes up)."""
        import sqlite3

        with self._lock:
            try:
                return op(self._db())
            except sqlite3.OperationalError:
                raise
            except sqlite3.DatabaseError as exc:
                self._set_aside(exc)
            return op(self._db())

    def _set_aside(self, exc: Exception) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._used.clear()
        try:
            current = os.stat(self.path).st_ino
        except FileNotFoundError:
            return
        if current != self._inode:  # another build has set it aside already
            return
        aside = f"{self.path.name}.corrupt-{uuid.uuid4().hex[:8]}"
        warn(f"the action cache {self.path} is damaged ({exc}); set aside as {aside}, starting a new one")
        for suffix in ("-wal", "-shm", ""):  # the WAL first: never leave it next to a new database
            with contextlib.suppress(FileNotFoundError):
                os.replace(f"{self.path}{suffix}", self.path.with_name(aside + suffix))

    def get(self, key: str) -> object:
        """The stored manifest (bytes, unless the row was tampered with), or None."""
        def op(db: sqlite3.Connection) -> object:
            row = db.execute("SELECT manifest FROM ac WHERE key = ?", (key,)).fetchone()
            if row is not None:
                self._used.add(key)
            return row and row[0]

        return self._guarded(op)

    def put(self, key: str, manifest: bytes) -> None:
        self._guarded(lambda db: db.execute("INSERT OR REPLACE INTO ac VALUES (?, ?, ?)",
                                            (key, manifest, time.time_ns())))

    def drop(self, keys: list[str]) -> None:
        self._guarded(lambda db: db.executemany("DELETE FROM ac WHERE key = ?", [(k,) for k in keys]))

    def entries(self) -> list[tuple[str, object]]:
        """Every (key, manifest), most recently used first."""
        return self._guarded(lambda db: db.execute("SELECT key, manifest FROM ac ORDER BY used DESC").fetchall())

    def flush(self) -> None:
        """Write the recency of this run's hits (for gc), in one transaction."""
        def op(db: sqlite3.Connection) -> None:
            now = time.time_ns()
            with db:
                db.execute("BEGIN")
                db.executemany("UPDATE ac SET used = ? WHERE key = ?", [(now, k) for k in self._used])
            self._used.clear()

        if self._used and self._conn is not None:
            self._guarded(op)


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.ac = ActionCache(root / "ac.sqlite")

    # 16 fan-out directories each: a fresh store creates few directories, and none holds too many files.
    def _blob(self, digest: str) -> Path:
        if not is_digest(digest):
            raise CorruptEntry(f"not a sha256: {digest!r:.80}")
        return self.root / "cas" / digest[:1] / digest

    def _write_atomic(self, dest: Path, data: bytes | None = None, source: Path | None = None) -> None:
        """Durably: a blob the store names is whole, even after a power loss."""
        if source is not None:
            with atomic_path(dest) as tmp:
                shutil.copyfile(source, tmp)  # the kernel's copy (sendfile), not a read/write loop
        else:
            write_atomic(dest, data or b"")

    def has_blob(self, digest: str) -> bool:
        return self._blob(digest).is_file()

    def put_blob(self, digest: str, source: Path | None = None, data: bytes | None = None) -> None:
        path = self._blob(digest)
        if not path.is_file():
            _remove(path)  # a directory or a dangling link where the blob belongs
            self._write_atomic(path, data=data, source=source)

    @contextlib.contextmanager
    def blob_writer(self, digest: str, size: int) -> Iterator[BlobWriter]:
        """A file to stream a blob from outside (a download) into, hashed as it is written: it becomes the blob
        when the block ends if it holds exactly `size` bytes of that sha256, else CorruptEntry and nothing is
        stored. The blob never has to fit in memory."""
        path = self._blob(digest)
        if not path.is_file():
            _remove(path)  # a directory or a dangling link where the blob belongs
        with atomic_writer(path) as f:
            writer = BlobWriter(f, digest, size)
            yield writer
            writer.verify()

    def put_manifest(self, key: str, manifest: dict[str, Any]) -> None:
        """Store the manifest last, after its blobs: a reader that finds it finds everything it names."""
        self.ac.put(key, seal_manifest(manifest))

    def get_manifest(self, key: str) -> dict[str, Any] | None:
        """The manifest stored under `key`, checked, with `inline` the digests of its inline files and
        `inline_files` their JSON, unparsed (`inline_files()` reads it); None on a miss. A damaged one is dropped
        with a warning."""
        data = self.ac.get(key)
        if data is None or (isinstance(data, bytes) and data.startswith(b"{")):  # none, or an older polybuild's
            return None
        try:
            manifest, contents = unseal_manifest(data)
        except CorruptEntry as exc:
            problem = str(exc)
        else:
            if isinstance(manifest, dict) and manifest.get("format") != MANIFEST_FORMAT:
                return None
            problem = manifest_problem(manifest, key)
            if problem is None:
                return {**manifest, "inline_files": contents}
        warn(f"cache entry {key[:12]} is unreadable ({problem}); dropped, rebuilding")
        self.drop(key)
        return None

    def drop(self, key: str, digests: Iterable[str] = ()) -> None:
        self.ac.drop([key])
        for d in digests:
            _remove(self._blob(d))

    def flush(self) -> None:
        """End of a run: record which entries it used."""
        self.ac.flush()

    def copy_out(self, digest: str, dest: Path, mode: int, content: bytes | None = None) -> None:
        """Write the blob, or `content` (the manifest's inline copy), to `dest` atomically, verifying its digest on
        the way; raise CorruptEntry if it differs or the blob cannot be read."""
        source = self._open_blob(digest) if content is None else None
        h = hashlib.sha256()
        try:
            with atomic_writer(dest, mode=mode & 0o777) as fout:  # a published artifact: durable
                for chunk in _read_chunks(source, digest) if source else [content or b""]:
                    h.update(chunk)
                    fout.write(chunk)
                if h.hexdigest() != digest:
                    raise CorruptEntry(f"blob {digest[:12]} has content {h.hexdigest()[:12]}")
        finally:
            if source:
                source.close()

    def _open_blob(self, digest: str) -> BinaryIO:
        """The blob opened for reading, if it is a regular file (never through a link, never a FIFO)."""
        try:
            fd = os.open(self._blob(digest), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            raise CorruptEntry(f"blob {digest[:12]} cannot be read ({exc.strerror})") from None
        f = os.fdopen(fd, "rb")
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            f.close()
            raise CorruptEntry(f"blob {digest[:12]} is not a file")
        return f

    def stats(self) -> Stats:
        manifests = self.ac.entries()
        blobs = list((self.root / "cas").glob("*/*"))
        size = sum(len(m) for _, m in manifests if isinstance(m, bytes)) + sum(p.lstat().st_size for p in blobs)
        return Stats(len(manifests), len(blobs), size)

    def gc(self, max_bytes: int) -> tuple[int, int]:
        """Drop least recently used entries until the store (manifests, which hold small files inline, and blobs)
        fits in `max_bytes`; returns (entries, blobs) removed."""
        blobs = {p.name: (p, p.lstat().st_size) for p in (self.root / "cas").glob("*/*")}
        kept: set[str] = set()
        used = 0
        dropped = []
        for key, data in self.ac.entries():  # newest first: keep while they fit
            entry = _entry_blobs(data)
            extra = len(data) + sum(blobs[d][1] for d in entry - kept if d in blobs) if entry is not None else 0
            if entry is None or used + extra > max_bytes:
                dropped.append(key)
                continue
            kept |= entry
            used += extra
        self.ac.drop(dropped)
        removed_blobs = 0
        for name, (path, _) in blobs.items():
            if name not in kept:
                _remove(path)
                removed_blobs += 1
        return len(dropped), removed_blobs


class BlobWriter:
    """Where a blob's bytes go as they arrive: never more than its declared size, and its digest checked last."""

    def __init__(self, out: BinaryIO, digest: str, size: int) -> None:
        self._out = out
        self._digest = digest
        self._size = size
        self._written = 0
        self._hash = hashlib.sha256()

    def write(self, chunk: bytes) -> None:
        self._written += len(chunk)
        if self._written > self._size:
            raise CorruptEntry(f"blob {self._digest[:12]} is larger than its {self._size} bytes")
        self._hash.update(chunk)
        self._out.write(chunk)

    def verify(self) -> None:
        if self._written != self._size:
            raise CorruptEntry(f"blob {self._digest[:12]} has {self._written} bytes, not {self._size}")
        if self._hash.hexdigest() != self._digest:
            raise CorruptEntry(f"blob {self._digest[:12]} has content {self._hash.hexdigest()[:12]}")


def _entry_blobs(data: object) -> set[str] | None:
    """The blobs a stored manifest needs (outputs and log not held inline); None if unreadable."""
    try:
        entry = unseal_manifest(data)[0]
        digests = {a["sha256"] for a in entry["artifacts"]} | ({entry["log"]} if entry["log"] else set())
        return digests - set(entry["inline"])
    except (CorruptEntry, KeyError, TypeError):
        return None


def _remove(path: Path) -> None:
    """Remove whatever is at `path` in the store (a file, a link, or a directory where a blob belongs)."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    except OSError as exc:
        warn(f"cannot remove {path} from the cache ({exc.strerror or exc})")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    for chunk in _chunks(path):
        h.update(chunk)
    return h.hexdigest()


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        yield from iter(lambda: f.read(1 << 20), b"")


def _read_chunks(f: BinaryIO, digest: str) -> Iterator[bytes]:
    try:
        yield from iter(lambda: f.read(1 << 20), b"")
    except OSError as exc:
        raise CorruptEntry(f"blob {digest[:12]} cannot be read ({exc.strerror})") from None


def warn(message: str) -> None:
    print(f"polybuild: warning: {message}", file=sys.stderr, flush=True)


def parse_size(text: str) -> int:
    """'500M', '2G', '1024' -> bytes."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    text = text.strip().lower().removesuffix("b").removesuffix("i")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)
