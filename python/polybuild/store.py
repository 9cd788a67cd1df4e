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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_FORMAT = 2  # 2: small files inline


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
        self._dirs: set[Path] = set()  # fan-out directories known to exist: one mkdir per run, not per write

    # 16 fan-out directories each: a fresh store creates few directories, and none holds too many files.
    def _blob(self, digest: str) -> Path:
        return self.root / "cas" / digest[:1] / digest

    def _ac(self, key: str) -> Path:
        return self.root / "ac" / key[:1] / key

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
        manifests = list((self.root / "ac").glob("*/*"))
        blobs = list((self.root / "cas").glob("*/*"))
        return Stats(len(manifests), len(blobs), sum(p.stat().st_size for p in manifests + blobs))

    def gc(self, max_bytes: int) -> tuple[int, int]:
        """Drop least recently used entries until the store (manifests, which hold small files inline, and blobs)
        fits in `max_bytes`; returns (entries, blobs) removed."""
        manifests = sorted(((p.stat().st_mtime, p) for p in (self.root / "ac").glob("*/*")), reverse=True)
        blobs = {p.name: (p, p.stat().st_size) for p in (self.root / "cas").glob("*/*")}
        kept: set[str] = set()
        used = 0
        removed_entries = 0
        for _, path in manifests:  # newest first: keep while they fit
            entry = _entry_size_and_blobs(path)
            extra = entry[0] + sum(blobs[d][1] for d in entry[1] - kept if d in blobs) if entry else 0
            if entry is None or used + extra > max_bytes:
                path.unlink(missing_ok=True)
                removed_entries += 1
                continue
            kept |= entry[1]
            used += extra
        removed_blobs = 0
        for name, (path, _) in blobs.items():
            if name not in kept:
                path.unlink(missing_ok=True)
                removed_blobs += 1
        return removed_entries, removed_blobs


def _entry_size_and_blobs(manifest: Path) -> tuple[int, set[str]] | None:
    """A manifest's own size and the blobs it needs (outputs and log not held inline); None if unreadable."""
    try:
        data = manifest.read_bytes()
        entry = json.loads(data)
        digests = {a["sha256"] for a in entry["artifacts"]} | ({entry["log"]} if entry["log"] else set())
        return len(data), digests - set(entry["inline"])
    except (OSError, ValueError, KeyError, TypeError):
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
