"""Discovery results kept between runs, keyed by the `stat` of every file discovery reads.

Reading a thousand manifests and running `cargo metadata` is most of what a run costs when little changed; when
no manifest, Go source (package clauses decide binaries) or Cargo setting changed, the targets of the last run are
reused. Like the stat cache, a result is stored only when all those files are at least two seconds old.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polybuild import __version__
from polybuild.support.fs import racy, write_atomic

if TYPE_CHECKING:
    from polybuild.config.model import Config
    from polybuild.workspace import Target

FORMAT = 6  # 2: abi3 of maturin targets; 3: harnesses, staticlibs, cgo links; 4: their paths; 5: typed info;
# 6: source-only refs
MANIFESTS = frozenset({"Cargo.toml", "pyproject.toml", "go.mod", "go.work", "config.toml", "config"})
ENV = ("CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR", "CARGO_HOME")


def _read_by_discovery(listing: list[str]) -> list[str]:
    return [p for p in listing if p.rpartition("/")[2] in MANIFESTS or p.endswith(".go")]


def signature(root: Path, config: Config, listing: list[str]) -> tuple[str, bool]:
    """(digest of everything discovery reads, whether all of it is old enough to be trusted by stat)."""
    now = time.time_ns()
    fresh = False
    h = hashlib.sha256()
    cargo = shutil.which("cargo")
    extra = [os.path.realpath(cargo)] if cargo else []
    for path in [*(str(root / p) for p in _read_by_discovery(listing)), *extra]:
        try:
            st = os.stat(path)
        except OSError:
            h.update(f"{path} missing\n".encode())
            continue
        fresh |= racy(st.st_mtime_ns, st.st_ctime_ns, now)
        h.update(f"{path} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns} {st.st_ino}\n".encode())
    settings = {"roots": [config["python-roots"], config["go-roots"]], "env": [os.environ.get(v) for v in ENV],
                "version": __version__, "format": FORMAT}
    h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest(), not fresh


def load(path: Path, digest: str) -> list[Target] | None:
    from polybuild.workspace import Ref, Target
    from polybuild.workspace.targetinfo import from_json

    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if data.get("signature") != digest:
        return None
    return [Target(id=t["id"], name=t["name"], kind=t["kind"], builder=t["builder"], dir=Path(t["dir"]),
                   manifest=Path(t["manifest"]), version=t["version"], features=frozenset(t["features"]),
                   info=from_json(t["info"]), refs=[Ref(**r) for r in t["refs"]]) for t in data["targets"]]


def store(path: Path, digest: str, targets: list[Target]) -> None:
    from polybuild.workspace.targetinfo import to_json

    def ref(r: Any) -> dict[str, Any]:
        return {"kind": r.kind, "value": r.value, "source": r.source, "required": r.required,
                "kinds": sorted(r.kinds) if r.kinds is not None else None, "source_only": r.source_only}

    data = {"signature": digest, "targets": [
        {"id": t.id, "name": t.name, "kind": t.kind, "builder": t.builder, "dir": str(t.dir),
         "manifest": str(t.manifest), "version": t.version, "features": sorted(t.features), "info": to_json(t.info),
         "refs": [ref(r) for r in t.refs]} for t in targets]}
    write_atomic(path, json.dumps(data, separators=(",", ":")), durable=False)  # a loss costs a discovery
