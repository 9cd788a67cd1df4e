"""What a release publishes besides its artifacts: `SHA256SUMS` (for `sha256sum -c`) and
`release-manifest.json` (artifacts, digests, toolchains, git revision, lock digests), both deterministic."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from polybuild import __version__
from polybuild.support.fs import write_atomic

if TYPE_CHECKING:
    from polybuild.execute.scheduler import Artifact
    from polybuild.release.pipeline import State

MANIFEST_FORMAT = 1


def write_release_files(state: State, artifacts: list[Artifact]) -> list[Path]:
    """Write both files into the dist directory (atomically); returns their paths."""
    ws = state.loaded.ws
    dist = ws.config.dist_dir
    listed = sorted(artifacts, key=lambda a: a.path.relative_to(dist).as_posix())
    sbom = _write_sbom(state, dist)
    sums = "".join(f"{a.sha256}  {a.path.relative_to(dist).as_posix()}\n" for a in listed)
    sums += f"{hashlib.sha256(sbom.read_bytes()).hexdigest()}  {sbom.name}\n"
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": {"pep440": state.options.version.pep440, "semver": state.options.version.semver},
        "tag": state.tag,
        "git": {"revision": state.commit.sha, "commit_time": state.commit.time},
        "source_date_epoch": state.commit.time,
        "polybuild": __version__,
        "artifacts": [{"path": a.path.relative_to(dist).as_posix(), "sha256": a.sha256, "size": a.size,
                       "target": a.target, "variant": a.variant, "platform": a.platform} for a in listed],
        "sbom": sbom.name,
        "toolchains": dict(sorted(state.outcome.toolchains.items())),
        "locks": dict(sorted(state.locks.items())),
        "checks": state.checks,
    }
    paths = [dist / "SHA256SUMS", dist / "release-manifest.json"]
    write_atomic(paths[0], sums)
    write_atomic(paths[1], json.dumps(manifest, indent=2) + "\n")
    return [sbom, *paths]


def _write_sbom(state: State, dist: Path) -> Path:
    """The CycloneDX SBOM of everything the release ships, dated SOURCE_DATE_EPOCH (the commit's)."""
    from polybuild.licenses.scan import sbom
    from polybuild.release.pipeline import source_date_epoch

    path = dist / "sbom.cdx.json"
    with source_date_epoch(state.commit.time):
        write_atomic(path, json.dumps(sbom(state.licenses, "cyclonedx"), indent=2) + "\n")
    return path
