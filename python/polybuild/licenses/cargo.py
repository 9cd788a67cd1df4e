"""Rust inventory: every crate the workspace's Cargo workspaces compile into shipped code, read from the resolve
graph of `cargo metadata` (workspace/cargometa.py; without dev-dependencies) and the crates' unpacked sources."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

from polybuild.licenses.inventory import license_files, merge
from polybuild.licenses.model import Package

if TYPE_CHECKING:
    from polybuild.licenses.cargolocks import Shadow
    from polybuild.workspace import Workspace
    from polybuild.workspace.cargometa import CargoMetadata

CRATES_IO = frozenset({"registry+https://github.com/rust-lang/crates.io-index", "sparse+https://index.crates.io/"})


def packages(ws: Workspace, *, all_features: bool = True) -> list[Package]:
    """Crates of every Cargo workspace holding a target (the workspace's own crates flagged `workspace`)."""
    from polybuild.workspace.targetinfo import CrateInfo

    crate_targets: dict[Path, str] = {}  # crate directory -> target id
    roots: set[str] = set()
    for target in ws.targets.values():
        if isinstance(target.info, CrateInfo):
            crate_targets[Path(target.info.crate_manifest).parent] = target.id
            roots.add(target.info.cargo_workspace)
    shadows = _lock_shadows(ws, [Path(root) for root in sorted(roots)])
    found: list[Package] = []
    for root in sorted(roots):
        found += workspace_packages(Path(root), crate_targets, all_features=all_features,
                                    shadow=shadows.get(Path(root)), metadata=ws.cargo_metadata)
    return merge(found)


def _lock_shadows(ws: Workspace, roots: list[Path]) -> dict[Path, Shadow]:
    """Workspaces without a Cargo.lock: all named in one error, or resolved in the cache when the config says so."""
    from polybuild.licenses import cargolocks

    unlocked = cargolocks.missing(roots)
    if not unlocked:
        return {}
    if not ws.config["licenses"]["generate-cargo-locks"]:
        raise cargolocks.missing_error(ws.root, unlocked)
    from polybuild.support.cachedir import default_dir
    from polybuild.workspace.cargometa import run

    shadows = cargolocks.shadows(ws.root, unlocked, default_dir())
    for shadow in shadows.values():
        cargolocks.generate(shadow.manifest, run)
    return shadows


def workspace_packages(root: Path, crate_targets: dict[Path, str], *, all_features: bool = True,
                       shadow: Shadow | None = None, metadata: CargoMetadata | None = None) -> list[Package]:
    """The crates one Cargo workspace ships; chains start at its members that are targets (`crate_targets` maps
    crate directories to target ids; crates of other Cargo workspaces among them are the workspace's own too).
    With a `shadow` (the workspace's lock lives in polybuild's cache), cargo reads the shadow's manifest and every
    path it reports is mapped back to the repository. `metadata` holds the run's `cargo metadata` answers."""
    from polybuild.workspace.cargometa import CargoMetadata

    manifest = shadow.manifest if shadow else root / "Cargo.toml"
    meta = (metadata or CargoMetadata()).resolve(manifest, str(manifest), all_features=all_features,
                                                 locked=shadow is None)
    if shadow:
        for pkg in meta["packages"]:
            pkg["manifest_path"] = str(shadow.real(Path(pkg["manifest_path"])))
    members = set(meta["workspace_members"])
    by_id = {p["id"]: p for p in meta["packages"]}
    target_of = {pid: crate_targets.get(Path(p["manifest_path"]).parent) for pid, p in by_id.items()}
    label = {pid: target_of[pid] or f"{p['name']}@{p['version']}" for pid, p in by_id.items()}
    starts = {pid: target_of[pid] for pid in members if target_of[pid]}
    chains = shipped_chains(_shipping_edges(meta), starts, label)
    own = members | {pid for pid in by_id if target_of[pid]}
    shipped = [pid for pid in by_id if pid in chains or pid in members]
    return [_package(by_id[pid], pid in own, chains.get(pid, [])) for pid in shipped]


def _shipping_edges(meta: dict) -> dict[str, list[str]]:
    """Package id -> the package ids it needs as a normal or build dependency (dev-dependencies do not ship)."""
    edges: dict[str, list[str]] = {}
    for node in meta["resolve"]["nodes"]:
        edges[node["id"]] = sorted(d["pkg"] for d in node["deps"]
                                   if any(k["kind"] != "dev" for k in d["dep_kinds"]))
    return edges


def shipped_chains(edges: dict[str, list[str]], starts: dict[str, str],
                   label: dict[str, str]) -> dict[str, list[tuple[str, ...]]]:
    """For every node reachable from a start: the shortest chain from each start (breadth first), labelled."""
    chains: dict[str, list[tuple[str, ...]]] = {}
    for start, target_id in sorted(starts.items(), key=lambda s: s[1]):
        seen = {start: (target_id,)}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            for dep in edges.get(node, ()):
                if dep not in seen:
                    seen[dep] = seen[node] + (label[node],) if node != start else seen[node]
                    queue.append(dep)
        for node, chain in seen.items():
            if node != start:
                chains.setdefault(node, []).append(chain)
    return chains


def _package(pkg: dict, member: bool, dependents: list[tuple[str, ...]]) -> Package:
    from polybuild.licenses.purl import purl

    source = source_of(pkg["source"])
    crate_dir = Path(pkg["manifest_path"]).parent
    extra = [pkg["license_file"]] if pkg.get("license_file") else []
    return Package(
        ecosystem="cargo",
        name=pkg["name"],
        version=pkg["version"],
        purl=purl("cargo", pkg["name"], pkg["version"]),
        declared=pkg.get("license"),
        files=license_files(crate_dir, extra),
        source="path" if member else source,
        url=f"https://crates.io/crates/{pkg['name']}/{pkg['version']}" if source == "crates.io" else None,
        workspace=member,
        dependents=dependents,
    )


def source_of(source: str | None) -> str:
    """"crates.io", "path", or the source as Cargo spells it (`registry+<url>`, `sparse+<url>`, `git+<url>`)."""
    if source is None:
        return "path"
    return "crates.io" if source in CRATES_IO else source
