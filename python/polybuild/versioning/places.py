"""Where the workspace version lives: every manifest key and exact pin a release must stamp, with its line.

Discovery reads the targets polybuild already found (Cargo crates and workspaces, pyproject files) and looks only
at keys that must equal the release version: `[workspace.package] version`, a crate's own `[package] version`
(not `version.workspace = true`, which inherits), version requirements on internal path dependencies, the Cargo.lock
entries of the workspace's own crates (so `cargo --locked` keeps working), `[project].version` (unless dynamic),
`==` pins between workspace packages, and polybuild's own `version` key. The Go stamp is derived, never written.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from polybuild import tomlfile
from polybuild.versioning.convert import ReleaseVersion
from polybuild.workspace import Workspace

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

    @property
    def found(self) -> str:
        return self.text[self.start:self.end]

    def expected(self, version: ReleaseVersion) -> str:
        return version.semver if self.scheme == "semver" else version.pep440

    def stamped(self, version: ReleaseVersion) -> str:
        """The whole string with only the version replaced: `=0.3.0` keeps its `=`, a pin keeps its name."""
        return self.text[:self.start] + self.expected(version) + self.text[self.end:]


@dataclass(frozen=True)
class DerivedStamp:
    """A version polybuild passes at build time (Go's -ldflags -X): shown, never written."""

    target: str
    variable: str
    value: str


def find_places(ws: Workspace) -> list[Place]:
    """Every place in the workspace that must hold the release version, in file order."""
    places = list(_config_places(ws))
    for manifest in _cargo_manifests(ws):
        places += _cargo_places(manifest)
    for root, crates in _cargo_members(ws).items():
        places += _cargo_lock_places(root / "Cargo.lock", crates)
    dist_names = {t.info["dist_name"] for t in ws.targets.values() if t.kind == "py"}
    for target in sorted((t for t in ws.targets.values() if t.kind == "py"), key=lambda t: t.manifest):
        places += _pyproject_places(target.manifest, dist_names)
    return places


def go_stamps(ws: Workspace) -> list[DerivedStamp]:
    """The Go binaries stamped with the workspace version through -ldflags -X at build time."""
    variable = ws.config["go"]["version-variable"]
    return [DerivedStamp(t.id, variable, ws.release_version)
            for t in ws.targets.values() if t.kind == "go" and t.builder == "go"]


def _config_places(ws: Workspace) -> Iterator[Place]:
    """polybuild's `version` key, which wins over the manifests as the workspace version (SemVer, like Go's)."""
    config = ws.config
    if config.file is None or not config["version"]:
        return
    if config.layers and "version" not in config.layers[-1].raw:  # set by an include: not this file's to stamp
        return
    keypath = (*config.prefix, "version")
    yield _string_place(config.file, keypath, config["version"], "semver", "polybuild version")


def _cargo_manifests(ws: Workspace) -> list[Path]:
    """Crate manifests (maturin packages included) and the roots of their Cargo workspaces."""
    manifests: set[Path] = set()
    for t in ws.targets.values():
        if "cargo_workspace" in t.info:
            manifests.add(Path(t.info["cargo_workspace"]) / "Cargo.toml")
            manifests.add(Path(t.info.get("crate_manifest", t.manifest)))
    return sorted(m for m in manifests if m.is_file())


def _cargo_members(ws: Workspace) -> dict[Path, set[str]]:
    """Each Cargo workspace root and the names of its crates."""
    members: dict[Path, set[str]] = {}
    for t in ws.targets.values():
        if "cargo_workspace" in t.info:
            members.setdefault(Path(t.info["cargo_workspace"]), set()).add(t.info["crate"])
    return members


def _cargo_places(manifest: Path) -> Iterator[Place]:
    doc = tomlfile.load(manifest)
    data = doc.data
    ws_version = data.get("workspace", {}).get("package", {}).get("version")
    if isinstance(ws_version, str):
        yield _string_place(doc, ("workspace", "package", "version"), ws_version, "semver",
                            "[workspace.package] version")
    own = data.get("package", {}).get("version")
    if isinstance(own, str):  # `version.workspace = true` is a table: inherited, nothing to stamp
        yield _string_place(doc, ("package", "version"), own, "semver", f"crate {data['package'].get('name')}")
    for table_path, deps in _cargo_dependency_tables(data):
        for name, spec in deps.items():
            if isinstance(spec, dict) and "path" in spec and isinstance(spec.get("version"), str):
                m = _CARGO_REQ.match(spec["version"])
                if m:
                    yield _place(doc, (*table_path, name, "version"), spec["version"], m.span("version"),
                                 "semver", f"pin {name}")


def _cargo_dependency_tables(data: dict[str, Any]) -> Iterator[tuple[KeyPath, dict[str, Any]]]:
    """[workspace.dependencies], [dependencies] and friends, and their [target.'cfg'.*] forms."""
    yield ("workspace", "dependencies"), data.get("workspace", {}).get("dependencies", {})
    for table in _CARGO_DEP_TABLES:
        yield (table,), data.get(table, {})
    for cfg, tables in data.get("target", {}).items():
        for table in _CARGO_DEP_TABLES:
            yield ("target", cfg, table), tables.get(table, {})


def _cargo_lock_places(lock: Path, crates: set[str]) -> Iterator[Place]:
    """The lock entries of the workspace's own crates (no `source`): stale ones make `cargo --locked` fail."""
    if not lock.is_file():
        return
    doc = tomlfile.load(lock)
    lines = doc.text.splitlines()
    for index, package in enumerate(doc.data.get("package", [])):
        if package.get("name") in crates and "source" not in package:
            line = _lock_entry_line(lines, package["name"], package["version"])
            yield Place(lock, ("package", index, "version"), line, package["version"], 0, len(package["version"]),
                        "semver", f"lock {package['name']}")


def _lock_entry_line(lines: list[str], name: str, version: str) -> int:
    """The `version = ...` line that follows `name = "<name>"` in a Cargo.lock."""
    for i, text in enumerate(lines):
        if text.strip() == f'name = "{name}"':
            return next((j + 1 for j in range(i + 1, len(lines)) if lines[j].startswith("version")), i + 1)
    return 1


def _pyproject_places(manifest: Path, dist_names: set[str]) -> Iterator[Place]:
    doc = tomlfile.load(manifest)
    project = doc.data.get("project", {})
    if isinstance(project.get("version"), str) and "version" not in project.get("dynamic", []):
        yield _string_place(doc, ("project", "version"), project["version"], "pep440", f"{project['name']}")
    lists: list[tuple[KeyPath, list[Any]]] = [(("project", "dependencies"), project.get("dependencies", []))]
    lists += [(("project", "optional-dependencies", extra), reqs)
              for extra, reqs in project.get("optional-dependencies", {}).items()]
    for keypath, requirements in lists:
        for index, requirement in enumerate(requirements):
            span = _internal_pin(requirement, dist_names)
            if span:
                yield _place(doc, (*keypath, index), requirement, span, "pep440",
                             f"pin {requirement[:span[0]].strip()}")


def _internal_pin(requirement: Any, dist_names: set[str]) -> tuple[int, int] | None:
    """Where the version of an exact `pkg==X` pin on a workspace package is, or None for anything else."""
    if not isinstance(requirement, str):
        return None
    try:
        parsed = Requirement(requirement)
    except InvalidRequirement:
        return None
    if canonicalize_name(parsed.name) not in dist_names or [s.operator for s in parsed.specifier] != ["=="]:
        return None
    m = _PY_PIN.search(requirement)
    return m.span("version") if m else None


def _string_place(doc: tomlfile.TomlFile, keypath: KeyPath, text: str, scheme: str, label: str) -> Place:
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
