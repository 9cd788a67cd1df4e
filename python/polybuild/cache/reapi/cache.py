"""The remote cache over REAPI: the same interface as the HTTP `RemoteCache` (fetch, push, `upload`).

A lookup asks the action cache for the key's Action (action.py); a hit downloads only the blobs the local store
lacks: BatchReadBlobs for those that fit a batch, ByteStream Read (streamed, never whole in memory) for larger
ones, every blob checked against its digest and size as the store's blob writer takes it. A miss is built
locally; with uploads enabled the outputs go up after it: FindMissingBlobs, then BatchUpdateBlobs or ByteStream
Write (streamed from the file) by size against the server's batch limit (GetCapabilities), then
UpdateActionResult, last, so an entry never names blobs the server lacks.

The server is not trusted: an entry is validated field by field (relative normalised paths, sha256 digests, no
directories or symlinks, exit code 0) and a blob that does not match its digest, or an entry naming a blob the
server does not have, is a miss with a warning. A server that is down or keeps failing costs one warning, then the
run goes on with the local cache only.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from polybuild.cache.reapi.action import action_for_key
from polybuild.cache.reapi.client import Capabilities, ReapiClient, ReapiUnavailable, batches, digest
from polybuild.cache.reapi.protos import remote_execution_pb2 as re
from polybuild.cache.remote import Content, RemoteFile
from polybuild.cache.store import BlobSink, BlobWriter, CorruptEntry, clashing_paths, is_digest, is_safe_path, warn
from polybuild.support.fs import atomic_writer

CHUNK = 1 << 20  # bytes read from a file at a time for an upload


class UnusableEntry(Exception):
    """An action-cache entry or blob that must not be used (a miss, with a warning)."""


class ReapiCache:
    def __init__(self, client: ReapiClient, shown: str, *, upload: bool = False) -> None:
        self.client = client
        self.shown = shown
        self.upload = upload
        self._down = threading.Event()
        self._lock = threading.Lock()
        self._caps: Capabilities | None = None

    @property
    def available(self) -> bool:
        """False once the server failed in this run."""
        return not self._down.is_set()

    def capabilities(self) -> Capabilities:
        with self._lock:
            if self._caps is None:
                self._caps = self.client.capabilities()
                if not self._caps.sha256:
                    raise ReapiUnavailable("the server does not support SHA256 digests")
            return self._caps

    def _give_up(self, exc: Exception) -> None:
        with self._lock:
            if not self._down.is_set():
                self._down.set()
                warn(f"remote cache {self.shown} is unavailable ({exc}); continuing with the local cache only")

    # -- reading -------------------------------------------------------------------------------------------------

    def fetch(self, key: str, store: BlobSink) -> tuple[list[RemoteFile], str | None] | None:
        """Download an entry's blobs `store` lacks into it (each verified by its blob writer); the entry's files and
        log digest, or None on a miss or when unavailable."""
        if self._down.is_set():
            return None
        try:
            limit = self.capabilities().batch_limit
            result = self.client.get_action_result(action_for_key(key).digest)
            if result is None:
                return None
            files, log = _parse_result(result)
            wanted = {d.hash: d for d in [_digest(f.sha256, f.size) for f in files] + ([log] if log else [])
                      if not store.has_blob(d.hash)}
            for group in batches([d for d in wanted.values() if d.size_bytes <= limit], limit):
                for hash_, data in self.client.batch_read(group).items():
                    if data is None:
                        raise UnusableEntry(f"it names the blob {hash_[:12]}, which the server does not have")
                    with store.blob_writer(hash_, wanted[hash_].size_bytes) as out:
                        out.write(data)
            for d in wanted.values():
                if d.size_bytes > limit:
                    with store.blob_writer(d.hash, d.size_bytes) as out:
                        self._read_into(d, out)
            return files, (log.hash if log else None)
        except ReapiUnavailable as exc:
            self._give_up(exc)
        except CorruptEntry as exc:
            warn(f"remote cache {self.shown} has an unusable entry for {key[:12]} (it does not match its digest: "
                 f"{exc}); ignored")
        except UnusableEntry as exc:
            warn(f"remote cache {self.shown} has an unusable entry for {key[:12]} ({exc}); ignored")
        return None

    def _read_into(self, blob: re.Digest, out: BlobWriter) -> None:
        if not self.client.read(blob, out.write):
            raise UnusableEntry(f"it names the blob {blob.hash[:12]}, which the server does not have")

    # -- writing -------------------------------------------------------------------------------------------------

    def push(self, key: str, files: list[RemoteFile], log: tuple[str, int] | None,
             content: Callable[[str], Content | None]) -> None:
        """Upload the missing blobs (`content` gives each by digest, as bytes or a file to stream), then the action
        result, if uploads are on."""
        if not self.upload or self._down.is_set():
            return
        try:
            action = action_for_key(key)
            known = {d.hash: data for d, data in action.blobs}
            blobs = [_digest(f.sha256, f.size) for f in files] + ([_digest(*log)] if log else [])
            changed = self.upload_missing(blobs + [d for d, _ in action.blobs],
                                          lambda h: known[h] if h in known else content(h))
            if changed:
                warn(f"the output {changed[:12]} changed since it was hashed; {key[:12]} not uploaded")
                return
            self.client.update_action_result(action.digest, _result(files, log))
        except ReapiUnavailable as exc:
            self._give_up(exc)

    def upload_missing(self, blobs: list[re.Digest], content: Callable[[str], Content | None]) -> str | None:
        """Upload the blobs the server lacks (FindMissingBlobs; batches up to the server's limit, ByteStream above
        it, streamed from a file), holding at most one batch in memory; the hash of a blob whose content no longer
        matches it (the caller then writes no entry naming it), else None."""
        limit = self.capabilities().batch_limit
        missing = self.client.find_missing(list({d.hash: d for d in blobs}.values()))
        for d in [d for d in missing if d.size_bytes > limit]:
            source = content(d.hash)
            if source is None or not _matches(source, d):  # hashed first: a write cannot be taken back
                return d.hash
            self.client.write(d, lambda source=source: _chunks(source))
        for group in batches([d for d in missing if d.size_bytes <= limit], limit):
            batch = []
            for d in group:
                source = content(d.hash)
                if source is None or not _matches(source, d):
                    return d.hash
                batch.append((d, b"".join(_chunks(source))))
            self.client.batch_update(batch)
        return None

    def download_to(self, blob: re.Digest, dest: Path, mode: int) -> None:
        """One blob into `dest`, atomically and verified as it arrives: a blob the server lacks or sends with other
        content (UnusableEntry) leaves `dest` as it was."""
        try:
            with atomic_writer(dest, mode=mode) as f:
                out = BlobWriter(f, blob.hash, blob.size_bytes)
                if blob.size_bytes > self.capabilities().batch_limit:
                    self._read_into(blob, out)
                else:
                    out.write(_present(blob, self.client.batch_read([blob])[blob.hash]))
                out.verify()
        except CorruptEntry as exc:
            raise UnusableEntry(f"an output does not match its digest ({exc})") from None

    def download(self, blob: re.Digest) -> bytes:
        """A small blob (a log, a Tree message), verified."""
        return _verified(blob, self.client.batch_read([blob])[blob.hash])


def _digest(sha256: str, size: int) -> re.Digest:
    return re.Digest(hash=sha256, size_bytes=size)


def _result(files: list[RemoteFile], log: tuple[str, int] | None) -> re.ActionResult:
    result = re.ActionResult(exit_code=0, output_files=[
        re.OutputFile(path=f.path, digest=_digest(f.sha256, f.size), is_executable=f.executable) for f in files])
    if log:
        result.stdout_digest.CopyFrom(_digest(*log))
    return result


def _present(expected: re.Digest, data: bytes | None) -> bytes:
    if data is None:
        raise UnusableEntry(f"it names the blob {expected.hash[:12]}, which the server does not have")
    return data


def _verified(expected: re.Digest, data: bytes | None) -> bytes:
    present = _present(expected, data)
    if len(present) != expected.size_bytes or digest(present).hash != expected.hash:
        raise UnusableEntry(f"the blob {expected.hash[:12]} does not match its digest")
    return present


def _chunks(source: Content) -> Iterator[bytes]:
    if isinstance(source, bytes):
        yield source
        return
    with open(source, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def _matches(source: Content, blob: re.Digest) -> bool:
    """Whether the content (bytes, or a file read in chunks) is still the blob."""
    hasher, size = hashlib.sha256(), 0
    try:
        for chunk in _chunks(source):
            hasher.update(chunk)
            size += len(chunk)
    except OSError:
        return False
    return size == blob.size_bytes and hasher.hexdigest() == blob.hash


def _parse_result(result: re.ActionResult) -> tuple[list[RemoteFile], re.Digest | None]:
    """The files and log of a successful entry, each field checked."""
    if result.exit_code != 0:
        raise UnusableEntry(f"it records a failure (exit code {result.exit_code})")
    if result.output_directories or result.output_symlinks or result.output_file_symlinks \
            or result.output_directory_symlinks:
        raise UnusableEntry("it has output directories or symlinks, which polybuild never records")
    files = []
    for f in result.output_files:
        if not is_safe_path(f.path):
            raise UnusableEntry(f"unsafe output path {f.path[:120]!r}")
        _check_digest(f.digest)
        files.append(RemoteFile(f.path, f.digest.hash, f.digest.size_bytes, f.is_executable))
    if clashing_paths([f.path for f in files]):
        raise UnusableEntry("an output path is listed twice, or as a file and a directory")
    log = None
    if result.HasField("stdout_digest"):
        _check_digest(result.stdout_digest)
        log = result.stdout_digest
    return files, log


def _check_digest(d: re.Digest) -> None:
    if not is_digest(d.hash) or d.size_bytes < 0:
        raise UnusableEntry(f"not a sha256 digest: {d.hash[:80]!r}/{d.size_bytes}")
