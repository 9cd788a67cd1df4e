"""One license scan serves `deny`, `attributions` and `sbom`: the inventory and every package's resolved license are
kept in polybuild's cache under the digest of what decides them (manifests, lockfiles, the policy, the config), so
the second command reads a file instead of rescanning. Packages' own contents need no key: a locked version's
sources (crate, module, distribution) never change. Go imports that move between packages of already-required
modules are the one input not covered (`go mod tidy` records every new module in go.mod, which is covered).

The cache is read as untrusted JSON: anything malformed is a miss."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polybuild import __version__
from polybuild.licenses.model import LicenseFile, Package, Resolved

if TYPE_CHECKING:
    from polybuild.licenses.inventory import Inventory
    from polybuild.workspace import Workspace

_FORMAT = 1  # bump when the stored shape or the meaning of a scan changes


def path(ws: Workspace, policy_file: Path, *, all_features: bool) -> Path:
    """The cache entry for this workspace state."""
    from polybuild.support.cachedir import for_workspace
    from polybuild.support.fingerprint import file_digests

    files = sorted(os.path.relpath(f, ws.root) for f in _inputs(ws, policy_file))
    existing = [f for f in files if (ws.root / f).is_file()]
    digests = dict(zip(existing, file_digests(ws.root, existing), strict=True))
    config = json.dumps(ws.config.data, sort_keys=True, default=str)
    material = [_FORMAT, __version__, _code(), all_features, sorted(ws.targets), config,
                [(f, digests.get(f)) for f in files]]
    key = hashlib.sha256(json.dumps(material).encode()).hexdigest()
    return for_workspace(ws.root, ws.config["cache-dir"]) / "licenses" / "scans" / f"{key[:32]}.json"


def _code() -> list[str]:
    """The license pass's own code: a development checkout's changed detection or resolution is a new scan."""
    from polybuild.support.fingerprint import file_digests

    here = Path(__file__).parent
    names = sorted(p.name for p in here.iterdir() if p.suffix in (".py", ".xz"))
    return file_digests(here, names)


def _inputs(ws: Workspace, policy_file: Path) -> set[str]:
    """Every manifest and lockfile the scanners read, the policy and the config files."""
    from polybuild.licenses.pypi import lock_for
    from polybuild.workspace.targetinfo import CrateInfo

    found = {str(policy_file), *(str(p) for p in ws.config.inputs)}
    if ws.config.file is not None:
        found.add(str(ws.config.file.path))
    for target in ws.targets.values():
        found.add(str(target.manifest))
        if isinstance(target.info, CrateInfo):
            found.add(str(target.info.crate_manifest))
            root = Path(target.info.cargo_workspace)
            found |= {str(root / "Cargo.toml"), str(root / "Cargo.lock")}
        if target.kind == "go":
            found |= {str(target.dir / name) for name in ("go.mod", "go.sum", "vendor/modules.txt")}
        if target.kind == "py":
            lock = lock_for(ws.root, target.dir)
            found |= {str(lock)} if lock else set()
    found.add(str(ws.root / "go.work"))
    return found


def load(entry: Path) -> tuple[list[Resolved], dict[str, set[tuple[str, str, str]]]] | None:
    """The stored scan, or None when there is none or it does not read back."""
    try:
        data = json.loads(entry.read_text(encoding="utf-8"))
        if data.get("format") != _FORMAT:
            return None
        resolved = [_resolved(r) for r in data["resolved"]]
        by_target = {t: {tuple(k) for k in keys} for t, keys in data["by_target"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return resolved, by_target  # type: ignore[return-value]


def save(entry: Path, inventory: Inventory, resolved: list[Resolved]) -> None:
    from polybuild.support.fs import write_atomic

    data = {"format": _FORMAT, "resolved": [asdict(r) for r in resolved],
            "by_target": {t: sorted(keys) for t, keys in sorted(inventory.by_target.items())}}
    write_atomic(entry, json.dumps(data, separators=(",", ":")), durable=False)


def _resolved(data: dict[str, Any]) -> Resolved:
    package = dict(data["package"])
    package["files"] = [LicenseFile(**f) for f in package["files"]]
    package["classifiers"] = tuple(package["classifiers"])
    package["dependents"] = [tuple(c) for c in package["dependents"]]
    return Resolved(package=Package(**package), expression=data["expression"], how=data["how"],
                    confidence=data["confidence"], warnings=list(data["warnings"]))
