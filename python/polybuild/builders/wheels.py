"""Wheel post-processing that keeps builds reproducible when a backend embeds build paths.

maturin (1.16) writes a CycloneDX SBOM into `.dist-info/sboms/` whose component refs contain the absolute path of
the workspace, so two checkouts in different directories would produce different wheels. We rewrite that path
to a fixed placeholder and fix up RECORD, keeping entry order, timestamps and permissions.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

from polybuild.support.fs import atomic_path

WORKSPACE_PLACEHOLDER = "/workspace"


def record_hash(data: bytes) -> str:
    """A file's hash as RECORD writes it (PEP 376/427: urlsafe base64 of sha256, unpadded)."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def remap_sbom_paths(wheel: Path, root: Path) -> bool:
    """Replace `root` in the wheel's SBOM files; returns whether the wheel changed."""
    needle = str(root).encode()
    with zipfile.ZipFile(wheel) as zf:
        entries = [(info, zf.read(info)) for info in zf.infolist()]
    changed: dict[str, bytes] = {}
    for info, data in entries:
        if "/sboms/" in info.filename and needle in data:
            changed[info.filename] = data.replace(needle, WORKSPACE_PLACEHOLDER.encode())
    if not changed:
        return False
    with atomic_path(wheel, durable=False) as tmp, zipfile.ZipFile(tmp, "w") as out:  # published later, durably
        for info, data in entries:
            data = changed.get(info.filename, data)
            if info.filename.endswith(".dist-info/RECORD"):
                data = _fix_record(data, changed)
            out.writestr(info, data, compress_type=info.compress_type)
    return True


def _fix_record(record: bytes, changed: dict[str, bytes]) -> bytes:
    lines = []
    for line in record.decode().splitlines():
        name = line.rsplit(",", 2)[0]
        if name in changed:
            line = f"{name},{record_hash(changed[name])},{len(changed[name])}"
        lines.append(line)
    return ("\n".join(lines) + "\n").encode()
