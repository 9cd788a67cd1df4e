"""Locked Python distributions as license evidence (the Python side of `cargo fetch`): the exact wheel or sdist a
lock names is downloaded once by URL into polybuild's cache, kept only when its SHA-256 matches the lock, and read
offline from then on. What is installed on the machine plays no part.

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
from pathlib import Path
from typing import TYPE_CHECKING

from polybuild.support.errors import UserError

if TYPE_CHECKING:
    from polybuild.licenses.model import Package
    from polybuild.workspace.pythonlock import Artifact, Target
    from polybuild.workspace.pythonlock import Package as Locked

FETCH_JOBS = 8  # parallel downloads: enough to hide latency, few enough to be polite to the index
TIMEOUT = 60.0  # seconds without progress before a download is given up
_CHUNK = 1 << 20
_MAX_TEXT = 2 << 20  # a license text larger than this is not read whole


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


def fetch(cache: Path, artifacts: list[Artifact], *, jobs: int = FETCH_JOBS) -> int:
    """Download the files not yet in the cache (in parallel, each verified before it is kept); the count fetched.
    Every failure is reported at once."""
    todo = sorted({a for a in artifacts if not location(cache, a).is_file()}, key=lambda a: a.filename)
    if not todo:
        return 0
    with ThreadPoolExecutor(max_workers=min(jobs, len(todo))) as pool:
        errors = [e for e in pool.map(lambda a: _download(cache, a), todo) if e]
    if errors:
        raise UserError("cannot fetch the locked Python distributions:\n  " + "\n  ".join(errors),
                        hint="check the network and the index; a hash mismatch means the lock or the index changed "
                        "(run `uv lock` and review the diff)")
    return len(todo)


def _download(cache: Path, artifact: Artifact) -> str | None:
    """One file into the cache, atomically: a temp file beside its final place, hashed while it is written, renamed
    only when the hash is the lock's. The error as a line, or None."""
    import urllib.error
    import urllib.request

    from polybuild.support.fs import atomic_writer

    assert artifact.url is not None and artifact.sha256 is not None
    if not artifact.url.startswith(("https://", "http://")):
        return f"{artifact.filename}: {artifact.url} is not an http(s) URL"
    digest = hashlib.sha256()
    try:
        with atomic_writer(location(cache, artifact), mode=0o600) as out, \
                urllib.request.urlopen(artifact.url, timeout=TIMEOUT) as response:
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
            if digest.hexdigest() != artifact.sha256:
                raise _NotTheLocked  # the temp file goes, nothing is kept
    except _NotTheLocked:
        return f"{artifact.filename}: sha256 {digest.hexdigest()} does not match the lock's {artifact.sha256}"
    except (OSError, urllib.error.URLError) as exc:
        return f"{artifact.filename}: {artifact.url}: {getattr(exc, 'reason', None) or exc}"
    return None


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
