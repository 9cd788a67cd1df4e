"""Where the workspace version lives: every manifest key and exact pin a release must stamp, with its line.

Discovery reads the targets polybuild already found (Cargo crates and workspaces, pyproject files) and looks only
at keys that must equal the release version: `[workspace.package] version`, a crate's own `[package] version`
(not `version.workspace = true`, which inherits), version requirements on internal path dependencies, the Cargo.lock
entries of the workspace's own crates (so `cargo --locked` keeps working), `[project].version` (unless dynamic),
`==` pins between workspace packages, polybuild's own `version` key and a Go module's (`[targets.<name>] version`).
The Go stamp (-ldflags -X) is derived from the module's version group, never written.

Each place records whose version it is (`owners`, target ids): a crate's or project's own version and its lock
entries belong to that package, a pin to the package it pins, `[workspace.package] version` to the crates that
inherit it; polybuild's `version` key belongs to no package (the workspace). `groups` decides what each must equal.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from polybuild.support import tomlfile
from polybuild.versioning.convert import ReleaseVersion
from polybuild.workspace import Workspace
from polybuild.workspace.targetinfo import CrateInfo

KeyPath = tuple[str | int, ...]
_CARGO_DEP_TABLES = ("dependencies", "dev-dependencies", "build-dependencies")
_CARGO_REQ = re.compile(r"^\s*[=^~]?\s*(?P<version>[0-9A-Za-z.+-]+)\s*$")
_PY_PIN = re.compile(r"(?<![=!<>~])==\s*(?P<version>[0-9A-Za-z.!+-]+)")


@dataclass(frozen=True)
class Place:
    """One string in one TOML file holding the version; `start:end` is the version inside that string."""

    file: Path
    keypath: KeyPath
    line: int
    text: str
    start: int
    end: int
    scheme: str  # "semver" (Cargo, polybuild config) or "pep440" (pyproject)
    label: str
    owners: tuple[str, ...] = ()  # the target ids whose version this is; () for the workspace's own
    declares: bool = False  # a package's own version (not a pin or a lock entry): what a group's version is read from

    @property
    def found(self) -> str:
        return self.text[self.start:self.end]

    def expected(self, version: ReleaseVersion) -> str:
        return version.semver if self.scheme == "semver" else version.pep440

    def stamped(self, version: ReleaseVersion) -> str:
        """The whole string with only the version replaced: `=0.3.0` keeps its `=`, a pin keeps its name."""
        return self.text[:self.start] + self.expected(version) + self.text[self.end:]


def find_places(ws: Workspace) -> list[Place]:
    """Every place in the workspace that must hold a release version, in file order."""
    places = [*_config_places(ws), *_go_places(ws)]
    manifests = {path: tomlfile.load(path) for path in _cargo_manifests(ws)}
    by_manifest = _crate_owners(ws)
    inheritors = _inheritors(ws, manifests, by_manifest)
    for doc in manifests.values():
        places += _cargo_places(doc, by_manifest, inheritors.get(doc.path.parent, ()))
    workspaces = _cargo_members(ws)
    everywhere = _unique_crates(workspaces)
    for root, crates in workspaces.items():  # a nested workspace locks the path dependencies it reaches too
        places += _cargo_lock_places(root / "Cargo.lock", {**everywhere, **crates})
    by_dist = {t.info.dist_name: t.id for t in ws.targets.values() if t.kind == "py"}
    for target in sorted((t for t in ws.targets.values() if t.kind == "py"), key=lambda t: t.manifest):
        places += _pyproject_places(target.manifest, target.id, by_dist)
    return places


def _go_places(ws: Workspace) -> Iterator[Place]:
    """A Go module's own `version` (`[targets.<name>] version`: go.mod declares none), when this config file
    sets it."""
    config = ws.config
    if config.file is None:
        return
    written = config.layers[-1].raw.get("targets", {}) if config.layers else None
    for key, settings in config["targets"].items():
        version = settings["version"]
        if version is None or (written is not None and "version" not in written.get(key, {})):
            continue
        owner = next(t.id for t in ws.targets.values() if t.settings is settings)
        place = string_place(config.file, (*config.prefix, "targets", key, "version"), version, "semver",
                             f"{owner} version")
        yield replace(place, owners=(owner,), declares=True)


def _config_places(ws: Workspace) -> Iterator[Place]:
    """polybuild's `version` key, which wins over the manifests as the workspace version (SemVer, like Go's)."""
    config = ws.config
    if config.file is None or not config["version"]:
        return
    if config.layers and "version" not in config.layers[-1].raw:  # set by an include: not this file's to stamp
        return
    keypath = (*config.prefix, "version")
    yield string_place(config.file, keypath, config["version"], "semver", "polybuild version")


def _cargo_manifests(ws: Workspace) -> list[Path]:
    """Crate manifests (maturin packages included) and the roots of their Cargo workspaces."""
    manifests: set[Path] = set()
    for t in ws.targets.values():
        if isinstance(t.info, CrateInfo):
            manifests.add(Path(t.info.cargo_workspace) / "Cargo.toml")
            manifests.add(Path(t.info.crate_manifest))
    return sorted(m for m in manifests if m.is_file())


def _cargo_members(ws: Workspace) -> dict[Path, dict[str, str]]:
    """Each Cargo workspace root and its crates: crate name -> target id."""
    members: dict[Path, dict[str, str]] = {}
    for t in ws.targets.values():
        if isinstance(t.info, CrateInfo):
            members.setdefault(Path(t.info.cargo_workspace), {})[t.info.crate] = t.id
    return members


def _unique_crates(workspaces: dict[Path, dict[str, str]]) -> dict[str, str]:
    """Crate name -> target id across every Cargo workspace, for the names only one crate has (a lock names no path)."""
    seen: dict[str, list[str]] = {}
    for crates in workspaces.values():
        for name, target_id in crates.items():
            seen.setdefault(name, []).append(target_id)
    return {name: ids[0] for name, ids in seen.items() if len(ids) == 1}


def _crate_owners(ws: Workspace) -> dict[Path, str]:
    """Crate manifest -> the target that builds the crate (a maturin package owns its extension crate)."""
    return {Path(t.info.crate_manifest).resolve(): t.id for t in ws.targets.values() if isinstance(t.info, CrateInfo)}


def _inheritors(ws: Workspace, manifests: dict[Path, tomlfile.TomlFile],
                by_manifest: dict[Path, str]) -> dict[Path, tuple[str, ...]]:
    """Cargo workspace root -> the crates whose `version.workspace = true` reads its [workspace.package] version."""
    found: dict[Path, list[str]] = {}
    for t in sorted(ws.targets.values(), key=lambda t: t.id):
        manifest = Path(t.info.crate_manifest) if isinstance(t.info, CrateInfo) else None
        doc = manifests.get(manifest) if manifest else None
        version = doc.data.get("package", {}).get("version") if doc else None
        if isinstance(version, dict) and version.get("workspace") is True:
            found.setdefault(Path(t.info.cargo_workspace), []).append(by_manifest[manifest.resolve()])
    return {root: tuple(ids) for root, ids in found.items()}


def _cargo_places(doc: tomlfile.TomlFile, by_manifest: dict[Path, str],
                  inheritors: tuple[str, ...]) -> Iterator[Place]:
    data = doc.data
    ws_version = data.get("workspace", {}).get("package", {}).get("version")
    if isinstance(ws_version, str):
        yield replace(string_place(doc, ("workspace", "package", "version"), ws_version, "semver",
                                    "[workspace.package] version"), owners=inheritors, declares=True)
    own = data.get("package", {}).get("version")
    if isinstance(own, str):  # `version.workspace = true` is a table: inherited, nothing to stamp
        owner = by_manifest.get(doc.path.resolve())
        yield replace(string_place(doc, ("package", "version"), own, "semver",
                                    f"crate {data['package'].get('name')}"),
                      owners=(owner,) if owner else (), declares=True)
    for table_path, deps in _cargo_dependency_tables(data):
        for name, spec in deps.items():
            if isinstance(spec, dict) and "path" in spec and isinstance(spec.get("version"), str):
                m = _CARGO_REQ.match(spec["version"])
                if m:
                    pinned = by_manifest.get((doc.path.parent / spec["path"] / "Cargo.toml").resolve())
                    yield replace(_place(doc, (*table_path, name, "version"), spec["version"], m.span("version"),
                                         "semver", f"pin {name}"), owners=(pinned,) if pinned else ())


def _cargo_dependency_tables(data: dict[str, Any]) -> Iterator[tuple[KeyPath, dict[str, Any]]]:
    """[workspace.dependencies], [dependencies] and friends, and their [target.'cfg'.*] forms."""
    yield ("workspace", "dependencies"), data.get("workspace", {}).get("dependencies", {})
    for table in _CARGO_DEP_TABLES:
        yield (table,), data.get(table, {})
    for cfg, tables in data.get("target", {}).items():
        for table in _CARGO_DEP_TABLES:
            yield ("target", cfg, table), tables.get(table, {})


def _cargo_lock_places(lock: Path, crates: dict[str, str]) -> Iterator[Place]:
    """The lock entries of the workspace's crates and of the path dependencies it reaches (no `source`): stale ones
    make `cargo --locked` fail."""
    if not lock.is_file():
        return
    doc = tomlfile.load(lock)
    lines = doc.text.splitlines()
    for index, package in enumerate(doc.data.get("package", [])):
        if package.get("name") in crates and "source" not in package:
            line = _lock_entry_line(lines, package["name"], package["version"])
            yield Place(lock, ("package", index, "version"), line, package["version"], 0, len(package["version"]),
                        "semver", f"lock {package['name']}", owners=(crates[package["name"]],))


def _lock_entry_line(lines: list[str], name: str, version: str) -> int:
    """The `version = ...` line that follows `name = "<name>"` in a Cargo.lock."""
    for i, text in enumerate(lines):
        if text.strip() == f'name = "{name}"':
            return next((j + 1 for j in range(i + 1, len(lines)) if lines[j].startswith("version")), i + 1)
    return 1


def _pyproject_places(manifest: Path, owner: str, by_dist: dict[str, str]) -> Iterator[Place]:
    doc = tomlfile.load(manifest)
    project = doc.data.get("project", {})
    if isinstance(project.get("version"), str) and "version" not in project.get("dynamic", []):
        yield replace(string_place(doc, ("project", "version"), project["version"], "pep440", f"{project['name']}"),
                      owners=(owner,), declares=True)
    lists: list[tuple[KeyPath, list[Any]]] = [(("project", "dependencies"), project.get("dependencies", []))]
    lists += [(("project", "optional-dependencies", extra), reqs)
              for extra, reqs in project.get("optional-dependencies", {}).items()]
    for keypath, requirements in lists:
        for index, requirement in enumerate(requirements):
            pin = _internal_pin(requirement, by_dist)
            if pin:
                pinned, span = pin
                yield replace(_place(doc, (*keypath, index), requirement, span, "pep440",
                                     f"pin {requirement[:span[0]].strip()}"), owners=(pinned,))


def _internal_pin(requirement: Any, by_dist: dict[str, str]) -> tuple[str, tuple[int, int]] | None:
    """The workspace package an exact `pkg==X` pin names and where its version is, or None for anything else."""
    if not isinstance(requirement, str):
        return None
    try:
        parsed = Requirement(requirement)
    except InvalidRequirement:
        return None
    pinned = by_dist.get(canonicalize_name(parsed.name))
    if pinned is None or [s.operator for s in parsed.specifier] != ["=="]:
        return None
    m = _PY_PIN.search(requirement)
    return (pinned, m.span("version")) if m else None


def string_place(doc: tomlfile.TomlFile, keypath: KeyPath, text: str, scheme: str, label: str) -> Place:
    return _place(doc, keypath, text, (0, len(text)), scheme, label)


def _place(doc: tomlfile.TomlFile, keypath: KeyPath, text: str, span: tuple[int, int], scheme: str,
           label: str) -> Place:
    return Place(doc.path, keypath, _line_of(doc, keypath, text), text, span[0], span[1], scheme, label)


def _line_of(doc: tomlfile.TomlFile, keypath: KeyPath, text: str) -> int:
    """The key's line; for an array element, the first line from the array's key on that holds the string."""
    keys = [k for k in keypath if isinstance(k, str)]
    line = doc.line_of(keys) or 1
    if len(keys) == len(keypath):
        return line
    lines = doc.text.splitlines()
    quoted = (f'"{text}"', f"'{text}'")
    return next((i + 1 for i in range(line - 1, len(lines)) if any(q in lines[i] for q in quoted)), line)
