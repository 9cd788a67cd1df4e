"""The local content-addressed store: blobs by sha256 (`cas/`) and an action cache mapping keys to output
manifests (`ac/`), the same split as Bazel's remote cache so a remote one can sit behind it.

Every write is a temp file plus rename, so a killed build or two concurrent builds never leave a partial entry;
every restore verifies the digest, and a corrupt entry is dropped (and rebuilt) with a warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_FORMAT = 1


class CorruptEntry(Exception):
    """A cache entry whose content does not match its digest."""


def default_dir() -> Path:
    """$POLYBUILD_CACHE_DIR, else $XDG_CACHE_HOME/polybuild, else ~/.cache/polybuild."""
    if os.environ.get("POLYBUILD_CACHE_DIR"):
        return Path(os.environ["POLYBUILD_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "polybuild"


@dataclass
class Stats:
    entries: int
    blobs: int
    bytes: int


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _blob(self, digest: str) -> Path:
        return self.root / "cas" / digest[:2] / digest

    def _ac(self, key: str) -> Path:
        return self.root / "ac" / key[:2] / key

    def _write_atomic(self, dest: Path, data: bytes | None = None, source: Path | None = None) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            if source is not None:
                shutil.copyfile(source, tmp)
            else:
                tmp.write_bytes(data or b"")
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def has_blob(self, digest: str) -> bool:
        return self._blob(digest).is_file()

    def put_blob(self, digest: str, source: Path | None = None, data: bytes | None = None) -> None:
        if not self.has_blob(digest):
            self._write_atomic(self._blob(digest), data=data, source=source)

    def blob_path(self, digest: str) -> Path | None:
        path = self._blob(digest)
        return path if path.is_file() else None

    def put_manifest(self, key: str, manifest: dict[str, Any]) -> None:
        """Store the manifest last, after its blobs: a reader that finds it finds everything it names."""
        self._write_atomic(self._ac(key), data=json.dumps(manifest, sort_keys=True).encode())

    def has_manifest(self, key: str) -> bool:
        return self._ac(key).is_file()

    def get_manifest(self, key: str) -> dict[str, Any] | None:
        path = self._ac(key)
        try:
            manifest = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            warn(f"cache entry {key[:12]} is unreadable; dropped")
            self.drop(key)
            return None
        if manifest.get("format") != MANIFEST_FORMAT:
            return None
        os.utime(path)  # recency, for gc
        return manifest

    def drop(self, key: str, digests: list[str] = ()) -> None:
        self._ac(key).unlink(missing_ok=True)
        for d in digests:
            self._blob(d).unlink(missing_ok=True)

    def copy_out(self, digest: str, dest: Path, mode: int) -> None:
        """Copy a blob to `dest` atomically, verifying its digest on the way; raise CorruptEntry if it differs."""
        src = self._blob(digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
        h = hashlib.sha256()
        try:
            with open(src, "rb") as fin, open(tmp, "wb") as fout:
                for chunk in iter(lambda: fin.read(1 << 20), b""):
                    h.update(chunk)
                    fout.write(chunk)
            if h.hexdigest() != digest:
                raise CorruptEntry(f"blob {digest[:12]} has content {h.hexdigest()[:12]}")
            os.chmod(tmp, mode)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def stats(self) -> Stats:
        entries = sum(1 for _ in (self.root / "ac").glob("*/*")) if (self.root / "ac").is_dir() else 0
        blobs = list((self.root / "cas").glob("*/*")) if (self.root / "cas").is_dir() else []
        return Stats(entries, len(blobs), sum(b.stat().st_size for b in blobs))

    def gc(self, max_bytes: int) -> tuple[int, int]:
        """Drop least recently used entries until blobs fit in `max_bytes`; returns (entries, blobs) removed."""
        manifests = sorted(((p.stat().st_mtime, p) for p in (self.root / "ac").glob("*/*")), reverse=True)
        blobs = {p.name: p.stat().st_size for p in (self.root / "cas").glob("*/*")}
        kept: set[str] = set()
        used = 0
        removed_entries = 0
        for _, path in manifests:  # newest first: keep while they fit
            try:
                digests = {a["sha256"] for a in json.loads(path.read_bytes())["artifacts"]}
            except (OSError, ValueError, KeyError):
                digests = None
            extra = sum(blobs.get(d, 0) for d in (digests or ()) if d not in kept)
            if digests is None or used + extra > max_bytes:
                path.unlink(missing_ok=True)
                removed_entries += 1
                continue
            kept |= digests
            used += extra
        removed_blobs = 0
        for name in blobs:
            if name not in kept:
                self._blob(name).unlink(missing_ok=True)
                removed_blobs += 1
        return removed_entries, removed_blobs


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def warn(message: str) -> None:
    print(f"polybuild: warning: {message}", file=sys.stderr, flush=True)


def parse_size(text: str) -> int:
    """'500M', '2G', '1024' -> bytes."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    text = text.strip().lower().removesuffix("b").removesuffix("i")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)
