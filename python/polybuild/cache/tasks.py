"""Task results in the store: saving a task's outputs under its key, and restoring them (verified) on a hit.

Small files (outputs and logs) live inside the entry's manifest instead of as blobs of their own, so an entry of
small files is one row of the action cache and no file at all. Creating files is most of what saving costs.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from polybuild.cache.store import (
    MANIFEST_FORMAT,
    BlobWriter,
    CorruptEntry,
    LocalStore,
    inline_files,
    sha256_file,
    warn,
)

if TYPE_CHECKING:
    from polybuild.cache.remote import RemoteCache

INLINE_MAX = 64 * 1024  # a file up to this size is kept in the manifest...
INLINE_BUDGET = 1024 * 1024  # ...while the manifest's inline files add up to at most this


@dataclass
class Output:
    """One file a task produced: where it lives (relative to the task's output base) and its content digest."""

    path: str
    sha256: str
    size: int
    mode: int
    content: bytes | None = field(default=None, repr=False, compare=False)  # read while hashing, if small


def _manifest(key: str, task_id: str, outputs: list[Output], log_digest: str | None,
              inline: dict[str, str]) -> dict:
    return {
        "format": MANIFEST_FORMAT,
        "key": key,
        "task": task_id,
        "created": int(time.time()),
        "artifacts": [{"path": o.path, "sha256": o.sha256, "size": o.size, "mode": o.mode} for o in outputs],
        "log": log_digest,
        "inline": inline,  # digest -> base64 content, for the small files
    }


class TaskCache:
    """The local store, backed by an optional remote cache (read first on a local miss; written when allowed)."""

    def __init__(self, store: LocalStore, remote: RemoteCache | None = None) -> None:
        self.store = store
        self.remote = remote

    def save(self, key: str, task_id: str, base: Path, outputs: list[Output], log: bytes | None) -> None:
        """Blobs first, manifest last, each atomically: readers never see an entry with missing content."""
        contents: dict[str, bytes] = {}  # what the manifest holds inline
        budget = INLINE_BUDGET
        for out in outputs:
            if out.content is not None and out.size <= min(INLINE_MAX, budget):
                contents[out.sha256] = out.content
                budget -= out.size
            else:
                self.store.put_blob(out.sha256, source=base / out.path)
        log_blob = None
        if log is not None:
            log_blob = (hashlib.sha256(log).hexdigest(), len(log))
            if len(log) <= min(INLINE_MAX, budget):
                contents[log_blob[0]] = log
            else:
                self.store.put_blob(log_blob[0], data=log)
        inline = {digest: base64.b64encode(data).decode() for digest, data in contents.items()}
        self.store.put_manifest(key, _manifest(key, task_id, outputs, log_blob[0] if log_blob else None, inline))
        if self.remote is not None:
            from polybuild.cache.remote import RemoteFile

            files = [RemoteFile(o.path, o.sha256, o.size, bool(o.mode & 0o111)) for o in outputs]
            if log_blob is not None and log is not None:
                contents[log_blob[0]] = log
            self.remote.push(key, files, log_blob,
                             lambda d: contents[d] if d in contents else _source(base, outputs, d))

    def _lookup(self, key: str, task_id: str) -> dict | None:
        manifest = self.store.get_manifest(key)
        if manifest is None and self.remote is not None:
            downloads = _Inlining(self.store)
            fetched = self.remote.fetch(key, downloads)
            if fetched is not None:
                files, log_digest = fetched
                outputs = [Output(f.path, f.sha256, f.size, 0o755 if f.executable else 0o644) for f in files]
                inline = {digest: base64.b64encode(data).decode() for digest, data in downloads.kept.items()}
                self.store.put_manifest(key, _manifest(key, task_id, outputs, log_digest, inline))
                manifest = self.store.get_manifest(key)
        return manifest

    def restore(self, key: str, task_id: str, base: Path, log: Path,
                unchanged: Callable[[Path, str], bool] | None = None) -> tuple[list[Output], bool] | None:
        """Put the cached outputs in place (skipping files already identical) and the log at `log`, if the task
        kept one; (outputs, whether a log was kept), or None on a miss or bad entry.

        `unchanged(path, sha256)` says whether a file already has that content (default: hash it)."""
        same = unchanged or _same_content
        manifest = self._lookup(key, task_id)
        if manifest is None:
            return None
        outputs = [Output(a["path"], a["sha256"], a["size"], a["mode"]) for a in manifest["artifacts"]]
        inline = set(manifest["inline"])
        digests = [o.sha256 for o in outputs] + ([manifest["log"]] if manifest["log"] else [])
        if any(d not in inline and not self.store.has_blob(d) for d in digests):
            warn(f"cache entry for {task_id} is incomplete (a blob is missing); dropped, rebuilding")
            self.store.drop(key)
            return None
        try:
            places = [(base / o.path, o.sha256, o.mode) for o in outputs]
            if manifest["log"]:
                places.append((log, manifest["log"], 0o644))
            else:  # a silent task keeps no log; one left by an earlier failure of it would mislead
                log.unlink(missing_ok=True)
            contents: dict[str, str] | None = None  # read only if a file is not in place already
            for dest, digest, mode in places:
                if not same(dest, digest):
                    if digest in inline and contents is None:
                        contents = inline_files(manifest["inline_files"])
                    self.store.copy_out(digest, dest, mode, _decoded(contents.get(digest)) if contents else None)
        except CorruptEntry as exc:
            warn(f"cache entry for {task_id} is corrupt ({exc}); dropped, rebuilding")
            self.store.drop(key, [d for d in digests if d not in inline])
            return None
        return outputs, bool(manifest["log"])


class _Inlining:
    """The store as a remote fetch writes to it, except that blobs small enough to live in the entry's manifest are
    kept in memory (verified as they arrive, like every download): an entry of small files restored from a remote
    creates no file per blob, as one saved locally does not."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self.kept: dict[str, bytes] = {}
        self._budget = INLINE_BUDGET
        self._lock = threading.Lock()  # the remote downloads on several threads

    def has_blob(self, digest: str) -> bool:
        return self.store.has_blob(digest)

    @contextlib.contextmanager
    def blob_writer(self, digest: str, size: int) -> Iterator[BlobWriter]:
        with self._lock:
            inline = size <= min(INLINE_MAX, self._budget)
            if inline:
                self._budget -= size
        if not inline:
            with self.store.blob_writer(digest, size) as out:
                yield out
            return
        buffer = io.BytesIO()
        out = BlobWriter(buffer, digest, size)
        yield out
        out.verify()
        with self._lock:
            self.kept[digest] = buffer.getvalue()


def _source(base: Path, outputs: list[Output], digest: str) -> Path | None:
    """The output just built with that digest, to upload from (not the store's copy, which may be damaged); the
    remote streams it and checks it against the digest as it goes."""
    return next((base / o.path for o in outputs if o.sha256 == digest), None)


def _decoded(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise CorruptEntry("an inline file is not base64") from None


def _same_content(path: Path, digest: str) -> bool:
    try:
        return sha256_file(path) == digest
    except OSError:
        return False


def describe(path: Path, base: Path) -> Output:
    """An output file as the cache records it (a small one with its content, read once for hash and cache)."""
    st = path.stat()
    if st.st_size > INLINE_MAX:
        return Output(path.relative_to(base).as_posix(), sha256_file(path), st.st_size, st.st_mode & 0o777)
    content = path.read_bytes()
    return Output(path.relative_to(base).as_posix(), hashlib.sha256(content).hexdigest(), len(content),
                  st.st_mode & 0o777, content)
