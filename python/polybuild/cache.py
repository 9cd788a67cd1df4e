"""Task results in the store: saving a task's outputs under its key, and restoring them (verified) on a hit."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from polybuild.store import MANIFEST_FORMAT, CorruptEntry, LocalStore, sha256_file, warn

if TYPE_CHECKING:
    from polybuild.remote import RemoteCache


@dataclass
class Output:
    """One file a task produced: where it lives (relative to the task's output base) and its content digest."""

    path: str
    sha256: str
    size: int
    mode: int


def _manifest(key: str, task_id: str, outputs: list[Output], log_digest: str | None) -> dict:
    return {
        "format": MANIFEST_FORMAT,
        "key": key,
        "task": task_id,
        "created": int(time.time()),
        "artifacts": [{"path": o.path, "sha256": o.sha256, "size": o.size, "mode": o.mode} for o in outputs],
        "log": log_digest,
    }


class TaskCache:
    """The local store, backed by an optional remote cache (read first on a local miss; written when allowed)."""

    def __init__(self, store: LocalStore, remote: RemoteCache | None = None) -> None:
        self.store = store
        self.remote = remote

    def save(self, key: str, task_id: str, base: Path, outputs: list[Output], log: Path | None) -> None:
        """Blobs first, manifest last, each atomically: readers never see an entry with missing content."""
        for out in outputs:
            self.store.put_blob(out.sha256, source=base / out.path)
        log_blob = None
        if log is not None and log.is_file():
            data = log.read_bytes()
            log_blob = (hashlib.sha256(data).hexdigest(), len(data))
            self.store.put_blob(log_blob[0], data=data)
        self.store.put_manifest(key, _manifest(key, task_id, outputs, log_blob[0] if log_blob else None))
        if self.remote is not None:
            from polybuild.remote import RemoteFile

            files = [RemoteFile(o.path, o.sha256, o.size, bool(o.mode & 0o111)) for o in outputs]
            self.remote.push(key, files, log_blob, self.store)

    def _lookup(self, key: str, task_id: str) -> dict | None:
        manifest = self.store.get_manifest(key)
        if manifest is None and self.remote is not None:
            fetched = self.remote.fetch(key, self.store)
            if fetched is not None:
                files, log_digest = fetched
                outputs = [Output(f.path, f.sha256, f.size, 0o755 if f.executable else 0o644) for f in files]
                manifest = _manifest(key, task_id, outputs, log_digest)
                self.store.put_manifest(key, manifest)
        return manifest

    def restore(self, key: str, task_id: str, base: Path, log: Path,
                unchanged: Callable[[Path, str], bool] | None = None) -> list[Output] | None:
        """Put the cached outputs in place (skipping files already identical); None on a miss or bad entry.

        `unchanged(path, sha256)` says whether a file already has that content (default: hash it)."""
        same = unchanged or _same_content
        manifest = self._lookup(key, task_id)
        if manifest is None:
            return None
        outputs = [Output(a["path"], a["sha256"], a["size"], a["mode"]) for a in manifest["artifacts"]]
        digests = [o.sha256 for o in outputs] + ([manifest["log"]] if manifest.get("log") else [])
        if any(not self.store.has_blob(d) for d in digests):
            warn(f"cache entry for {task_id} is incomplete (a blob is missing); dropped, rebuilding")
            self.store.drop(key)
            return None
        try:
            for out in outputs:
                dest = base / out.path
                if not same(dest, out.sha256):
                    self.store.copy_out(out.sha256, dest, out.mode)
            log_digest = manifest.get("log")
            if log_digest and not same(log, log_digest):
                self.store.copy_out(log_digest, log, 0o644)
        except CorruptEntry as exc:
            warn(f"cache entry for {task_id} is corrupt ({exc}); dropped, rebuilding")
            self.store.drop(key, digests)
            return None
        return outputs


def _same_content(path: Path, digest: str) -> bool:
    try:
        return sha256_file(path) == digest
    except OSError:
        return False


def describe(path: Path, base: Path) -> Output:
    """An output file as the cache records it."""
    st = path.stat()
    return Output(path.relative_to(base).as_posix(), sha256_file(path), st.st_size, st.st_mode & 0o777)
