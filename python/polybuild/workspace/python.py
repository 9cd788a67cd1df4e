"""Python discovery: every pyproject.toml under the configured roots; the build backend picks the builder.

A pyproject whose backend is maturin wraps a crate: the crate and the package become one Python-extension target.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from polybuild.config.model import Config
from polybuild.support import tomlfile
from polybuild.support.errors import ConfigError
from polybuild.workspace import Ref, Target
from polybuild.workspace.files import under_dir
from polybuild.workspace.targetinfo import MaturinInfo, PythonInfo, RustInfo

_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")


def discover(root: Path, listing: list[str], config: Config, crates: dict[Path, Target]) -> list[Target]:
    """Python targets; maturin-wrapped crates are removed from `crates` and folded into their package."""
    found: list[Target] = []
    seen: set[str] = set()
    for py_root in config["python-roots"]:
        for rel in under_dir(listing, py_root):
            if rel in seen or not (rel == "pyproject.toml" or rel.endswith("/pyproject.toml")):
                continue
            seen.add(rel)
            target = _target(root, rel, crates)
            if target is not None:
                found.append(target)
    return found


def _target(root: Path, rel: str, crates: dict[Path, Target]) -> Target | None:
    doc = tomlfile.load(root / rel, display=rel)
    project = doc.data.get("project")
    if project is None:
        return None  # a config-only pyproject (tools, or the polybuild config of a non-Python root)
    if not isinstance(project, dict) or not isinstance(project.get("name"), str):
        raise doc.error(("project", "name"), "[project] needs a 'name' string")
    build_system = doc.data.get("build-system", {})
    if not isinstance(build_system, dict):
        raise doc.error(("build-system",), "'build-system' must be a table ([build-system])")
    backend = build_system.get("build-backend", "setuptools.build_meta:__legacy__")
    if not isinstance(backend, str) or not backend:
        raise doc.error(("build-system", "build-backend"), "[build-system] build-backend must be a module name",
                        hint='e.g. build-backend = "hatchling.build"')
    name = project["name"]
    directory = (root / rel).parent  # the root is resolved and listed paths have no symlinked directories
    target = Target(
        id=f"py:{name}",
        name=name,
        kind="py",
        builder="maturin" if backend == "maturin" else "pep517",
        dir=directory,
        manifest=root / rel,
        version=project.get("version"),
        info=PythonInfo(dist_name=canonicalize_name(name), backend=backend, build_requires=_build_requires(doc)),
        refs=[Ref("py", canonicalize_name(n), f"{rel}: {n}", required=False) for n in _requirement_names(doc)],
    )
    if backend == "maturin":
        _absorb_crate(doc, target, crates)
    return target


def _build_requires(doc: tomlfile.TomlFile) -> list[str]:
    requires = doc.data.get("build-system", {}).get("requires", ["setuptools>=40.8.0"])
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        raise doc.error(("build-system", "requires"), "[build-system] requires must be an array of strings")
    return requires


def _requirement_names(doc: tomlfile.TomlFile) -> list[str]:
    project: dict[str, Any] = doc.data["project"]
    reqs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        reqs.extend(extra)
    reqs.extend(doc.data.get("build-system", {}).get("requires", []))
    names = []
    for req in reqs:
        m = _REQ_NAME.match(req) if isinstance(req, str) else None
        if m:
            names.append(m[1])
    return names


def _absorb_crate(doc: tomlfile.TomlFile, target: Target, crates: dict[Path, Target]) -> None:
    """The package takes the crate's place: its features, its dependencies and its facts (a `MaturinInfo`)."""
    maturin = doc.data.get("tool", {}).get("maturin", {})
    manifest = Path(os.path.normpath(target.dir / maturin.get("manifest-path", "Cargo.toml")))
    crate = crates.pop(manifest.parent, None)
    if crate is None:
        raise ConfigError(
            f"maturin package '{target.name}' wraps {manifest}, which is not a crate of this workspace",
            file=doc.display, line=doc.line_of(("tool", "maturin", "manifest-path")) or doc.line_of(("build-system",)),
            hint="add the crate to the Cargo workspace members, or set [tool.maturin] manifest-path",
        )
    package: PythonInfo = target.info
    crate_info: RustInfo = crate.info
    features = list(maturin.get("features", []))
    target.features = crate.features
    target.refs.extend(crate.refs)
    target.info = MaturinInfo(
        dist_name=package.dist_name,
        backend=package.backend,
        build_requires=package.build_requires,
        crate=crate.name,
        crate_manifest=str(manifest),
        cargo_workspace=crate_info.cargo_workspace,
        target_dir=crate_info.target_dir,
        workspace_version=crate_info.workspace_version,
        module_name=maturin.get("module-name"),
        maturin_features=features,
        abi3=_is_abi3(manifest, Path(crate_info.cargo_workspace), features),
    )
    target.version = target.version or crate.version


def _is_abi3(crate_manifest: Path, cargo_workspace: Path, maturin_features: list[str]) -> bool:
    """Whether a PyO3 crate builds one abi3 wheel for every Python (pyo3's `abi3*` feature, possibly through
    `[workspace.dependencies]` or maturin's `features`)."""
    crate = _toml(crate_manifest)
    dep = crate.get("dependencies", {}).get("pyo3", {})
    features = set(dep.get("features", [])) if isinstance(dep, dict) else set()
    if isinstance(dep, dict) and dep.get("workspace"):
        shared = _toml(cargo_workspace / "Cargo.toml").get("workspace", {}).get("dependencies", {}).get("pyo3", {})
        features |= set(shared.get("features", [])) if isinstance(shared, dict) else set()
    features |= set(maturin_features)
    return any(f == "abi3" or f.startswith("abi3-") or f.endswith("/abi3") or "/abi3-" in f for f in features)


def _toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}
