"""The local content-addressed store: blobs by sha256 (`cas/`) and an action cache mapping keys to output
manifests (`ac.sqlite`), the same split as Bazel's remote cache so a remote one can sit behind it.

Blobs are written as a temp file plus rename; manifests are rows of one SQLite database in WAL mode (like Pants'
LMDB store), so a cold build of a thousand small tasks, whose outputs live inline in their manifests, creates no
file per task in the cache, and concurrent builds share it safely. A manifest is written after its blobs, every
restore verifies the digest, and a corrupt entry (or database) is dropped and rebuilt with a warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite3

MANIFEST_FORMAT = 2  # 2: small files inline


class CorruptEntry(Exception):
    """A cache entry whose content does not match its digest."""


@dataclass
class Stats:
    entries: int
    blobs: int
    bytes: int


class ActionCache:
    """key -> manifest (JSON) and when it was last used, in `ac.sqlite`. Recency is remembered in memory and written
    in one transaction by `flush`, so a run of cache hits does not write per hit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._used: set[str] = set()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._open()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        import sqlite3

        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return self._connect()
        except sqlite3.OperationalError:  # locked or unwritable: not corruption
            raise
        except sqlite3.DatabaseError as exc:
            warn(f"the action cache {self.path} is unreadable ({exc}); starting a new one")
            self.path.replace(self.path.with_name(f"{self.path.name}.corrupt-{uuid.uuid4().hex[:8]}"))
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        import sqlite3

        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # a crash may lose the last entries, never corrupt one
            conn.execute("CREATE TABLE IF NOT EXISTS ac (key TEXT PRIMARY KEY, manifest BLOB NOT NULL, "
                         "used INTEGER NOT NULL)")
        except BaseException:
            conn.close()
            raise
        return conn

    def get(self, key: str) -> bytes | None:
        with self._lock:
            row = self._db().execute("SELECT manifest FROM ac WHERE key = ?", (key,)).fetchone()
            if row is not None:
                self._used.add(key)
        return row and row[0]

    def put(self, key: str, manifest: bytes) -> None:
        with self._lock:
            self._db().execute("INSERT OR REPLACE INTO ac VALUES (?, ?, ?)", (key, manifest, time.time_ns()))

    def has(self, key: str) -> bool:
        with self._lock:
            return self._db().execute("SELECT 1 FROM ac WHERE key = ?", (key,)).fetchone() is not None

    def drop(self, keys: list[str]) -> None:
        with self._lock:
            self._db().executemany("DELETE FROM ac WHERE key = ?", [(k,) for k in keys])

    def entries(self) -> list[tuple[str, bytes]]:
        """Every (key, manifest), most recently used first."""
        with self._lock:
            return self._db().execute("SELECT key, manifest FROM ac ORDER BY used DESC").fetchall()

    def flush(self) -> None:
        """Write the recency of this run's hits (for gc), in one transaction."""
        with self._lock:
            if self._used and self._conn is not None:
                now = time.time_ns()
                with self._conn:
                    self._conn.execute("BEGIN")
                    self._conn.executemany("UPDATE ac SET used = ? WHERE key = ?", [(now, k) for k in self._used])
                self._used.clear()


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.ac = ActionCache(root / "ac.sqlite")
        self._dirs: set[Path] = set()  # fan-out directories known to exist: one mkdir per run, not per write

    # 16 fan-out directories each: a fresh store creates few directories, and none holds too many files.
    def _blob(self, digest: str) -> Path:
        return self.root / "cas" / digest[:1] / digest

    def _ensure_dir(self, path: Path) -> None:
        if path not in self._dirs:
            path.mkdir(parents=True, exist_ok=True)
            self._dirs.add(path)

    def _write_atomic(self, dest: Path, data: bytes | None = None, source: Path | None = None) -> None:
        self._ensure_dir(dest.parent)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            if source is not None:
                shutil.copyfile(source, tmp)
            else:
                tmp.write_bytes(data or b"")
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def has_blob(self, digest: str) -> bool:
        return self._blob(digest).is_file()

    def put_blob(self, digest: str, source: Path | None = None, data: bytes | None = None) -> None:
        if not self.has_blob(digest):
            self._write_atomic(self._blob(digest), data=data, source=source)

    def read_blob(self, digest: str) -> bytes | None:
        try:
            return self._blob(digest).read_bytes()
        except FileNotFoundError:
            return None

    def put_manifest(self, key: str, manifest: dict[str, Any]) -> None:
        """Store the manifest last, after its blobs: a reader that finds it finds everything it names."""
        self.ac.put(key, json.dumps(manifest, sort_keys=True).encode())

    def has_manifest(self, key: str) -> bool:
        return self.ac.has(key)

    def get_manifest(self, key: str) -> dict[str, Any] | None:
        data = self.ac.get(key)
        if data is None:
            return None
        try:
            manifest = json.loads(data)
        except ValueError:
            warn(f"cache entry {key[:12]} is unreadable; dropped")
            self.drop(key)
            return None
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            return None
        return manifest

    def drop(self, key: str, digests: list[str] = ()) -> None:
        self.ac.drop([key])
        for d in digests:
            self._blob(d).unlink(missing_ok=True)

    def flush(self) -> None:
        """End of a run: record which entries it used."""
        self.ac.flush()

    def copy_out(self, digest: str, dest: Path, mode: int, content: bytes | None = None) -> None:
        """Write the blob, or `content` (the manifest's inline copy), to `dest` atomically, verifying its digest on
        the way; raise CorruptEntry if it differs."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
        h = hashlib.sha256()
        try:
            with open(tmp, "wb") as fout:
                for chunk in _chunks(self._blob(digest)) if content is None else [content]:
                    h.update(chunk)
                    fout.write(chunk)
            if h.hexdigest() != digest:
                raise CorruptEntry(f"blob {digest[:12]} has content {h.hexdigest()[:12]}")
            os.chmod(tmp, mode)
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def stats(self) -> Stats:
        manifests = self.ac.entries()
        blobs = list((self.root / "cas").glob("*/*"))
        size = sum(len(m) for _, m in manifests) + sum(p.stat().st_size for p in blobs)
        return Stats(len(manifests), len(blobs), size)

    def gc(self, max_bytes: int) -> tuple[int, int]:
        """Drop least recently used entries until the store (manifests, which hold small files inline, and blobs)
        fits in `max_bytes`; returns (entries, blobs) removed."""
        blobs = {p.name: (p, p.stat().st_size) for p in (self.root / "cas").glob("*/*")}
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
                path.unlink(missing_ok=True)
                removed_blobs += 1
        return len(dropped), removed_blobs


def _entry_blobs(manifest: bytes) -> set[str] | None:
    """The blobs a manifest needs (outputs and log not held inline); None if unreadable."""
    try:
        entry = json.loads(manifest)
        digests = {a["sha256"] for a in entry["artifacts"]} | ({entry["log"]} if entry["log"] else set())
        return digests - set(entry["inline"])
    except (ValueError, KeyError, TypeError):
        return None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    for chunk in _chunks(path):
        h.update(chunk)
    return h.hexdigest()


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        yield from iter(lambda: f.read(1 << 20), b"")


def warn(message: str) -> None:
    print(f"polybuild: warning: {message}", file=sys.stderr, flush=True)


def parse_size(text: str) -> int:
    """'500M', '2G', '1024' -> bytes."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    text = text.strip().lower().removesuffix("b").removesuffix("i")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)
