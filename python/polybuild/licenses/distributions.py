"""Locked Python distributions as license evidence (the Python side of `cargo fetch`): the exact wheel or sdist a
lock names is downloaded once by URL into polybuild's cache, kept only when its SHA-256 matches the lock, and read
offline from then on. What is installed on the machine plays no part. Of a wheel, only the METADATA and license
files are needed: by default they are read by HTTP Range (`lazywheel.py`), which cannot be checked against the lock's
whole-file hash; the METADATA is checked against the index's PEP 658 hash when it offers one (docs/licenses.md says
what each mode trusts).

Which file of a lock entry is read: a universal wheel (`py3-none-any`) when the release has one, since every
installer on every platform may pick it; else the wheel the first target platform installs (its most preferred
tag), because that is the file that ships there, bundled libraries included; else the sdist (built from source);
else the smallest wheel (all wheels of one release carry the same metadata). The choice depends on the lock and
the config only, so every machine reads the same file."""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import os
import re
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from polybuild.support.errors import UserError

if TYPE_CHECKING:
    from polybuild.licenses.model import Package
    from polybuild.workspace.pythonlock import Artifact, Target
    from polybuild.workspace.pythonlock import LockedPackage as Locked

FETCH_JOBS = 8  # parallel downloads: enough to hide latency, few enough to be polite to the index
TIMEOUT = 60.0  # seconds without progress before a download is given up
_CHUNK = 1 << 20
_MAX_TEXT = 2 << 20  # a license text larger than this is not read whole
_MAX_PAGE = 64 << 20  # an index page (botocore's lists thousands of files in 2 MB)


def choose(package: Locked, targets: list[Target]) -> Artifact | None:
    """The one file of a lock entry whose metadata and license texts are read (see the module docstring)."""
    from polybuild.workspace.pythonlock import wheel_tags

    files = [a for a in package.artifacts if a.url and a.sha256]
    wheels = [a for a in files if a.is_wheel]
    universal = sorted((w for w in wheels if any(t.platform == "any" and t.abi == "none" for t in
                                                 wheel_tags(w.filename))), key=lambda w: w.filename)
    if universal:
        return universal[0]
    for target in targets[:1]:
        ranked = [(min(target.ranks[t] for t in tags), w.filename, w) for w in wheels
                  if (tags := target.tags.intersection(wheel_tags(w.filename)))]
        if ranked:
            return min(ranked)[2]
    sdists = [a for a in files if not a.is_wheel]
    if sdists:
        return sdists[0]
    return min(wheels, key=lambda w: (w.size or 0, w.filename), default=None)


def location(cache: Path, artifact: Artifact) -> Path:
    """Where a verified file lives in the cache: by its hash, so a name can never stand for other content."""
    digest = artifact.sha256 or ""
    if not re.fullmatch(r"[0-9a-f]{64}", digest):  # a lock is untrusted input: never a path
        raise UserError(f"a locked distribution has an unusable sha256: {artifact.filename} {digest!r}",
                        hint="regenerate the lock with uv")
    return cache / "dists" / digest[:2] / digest / _safe_name(artifact.filename)


def _safe_name(filename: str) -> str:
    """A file name from a lock is untrusted: never a path."""
    name = os.path.basename(filename.replace("\\", "/"))
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+!-]*", name):
        raise UserError(f"a locked distribution has an unusable file name: {filename!r}",
                        hint="regenerate the lock with uv")
    return name


FULL, METADATA = "full", "metadata"  # --fetch modes: whole files, or a wheel's metadata and license files by Range


@dataclass
class Fetched:
    """What one fetch did, for its summary line."""

    ranged: int = 0  # wheels read by Range: METADATA and license files only
    checked: int = 0  # of those, METADATA matched the index's PEP 658 hash
    whole: int = 0  # files downloaded whole and verified against the lock's sha256
    received: int = 0  # bytes over the network

    def add(self, other: Fetched) -> None:
        for name in ("ranged", "checked", "whole", "received"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def summary(self) -> str:
        return (f"fetched {self.ranged + self.whole} Python distributions, {self.received / 1e6:.1f} MB: "
                f"{self.ranged} wheels read by HTTP Range (METADATA and license files only; {self.checked} with "
                f"METADATA checked against the index's PEP 658 hash), {self.whole} files downloaded whole and "
                "checked against the lock's sha256")


def stored(cache: Path, artifact: Artifact) -> Path | None:
    """The cached evidence of a file: the whole file, else the members a ranged read kept; None when neither."""
    for path in (location(cache, artifact), _members_location(cache, artifact)):
        if path.is_file():
            return path
    return None


def _members_location(cache: Path, artifact: Artifact) -> Path:
    """Where a ranged read keeps a wheel's METADATA and license files: a zip of only those members, beside the
    whole file's place (keyed by the lock's hash too), under the wheel's name so it reads like the wheel."""
    whole = location(cache, artifact)
    return whole.parent / "members" / whole.name


def fetch(cache: Path, artifacts: list[Artifact], *, mode: str = METADATA, pages: dict[Artifact, str] | None = None,
          jobs: int = FETCH_JOBS) -> Fetched:
    """Fetch what the cache lacks, in parallel: in `METADATA` mode a wheel's METADATA and license files by HTTP
    Range when the server honours it (checked against the PEP 658 hash the index page in `pages` offers), else
    (sdists, servers without Range, `FULL` mode) the whole file, verified against the lock's hash before it is
    kept. Every failure is reported at once."""
    if mode == FULL:
        todo = [a for a in artifacts if not location(cache, a).is_file()]
    else:
        todo = [a for a in artifacts if stored(cache, a) is None]
    todo = sorted(set(todo), key=lambda a: a.filename)
    done = Fetched()
    if not todo:
        return done
    with ThreadPoolExecutor(max_workers=min(jobs, len(todo))) as pool:
        outcomes = list(pool.map(lambda a: _fetch_one(cache, a, mode, (pages or {}).get(a)), todo))
    errors = [e for e, _ in outcomes if e]
    for _, fetched in outcomes:
        done.add(fetched)
    if errors:
        raise UserError("cannot fetch the locked Python distributions:\n  " + "\n  ".join(errors),
                        hint="check the network and the index; a hash mismatch means the lock or the index changed "
                        "(run `uv lock` and review the diff)")
    return done


def _fetch_one(cache: Path, artifact: Artifact, mode: str, page: str | None) -> tuple[str | None, Fetched]:
    import http.client

    from polybuild.licenses import lazywheel

    assert artifact.url is not None and artifact.sha256 is not None
    if not artifact.url.startswith(("https://", "http://")):
        return f"{artifact.filename}: {artifact.url} is not an http(s) URL", Fetched()
    if mode == METADATA and artifact.is_wheel and artifact.size:
        try:
            return _ranged(cache, artifact, page)
        except (lazywheel.NoRanges, lazywheel.Unreadable):
            pass  # the whole file, verified against the lock, instead
        except (OSError, http.client.HTTPException) as exc:  # URLError is an OSError
            return f"{artifact.filename}: {artifact.url}: {getattr(exc, 'reason', None) or exc}", Fetched()
    return _download(cache, artifact)


def _ranged(cache: Path, artifact: Artifact, page: str | None) -> tuple[str | None, Fetched]:
    """A wheel's METADATA and license files by Range, kept as a zip of those members. A wheel small enough to come
    whole in the first read is verified and kept whole instead."""
    import io

    from polybuild.licenses import lazywheel
    from polybuild.support.fs import write_atomic

    assert artifact.url is not None and artifact.size is not None
    members, remote = lazywheel.read_members(artifact.url, artifact.size, _license_members)
    fetched = Fetched(received=remote.received)
    whole = remote.spans.get(0)
    if whole is not None and len(whole) == artifact.size:
        fetched.whole = 1
        digest = hashlib.sha256(whole).hexdigest()
        if digest != artifact.sha256:
            return f"{artifact.filename}: sha256 {digest} does not match the lock's {artifact.sha256}", fetched
        write_atomic(location(cache, artifact), whole)
        return None, fetched
    fetched.ranged = 1
    hashes, fetched_page = _PAGES.get(page) if page else ({}, 0)
    fetched.received += fetched_page
    expected = hashes.get(artifact.filename)
    if expected:
        metadata = next(data for name, data in members.items() if _METADATA.fullmatch(name))
        digest = hashlib.sha256(metadata).hexdigest()
        if digest != expected:
            return (f"{artifact.filename}: METADATA sha256 {digest} does not match the index's PEP 658 hash "
                    f"{expected}"), fetched
        fetched.checked = 1
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(members.items()):
            archive.writestr(name, data)
    write_atomic(_members_location(cache, artifact), buffer.getvalue())
    return None, fetched


_METADATA = re.compile(r"[^/]+\.dist-info/METADATA")


def _license_members(names: list[str], read: Callable[[str], bytes]) -> list[str]:
    """The members the scan reads: the `.dist-info/METADATA` and the license files it would pick from the listing
    (the same rule as for a whole wheel)."""
    from polybuild.licenses import lazywheel
    from polybuild.licenses.pypi import license_members, metadata_headers

    metadata = next((n for n in names if _METADATA.fullmatch(n)), None)
    if metadata is None:
        raise lazywheel.Unreadable("no .dist-info/METADATA")
    root = metadata.split("/")[0]
    headers = metadata_headers(read(metadata).decode("utf-8", errors="replace"))
    listing = [n[len(root) + 1:] for n in names if n.startswith(root + "/")]
    return [metadata, *(f"{root}/{rel}" for rel in license_members(listing, headers.get("License-File", [])))]


class _IndexPages:
    """The PEP 658 METADATA hashes an index's JSON simple pages (PEP 691) offer, one request per project page per
    run; a page that cannot be read offers none (the METADATA is then not checked)."""

    def __init__(self) -> None:
        import threading

        self._pages: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def get(self, page: str) -> tuple[dict[str, str], int]:
        """File name -> METADATA sha256, and the bytes this call received (0 when the page was already read)."""
        with self._lock:
            if page in self._pages:
                return self._pages[page], 0
        hashes, received = _read_page(page)
        with self._lock:
            self._pages.setdefault(page, hashes)
        return hashes, received


def _read_page(page: str) -> tuple[dict[str, str], int]:
    import http.client
    import json
    import urllib.request
    import zlib

    request = urllib.request.Request(page, headers={"Accept": "application/vnd.pypi.simple.v1+json",
                                                    "Accept-Encoding": "gzip"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            body = response.read(_MAX_PAGE + 1)
            gzipped = response.headers.get("Content-Encoding") == "gzip"
        text = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(body, _MAX_PAGE) if gzipped else body
        data = json.loads(text)
        files = data["files"] if isinstance(data, dict) else []
    except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError, zlib.error):
        return {}, 0
    found = {}
    for entry in files if isinstance(files, list) else []:
        if not isinstance(entry, dict):
            continue
        offered = entry.get("core-metadata", entry.get("data-dist-info-metadata"))
        digest = offered.get("sha256") if isinstance(offered, dict) else None
        if isinstance(entry.get("filename"), str) and isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}",
                                                                                               digest):
            found[entry["filename"]] = digest
    return found, len(body)


_PAGES = _IndexPages()


def _download(cache: Path, artifact: Artifact) -> tuple[str | None, Fetched]:
    """One file into the cache, atomically: a temp file beside its final place, hashed while it is written, renamed
    only when the hash is the lock's. The error as a line, or None."""
    import http.client
    import urllib.request

    from polybuild.support.fs import atomic_writer

    assert artifact.url is not None and artifact.sha256 is not None
    digest = hashlib.sha256()
    fetched = Fetched(whole=1)
    try:
        with atomic_writer(location(cache, artifact), mode=0o600) as out, \
                urllib.request.urlopen(artifact.url, timeout=TIMEOUT) as response:
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                fetched.received += len(chunk)
                out.write(chunk)
            if digest.hexdigest() != artifact.sha256:
                raise _NotTheLocked  # the temp file goes, nothing is kept
    except _NotTheLocked:
        return f"{artifact.filename}: sha256 {digest.hexdigest()} does not match the lock's {artifact.sha256}", \
            fetched
    except (OSError, http.client.HTTPException) as exc:  # URLError is an OSError
        return f"{artifact.filename}: {artifact.url}: {getattr(exc, 'reason', None) or exc}", fetched
    return None, fetched


class _NotTheLocked(Exception):
    """A download whose hash is not the lock's."""


def evidence(path: Path) -> Package:
    """The package and license evidence of a downloaded wheel or sdist (a fresh copy: callers fill in the rest)."""
    return copy.deepcopy(_contents(path)[0])


def requirements(path: Path) -> list[str]:
    """A downloaded distribution's `Requires-Dist` (an sdist's PKG-INFO may list none: then the chains are short)."""
    return list(_contents(path)[1])


@functools.cache
def _contents(path: Path) -> tuple[Package, tuple[str, ...]]:
    """Each archive is opened once per run, however many resolutions hold it (a torch wheel lists 20,000 files)."""
    from polybuild.licenses.pypi import evidence_from_metadata, metadata_headers

    try:
        with _archive(path) as (root, metadata, listing, read):
            package = evidence_from_metadata(root, metadata, listing, read)
    except (tarfile.TarError, zipfile.BadZipFile, OSError, KeyError) as exc:
        raise UserError(f"{path}: not a readable distribution: {exc}",
                        hint="delete it from the cache and fetch again") from None
    return package, tuple(metadata_headers(metadata).get("Requires-Dist", []))


@contextlib.contextmanager
def _archive(path: Path) -> Iterator[tuple[str, str, list[str], Callable[[str], bytes]]]:
    """(the metadata directory, its METADATA or PKG-INFO text, the files under it, a reader of those files), from a
    wheel's `.dist-info` or an sdist's top directory, read in place without unpacking."""
    if path.name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
            yield _located(path, names, lambda n: archive.open(n).read(_MAX_TEXT))
        return
    with tarfile.open(path) as archive:
        infos = {m.name: m for m in archive.getmembers() if m.isfile()}
        yield _located(path, list(infos), lambda n: archive.extractfile(infos[n]).read(_MAX_TEXT))


def _located(path: Path, names: list[str], read: Callable[[str], bytes]) -> tuple[str, str, list[str],
                                                                                   Callable[[str], bytes]]:
    wheel = path.name.endswith(".whl")
    pattern = r"[^/]+\.dist-info/METADATA" if wheel else r"[^/]+/PKG-INFO"
    metadata = next((n for n in names if re.fullmatch(pattern, n)), None)
    if metadata is None:
        raise UserError(f"{path} is not a {'wheel' if wheel else 'sdist'}: it has no "
                        f"{'.dist-info/METADATA' if wheel else 'PKG-INFO at its top'}")
    root = metadata.split("/")[0]
    listing = sorted(n[len(root) + 1:] for n in names if n.startswith(root + "/"))
    return root, read(metadata).decode("utf-8", errors="replace"), listing, lambda rel: read(f"{root}/{rel}")
