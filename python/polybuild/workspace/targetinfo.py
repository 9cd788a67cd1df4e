"""What discovery read from a target's manifest, typed per kind (`Target.info`).

One frozen dataclass per kind of target: `RustInfo` (a crate), `PythonInfo` (a Python package), `MaturinInfo` (a
Python package that is also a Cargo crate: both), `GoInfo` (a Go module) and `ImageInfo` (an image of the config).
`CrateInfo` is what a Rust target and a maturin package share: where cargo runs for them. Readers ask by type
(`isinstance(t.info, CrateInfo)`), never by key. A change of what a run builds with (`container build --var`) is a
new info (`dataclasses.replace`), never an edit of the discovered one.

Discovery is remembered between runs (`memo.py`) as JSON: `to_json` and `from_json` are that format, and a change
of these classes bumps `memo.FORMAT`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CrateInfo:
    """A Cargo crate in its Cargo workspace."""

    crate: str  # the package name, as `cargo -p` takes it
    crate_manifest: str  # its Cargo.toml (a maturin target's own manifest is its pyproject.toml)
    cargo_workspace: str  # the root directory of its Cargo workspace, where cargo runs
    target_dir: str  # that workspace's target directory, as `cargo metadata` reports it
    workspace_version: str | None  # [workspace.package] version of that workspace


@dataclass(frozen=True)
class RustInfo(CrateInfo):
    """A crate of a Cargo workspace (a Rust target)."""

    bins: list[str]
    bin_requires: dict[str, list[str]]  # bin -> its `required-features` (cargo skips the bin without them)
    feature_table: dict[str, list[str]]  # feature -> the crate's own features it enables
    cdylibs: list[str]
    staticlibs: list[str]  # library names as cgo's `-l<name>` links them
    lib_name: str | None
    harness: str | None  # "fuzz", "bench" or "wasm": a test harness, not a product (`workspace.cargo.harness`)


@dataclass(frozen=True)
class PythonInfo:
    """A Python package (its pyproject.toml)."""

    dist_name: str  # the normalized distribution name (PEP 503)
    backend: str  # [build-system] build-backend
    build_requires: list[str]  # [build-system] requires


@dataclass(frozen=True)
class MaturinInfo(PythonInfo, CrateInfo):
    """A Python package built by maturin from the crate it wraps: the crate and the package are one target."""

    module_name: str | None  # [tool.maturin] module-name
    maturin_features: list[str]  # [tool.maturin] features
    abi3: bool  # one abi3 wheel for every Python (pyo3's `abi3*` feature)


@dataclass(frozen=True)
class CgoLink:
    """A Rust static library of the workspace that a cgo preamble links."""

    lib: str  # by the name `-l<name>` takes
    source: str  # file:line of the `#cgo LDFLAGS` line
    by_path: bool  # named as a `lib<name>.a` path instead of `-l<name>`
    path: str | None  # that path as written (`${SRCDIR}/lib/libx.a`), where `cgo-stage` places the library


@dataclass(frozen=True)
class GoInfo:
    """A Go module (its go.mod and the package clauses of its files)."""

    module: str  # the module path
    binaries: dict[str, str]  # binary name -> its `main` package's directory, relative to the module
    binary_clashes: dict[str, list[str]]  # binary names several `main` packages would produce (a build error)
    cgo_links: list[CgoLink]


@dataclass(frozen=True)
class ImageInfo:
    """An image of the config's [images]."""

    spec: dict[str, Any]  # its [images.<name>] table, with the command line's overrides for this run
    inputs: list[str]  # root-relative globs: its template's directory and its extra context files
    engine: str  # [container] engine


TargetInfo = RustInfo | PythonInfo | MaturinInfo | GoInfo | ImageInfo

_TYPES: dict[str, type[TargetInfo]] = {cls.__name__: cls for cls in (RustInfo, PythonInfo, MaturinInfo, GoInfo,
                                                                     ImageInfo)}


def to_json(info: TargetInfo) -> dict[str, Any]:
    """The info as JSON, tagged with its type."""
    return {"type": type(info).__name__, **dataclasses.asdict(info)}


def from_json(data: dict[str, Any]) -> TargetInfo:
    """The info `to_json` wrote."""
    fields = {k: v for k, v in data.items() if k != "type"}
    cls = _TYPES[data["type"]]
    if cls is GoInfo:
        fields["cgo_links"] = [CgoLink(**link) for link in fields["cgo_links"]]
    return cls(**fields)
