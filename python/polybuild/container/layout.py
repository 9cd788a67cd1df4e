"""OCI layouts as one artifact file: a deterministic tar of the layout directory (sorted entries, fixed times and
owners), so an image is cached, checksummed and published like any wheel or binary."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path


def pack(layout: Path, dest: Path) -> None:
    """Write `layout` as a reproducible tar at `dest` (the caller publishes it atomically)."""
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(layout.rglob("*"), key=lambda p: p.relative_to(layout).as_posix()):
            info = tar.gettarinfo(str(path), arcname=path.relative_to(layout).as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            info.mode = 0o755 if path.is_dir() else 0o644
            if path.is_file():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)


def unpack(archive: Path, dest: Path) -> Path:
    """Extract an archive made by `pack` into `dest` (which must be empty or missing)."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    return dest


def digest(layout: Path) -> str:
    """The digest a push of this layout gives: its single top-level manifest or index."""
    manifests = json.loads((layout / "index.json").read_text())["manifests"]
    if len(manifests) != 1:
        raise ValueError(f"{layout}: expected one image in the layout, found {len(manifests)}")
    return manifests[0]["digest"]


def write_json(path: Path, data: dict) -> None:
    from polybuild.support.fs import write_atomic

    write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n", durable=False)  # a build's own output
