"""Rust discovery: the Cargo workspace(s) from `cargo metadata --no-deps` (offline, no resolution: cargometa.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from polybuild.config.model import Config
from polybuild.workspace import Ref, Target
from polybuild.workspace.targetinfo import RustInfo

if TYPE_CHECKING:
    from polybuild.workspace.cargometa import CargoMetadata

SHIPPED_KINDS = ("bin", "cdylib", "staticlib")
FUZZ_ENGINES = frozenset({"libfuzzer-sys", "afl", "honggfuzz"})
BENCH_HARNESSES = frozenset({"criterion", "divan", "iai", "iai-callgrind"})


def discover(root: Path, listing: list[str], config: Config, metadata: CargoMetadata) -> dict[Path, Target]:
    """Every workspace member crate, keyed by its directory (so Python discovery can claim maturin crates)."""
    manifests = sorted((p for p in listing if p == "Cargo.toml" or p.endswith("/Cargo.toml")), key=_depth)
    crates: dict[Path, Target] = {}
    for rel in manifests:
        manifest = (root / rel).resolve()
        if manifest.parent in crates:
            continue
        for target in _members(root, metadata.members(manifest, manifest.relative_to(root).as_posix()), set(listing)):
            crates.setdefault(target.dir, target)
    return crates


def _depth(rel: str) -> tuple[int, str]:
    return rel.count("/"), rel


def _members(root: Path, meta: dict, listed: set[str]) -> list[Target]:
    """The member crates of one `cargo metadata --no-deps` answer that this workspace lists."""
    ws_root = Path(meta["workspace_root"])
    ws_version = _workspace_version(ws_root / "Cargo.toml")
    members = set(meta.get("workspace_members", ()))
    targets = []
    for pkg in meta["packages"]:
        if pkg["id"] not in members:
            continue
        crate_manifest = Path(pkg["manifest_path"])
        try:
            rel = crate_manifest.relative_to(root).as_posix()
        except ValueError:
            continue  # a member outside this workspace root is not ours to build
        if rel not in listed:
            continue  # excluded, ignored or in a nested workspace
        targets.append(_target(pkg, crate_manifest, ws_root, meta["target_directory"], ws_version, rel))
    return targets


def _target(pkg: dict, manifest: Path, ws_root: Path, target_dir: str, ws_version: str | None, rel: str) -> Target:
    shipped = {kind: sorted(t["name"] for t in pkg["targets"] if kind in t["kind"]) for kind in SHIPPED_KINDS}
    lib_name = next((t["name"] for t in pkg["targets"] if {"lib", "cdylib", "rlib"} & set(t["kind"])), None)
    refs = [
        Ref("path", dep["path"], f"{rel}: [dependencies] {dep['name']}", source_only=True)
        for dep in pkg["dependencies"]
        if dep.get("path") and dep.get("kind") != "dev"
    ]
    has_artifacts = any(shipped.values())
    return Target(
        id=f"rust:{pkg['name']}",
        name=pkg["name"],
        kind="rust",
        builder="cargo" if has_artifacts else None,
        dir=manifest.parent,
        manifest=manifest,
        version=pkg["version"],
        features=frozenset(pkg["features"]),
        info=RustInfo(
            crate=pkg["name"],
            crate_manifest=str(manifest),
            cargo_workspace=str(ws_root),
            target_dir=target_dir,
            workspace_version=ws_version,
            bins=shipped["bin"],
            # cargo skips a bin whose `required-features` are not enabled (dynamo-llm's bench_local_transfer_v2)
            bin_requires={t["name"]: sorted(t["required-features"]) for t in pkg["targets"]
                          if "bin" in t["kind"] and t.get("required-features")},
            feature_table={name: sorted(f for f in enables if "/" not in f and not f.startswith("dep:"))
                           for name, enables in pkg["features"].items()},
            cdylibs=shipped["cdylib"],
            staticlibs=[n.replace("-", "_") for n in shipped["staticlib"]],  # what cgo's -l<name> links
            lib_name=lib_name,
            harness=harness(pkg),
        ),
        refs=refs,
    )


def harness(pkg: dict) -> str | None:
    """Why a crate is a test harness rather than a product, or None: "fuzz" (cargo-fuzz's `cargo-fuzz = true`
    metadata, or publish = false with a fuzzing engine as a dependency), "bench" (publish = false with a benchmark
    harness as a normal dependency: its binaries drive benchmarks) or "wasm" (a cdylib that depends on wasm-bindgen
    for every platform, so wasm32 is its only one). `publish = false` alone is an internal crate, still built."""
    normal = {d["name"]: d.get("target") for d in pkg["dependencies"] if d.get("kind") in (None, "normal")}
    private = pkg.get("publish") == []
    if (pkg.get("metadata") or {}).get("cargo-fuzz") is True or (private and FUZZ_ENGINES & set(normal)):
        return "fuzz"
    if private and BENCH_HARNESSES & set(normal):
        return "bench"
    cdylib = any("cdylib" in t["kind"] for t in pkg["targets"])
    if cdylib and "wasm-bindgen" in normal and normal["wasm-bindgen"] is None:
        return "wasm"
    return None


def _workspace_version(cargo_toml: Path) -> str | None:
    import tomllib

    try:
        data = tomllib.loads(cargo_toml.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return data.get("workspace", {}).get("package", {}).get("version")
