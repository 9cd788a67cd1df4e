"""Locked Python distributions as license evidence (the Python side of `cargo fetch`): the exact wheel or sdist a
lock names is downloaded once by URL into polybuild's cache, kept only when its SHA-256 matches the lock, and read
offline from then on. What is installed on the machine plays no part.

Which file of a lock entry is read: a universal wheel (`py3-none-any`) when the release has one, since every
installer on every platform may pick it; else the wheel the first target platform installs (its most preferred
tag), because that is the file that ships there, bundled libraries included; else the sdist (built from source);
else the smallest wheel (all wheels of one release carry the same metadata). The choice depends on the lock and
the config only, so every machine reads the same file."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from polybuild.errors import UserError

if TYPE_CHECKING:
    from polybuild.licenses.model import Package
    from polybuild.lockfiles.wheels import Artifact, Target
    from polybuild.lockfiles.wheels import Package as Locked

FETCH_JOBS = 8  # parallel downloads: enough to hide latency, few enough to be polite to the index
TIMEOUT = 60.0  # seconds without progress before a download is given up
_CHUNK = 1 << 20
_MAX_TEXT = 2 << 20  # a license text larger than this is not read whole


def choose(package: Locked, targets: list[Target]) -> Artifact | None:
    """The one file of a lock entry whose metadata and license texts are read (see the module docstring)."""
    from polybuild.lockfiles.wheels import wheel_tags

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
    assert artifact.sha256 is not None
    return cache / "dists" / artifact.sha256[:2] / artifact.sha256 / _safe_name(artifact.filename)


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

    assert artifact.url is not None and artifact.sha256 is not None
    if not artifact.url.startswith(("https://", "http://")):
        return f"{artifact.filename}: {artifact.url} is not an http(s) URL"
    final = location(cache, artifact)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".download.", suffix=".tmp")
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(artifact.url, timeout=TIMEOUT) as response:
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != artifact.sha256:
            return f"{artifact.filename}: sha256 {digest.hexdigest()} does not match the lock's {artifact.sha256}"
        os.replace(tmp, final)
        return None
    except (OSError, urllib.error.URLError) as exc:
        return f"{artifact.filename}: {artifact.url}: {getattr(exc, 'reason', None) or exc}"
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def evidence(path: Path) -> Package:
    """The package and license evidence of a downloaded wheel or sdist."""
    from polybuild.licenses.pypi import evidence_from_wheel

    if path.name.endswith(".whl"):
        return evidence_from_wheel(path)
    return evidence_from_sdist(path)


def evidence_from_sdist(path: Path) -> Package:
    """An sdist's PKG-INFO and license texts (at its top, under `licenses/`, or where `License-File` says), read from
    the archive without unpacking it."""
    import tarfile
    import zipfile

    try:
        if path.name.endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if not n.endswith("/")]
                return _sdist(path, names, lambda n: archive.open(n).read(_MAX_TEXT))
        with tarfile.open(path) as archive:
            infos = {m.name: m for m in archive.getmembers() if m.isfile()}
            return _sdist(path, list(infos), lambda n: archive.extractfile(infos[n]).read(_MAX_TEXT))
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        raise UserError(f"{path}: not a readable sdist: {exc}", hint="delete it from the cache and fetch again") \
            from None


def _sdist(path: Path, names: list[str], read: Callable[[str], bytes]) -> Package:
    from polybuild.licenses.pypi import evidence_from_metadata

    root = next((t for t in sorted({n.split("/")[0] for n in names}) if f"{t}/PKG-INFO" in names), None)
    if root is None:
        raise UserError(f"{path} is not an sdist: it has no PKG-INFO at its top")
    listing = sorted(n[len(root) + 1:] for n in names if n.startswith(root + "/"))
    return evidence_from_metadata(root, read(f"{root}/PKG-INFO").decode("utf-8", errors="replace"), listing,
                                  lambda rel: read(f"{root}/{rel}"))


def requirements(path: Path) -> list[str]:
    """A downloaded distribution's `Requires-Dist` (an sdist's PKG-INFO may list none: then the chains are short)."""
    from polybuild.licenses.pypi import metadata_headers

    return metadata_headers(_metadata(path)).get("Requires-Dist", [])


def _metadata(path: Path) -> str:
    import tarfile
    import zipfile

    try:
        if path.name.endswith((".whl", ".zip")):
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                name = next((n for n in names if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)), None) or next(
                    (n for n in names if re.fullmatch(r"[^/]+/PKG-INFO", n)), None)
                return archive.read(name).decode("utf-8", errors="replace") if name else ""
        with tarfile.open(path) as archive:
            member = next((m for m in archive.getmembers() if re.fullmatch(r"[^/]+/PKG-INFO", m.name)), None)
            data = archive.extractfile(member) if member else None
            return data.read(_MAX_TEXT).decode("utf-8", errors="replace") if data else ""
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        raise UserError(f"{path}: not a readable distribution: {exc}",
                        hint="delete it from the cache and fetch again") from None
