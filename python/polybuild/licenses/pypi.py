"""Python inventory: the distributions the workspace's Python packages ship with, base dependencies plus every extra.

The package set comes from a `uv.lock` when one covers the project, else from the build environment itself: the
interpreter runs a small introspection script (its markers and installed distributions' metadata, as JSON) and
polybuild walks `Requires-Dist` from the pyprojects' requirements. License evidence always comes from installed
`.dist-info` directories (or a wheel): PEP 639 `License-Expression` and `License-File`, the legacy `License:` field
and `License ::` classifiers. Nothing is fetched; a lock package not installed anywhere keeps no evidence."""

from __future__ import annotations

import json
import re
import sys
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polybuild.errors import UserError
from polybuild.licenses.inventory import license_files, license_kind, merge, read_text
from polybuild.licenses.model import LicenseFile, Package

if TYPE_CHECKING:
    from polybuild.workspace import Target, Workspace

PYPI_INDEXES = frozenset({"https://pypi.org/simple", "https://pypi.org/simple/"})
# Runs inside the build interpreter (any Python 3.8+): only the standard library, no local modules shadowing it.
_INTROSPECT = """
import sys
sys.path[:] = [p for p in sys.path if p]
import importlib.metadata as md, json, os, platform
impl = sys.implementation
version = "{0.major}.{0.minor}.{0.micro}".format(impl.version)
if impl.version.releaselevel != "final":
    version += impl.version.releaselevel[0] + str(impl.version.serial)
markers = dict(implementation_name=impl.name, implementation_version=version, os_name=os.name,
               platform_machine=platform.machine(), platform_release=platform.release(),
               platform_system=platform.system(), platform_version=platform.version(),
               python_full_version=platform.python_version(),
               platform_python_implementation=platform.python_implementation(),
               python_version=".".join(platform.python_version_tuple()[:2]), sys_platform=sys.platform)
dists = []
for dist in md.distributions():
    meta = dist.metadata
    if meta is None or not meta.get("Name"):
        continue
    path = getattr(dist, "_path", None)
    dists.append(dict(name=meta["Name"], version=meta["Version"], path=str(path) if path else None,
                      direct_url=dist.read_text("direct_url.json"),
                      requires=meta.get_all("Requires-Dist") or []))
print(json.dumps(dict(executable=sys.executable, markers=markers, dists=dists)))
"""


def normalize(name: str) -> str:
    """PEP 503 normalized distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Dist:
    """A distribution the closure can reach: installed, locked, or one of the workspace's own packages."""

    name: str  # normalized
    version: str
    target: str | None = None  # the target id of a workspace package


Node = tuple[Dist, str | None]  # a distribution with one of its extras (None: its base requirements)


@dataclass
class Environment:
    """What the build interpreter reports: its marker values and its installed distributions by normalized name."""

    executable: str
    markers: dict[str, str]
    dists: dict[str, dict[str, Any]]

    def applies(self, marker: Any, extra: str | None = None) -> bool:
        return marker is None or marker.evaluate({**self.markers, "extra": extra or ""})


def environment(python: str | None = None) -> Environment:
    """Introspect the interpreter `python` (default: the one running polybuild)."""
    import subprocess

    python = python or sys.executable
    try:
        proc = subprocess.run([python, "-c", _INTROSPECT], capture_output=True, text=True)
    except OSError as exc:
        raise UserError(f"cannot run the build interpreter {python}: {exc.strerror}",
                        hint="set [python] interpreter to an existing Python") from None
    if proc.returncode != 0:
        raise UserError(f"the build interpreter {python} could not list its distributions:\n{proc.stderr.strip()}")
    data = json.loads(proc.stdout)
    dists: dict[str, dict[str, Any]] = {}
    for dist in data["dists"]:
        dists.setdefault(normalize(dist["name"]), dist)  # the first on sys.path is the one imported
    return Environment(data["executable"], data["markers"], dists)


def packages(ws: Workspace, *, python: str | None = None) -> list[Package]:
    """Every distribution the workspace's Python packages ship with, and those packages themselves."""
    projects = [t for t in ws.targets.values() if t.kind == "py"]
    if not projects:
        return []
    env = environment(python)
    own = {t.info["dist_name"]: t for t in projects}
    by_lock: dict[Path | None, list[Target]] = {}
    for target in projects:
        by_lock.setdefault(_lock_for(ws.root, target.dir), []).append(target)
    found: list[Package] = []
    for lock, targets in sorted(by_lock.items(), key=lambda item: str(item[0])):
        graph = LockGraph(lock, env, own, ws.release_version) if lock else EnvironmentGraph(
            env, own, ws.release_version)
        found += graph.packages(targets)
    return merge([*found, *(_own_package(t, ws.release_version) for t in projects)])


def _lock_for(root: Path, directory: Path) -> Path | None:
    """The nearest uv.lock at or above a project, inside the workspace."""
    for candidate in (directory, *directory.parents):
        if (candidate / "uv.lock").is_file():
            return candidate / "uv.lock"
        if candidate == root:
            return None
    return None


@dataclass
class Graph:
    """A dependency graph of distributions; subclasses say what each node needs and where a dist comes from."""

    env: Environment
    own: dict[str, Target]  # normalized dist name -> workspace target
    release_version: str  # the version of workspace packages that declare none
    missing: list[str] = field(default_factory=list)
    _needs: dict[Node, list[Node]] = field(default_factory=dict, init=False, repr=False)

    def needs(self, node: Node) -> list[Node]:
        """What a node requires (once per node: every root's walk shares the answers)."""
        if node not in self._needs:
            self._needs[node] = self.requires(node)
        return self._needs[node]

    def requires(self, node: Node) -> list[Node]:
        raise NotImplementedError

    def extras_of(self, target: Target) -> list[str]:
        raise NotImplementedError

    def dist_of(self, target: Target) -> Dist:
        return Dist(target.info["dist_name"], target.version or self.release_version, target.id)

    def source_of(self, dist: Dist) -> str:
        raise NotImplementedError

    def packages(self, targets: list[Target]) -> list[Package]:
        """Walk from every target's base and from each of its extras; the shortest chain per root."""
        chains: dict[Dist, list[tuple[str, ...]]] = {}
        for target in sorted(targets, key=lambda t: t.id):
            for extra in [None, *self.extras_of(target)]:
                for dist, chain in self._walk(self.dist_of(target), extra).items():
                    chains.setdefault(dist, []).append(chain)
        if self.missing:
            listed = "\n  ".join(sorted(set(self.missing)))
            raise UserError(f"the build environment ({self.env.executable}) lacks what the workspace ships:\n  "
                            f"{listed}", hint="install the workspace's packages with all their extras into it "
                            "(or point [python] interpreter at the build environment, or lock with uv)")
        return [self._package(dist, dist_chains) for dist, dist_chains in chains.items()]

    def _walk(self, root: Dist, extra: str | None) -> dict[Dist, tuple[str, ...]]:
        start: Node = (root, extra)
        label = _label(start)
        seen: dict[Node, tuple[str, ...]] = {start: (label,)}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            for dep in self.needs(node):
                if dep not in seen and dep != (root, None):
                    seen[dep] = seen[node] + (_label(node),) if node != start else seen[node]
                    queue.append(dep)
        found: dict[Dist, tuple[str, ...]] = {}
        for (dist, _), chain in seen.items():
            if dist != root:
                found.setdefault(dist, chain)
        return found

    def _package(self, dist: Dist, dependents: list[tuple[str, ...]]) -> Package:
        if dist.target:
            package = _own_package(self.own[dist.name], self.release_version)
            package.dependents = dependents
            return package
        installed = self.env.dists.get(dist.name)
        if installed and installed["version"] == dist.version and installed["path"]:
            package = evidence_from_dist_info(Path(installed["path"]))
        else:
            package = _bare_package(dist.name, dist.version)
        package.source = self.source_of(dist)
        package.url = f"https://pypi.org/project/{dist.name}/{dist.version}/" if package.source == "pypi" else None
        package.dependents = dependents
        return package


def _label(node: Node) -> str:
    dist, extra = node
    suffix = f"[{extra}]" if extra else ""
    return f"{dist.target}{suffix}" if dist.target else f"{dist.name}{suffix}@{dist.version}"


class EnvironmentGraph(Graph):
    """Requirements from the pyprojects, then each installed distribution's `Requires-Dist` for this environment."""

    def extras_of(self, target: Target) -> list[str]:
        return sorted(_project(target).get("optional-dependencies", {}))

    def source_of(self, dist: Dist) -> str:
        return _installed_source(self.env.dists[dist.name].get("direct_url"))

    def requires(self, node: Node) -> list[Node]:
        dist, extra = node
        found: list[Node] = []
        for requirement in self._requirements(node):
            if not self.env.applies(requirement.marker, extra):
                continue
            if extra and dist.target is None and self.env.applies(requirement.marker):
                continue  # a base requirement, reached through the base node
            resolved = self._resolve(requirement, _label(node))
            if resolved:
                found += [(resolved, None), *((resolved, normalize(e)) for e in sorted(requirement.extras))]
        return found

    def _requirements(self, node: Node) -> list[Any]:
        from packaging.requirements import Requirement

        dist, extra = node
        if dist.target is None:
            specs = self.env.dists[dist.name]["requires"]
        else:
            project = _project(self.own[dist.name])
            if "dependencies" in project.get("dynamic", []):
                raise UserError(f"{self.own[dist.name].manifest}: the dependencies are dynamic, so polybuild cannot "
                                "read what the package ships", hint="list them in [project] dependencies, or lock "
                                "the workspace with uv (uv.lock)")
            specs = project.get("optional-dependencies", {}).get(extra, []) if extra else project.get(
                "dependencies", [])
        return [Requirement(spec) for spec in specs]

    def _resolve(self, requirement: Any, needed_by: str) -> Dist | None:
        name = normalize(requirement.name)
        if name in self.own:
            return self.dist_of(self.own[name])
        installed = self.env.dists.get(name)
        if installed is None:
            self.missing.append(f"{requirement} (needed by {needed_by}) is not installed")
            return None
        if not _satisfies(requirement, installed["version"]):
            self.missing.append(f"{requirement} (needed by {needed_by}): {installed['version']} is installed")
        return Dist(name, installed["version"])


def _satisfies(requirement: Any, version: str) -> bool:
    from packaging.version import InvalidVersion

    try:
        return requirement.specifier.contains(version, prereleases=True)
    except InvalidVersion:
        return True  # a legacy version cannot be compared; installed is what ships


class LockGraph(Graph):
    """The packages of a uv.lock that apply to the build environment: members' dependencies and all their extras
    (development dependency groups do not ship)."""

    def __init__(self, lock: Path, env: Environment, own: dict[str, Target], release_version: str) -> None:
        import tomllib

        super().__init__(env, own, release_version)
        self.lock = lock
        try:
            data = tomllib.loads(lock.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise UserError(f"cannot read {lock}: {exc}", hint="regenerate it with `uv lock`") from None
        self.entries: dict[str, list[dict[str, Any]]] = {}
        for entry in data.get("package", []):
            self.entries.setdefault(normalize(entry["name"]), []).append(entry)

    def extras_of(self, target: Target) -> list[str]:
        return sorted(self._entry(target.info["dist_name"], None, target.id).get("optional-dependencies", {}))

    def source_of(self, dist: Dist) -> str:
        return _locked_source(self._entry(dist.name, dist.version, str(self.lock)).get("source", {}))

    def requires(self, node: Node) -> list[Node]:
        from packaging.markers import Marker

        dist, extra = node
        entry = self._entry(dist.name, None if dist.target else dist.version, _label(node))
        deps = entry.get("optional-dependencies", {}).get(extra, []) if extra else entry.get("dependencies", [])
        found: list[Node] = []
        for dep in deps:
            if not self.env.applies(Marker(dep["marker"]) if dep.get("marker") else None):
                continue
            name = normalize(dep["name"])
            target = self.own.get(name)
            resolved = self.dist_of(target) if target else Dist(
                name, self._entry(name, dep.get("version"), _label(node))["version"])
            found += [(resolved, None), *((resolved, normalize(e)) for e in dep.get("extra", []))]
        return found

    def _entry(self, name: str, version: str | None, needed_by: str) -> dict[str, Any]:
        candidates = [e for e in self.entries.get(name, []) if version is None or e.get("version") == version]
        if not candidates:
            raise UserError(f"{self.lock}: no locked package {name}{f' {version}' if version else ''} "
                            f"(needed by {needed_by})", hint="the lock is out of date: run `uv lock`")
        return candidates[0]


def _locked_source(source: dict[str, str]) -> str:
    """"pypi", "index:<url>", "git+<url>", "url+<url>" or "path", from a uv.lock package's source."""
    if "registry" in source:
        return "pypi" if source["registry"] in PYPI_INDEXES else f"index:{source['registry']}"
    if "git" in source:
        return f"git+{source['git']}"
    if "url" in source:
        return f"url+{source['url']}"
    return "path"


def _installed_source(direct_url: str | None) -> str:
    """Where an installed distribution came from, by its PEP 610 `direct_url.json` (none: an index, taken as PyPI)."""
    if not direct_url:
        return "pypi"
    info = json.loads(direct_url)
    url = info.get("url", "")
    if "vcs_info" in info:
        return f"{info['vcs_info'].get('vcs', 'git')}+{url}"
    if "dir_info" in info or url.startswith("file:"):
        return "path"
    return f"url+{url}"


def _project(target: Target) -> dict[str, Any]:
    from polybuild import tomlfile

    return tomlfile.load(target.manifest, target.manifest.name).data["project"]


def _own_package(target: Target, release_version: str) -> Package:
    """A workspace Python package, with the license its pyproject declares and the texts next to it."""
    from polybuild.licenses.purl import purl

    project = _project(target)
    license_field = project.get("license")
    declared = license_field if isinstance(license_field, str) else None
    table = license_field if isinstance(license_field, dict) else {}
    extra = [str(p.relative_to(target.dir)) for pattern in project.get("license-files", [])
             for p in sorted(target.dir.glob(pattern)) if p.is_file()]
    extra += [table["file"]] if "file" in table else []
    version = target.version or release_version
    return Package(
        ecosystem="pypi", name=target.info["dist_name"], version=version,
        purl=purl("pypi", target.info["dist_name"], version), declared=declared, legacy=table.get("text"),
        classifiers=tuple(c for c in project.get("classifiers", []) if c.startswith("License ::")),
        files=license_files(target.dir, extra), source="path", workspace=True,
    )


def _bare_package(name: str, version: str) -> Package:
    from polybuild.licenses.purl import purl

    return Package(ecosystem="pypi", name=name, version=version, purl=purl("pypi", name, version))


def evidence_from_dist_info(dist_info: Path) -> Package:
    """An installed distribution's package and license evidence, from its `.dist-info` directory."""
    listing = sorted(p.relative_to(dist_info).as_posix() for p in dist_info.rglob("*") if p.is_file())
    metadata = dist_info / ("METADATA" if "METADATA" in listing else "PKG-INFO")  # PKG-INFO: an .egg-info
    return _evidence(dist_info.name, metadata.read_text(encoding="utf-8", errors="replace"), listing,
                     lambda rel: (dist_info / rel).read_bytes())


def evidence_from_wheel(path: Path | str) -> Package:
    """A wheel's package and license evidence, read from the archive (for the wheels polybuild built)."""
    import zipfile

    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        dist_info = next((n.split("/")[0] for n in names if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)), None)
        if dist_info is None:
            raise UserError(f"{path} is not a wheel: it has no .dist-info/METADATA")
        listing = sorted(n[len(dist_info) + 1:] for n in names if n.startswith(dist_info + "/") and n[-1] != "/")
        metadata = wheel.read(f"{dist_info}/METADATA").decode("utf-8", errors="replace")
        return _evidence(dist_info, metadata, listing, lambda rel: wheel.read(f"{dist_info}/{rel}"))


def _evidence(dist_info: str, metadata: str, listing: list[str], read: Callable[[str], bytes]) -> Package:
    from polybuild.licenses.purl import purl

    headers = _headers(metadata)
    name, version = normalize(_first(headers, "Name") or ""), _first(headers, "Version") or ""
    legacy = _first(headers, "License")
    return Package(
        ecosystem="pypi", name=name, version=version, purl=purl("pypi", name, version),
        declared=_first(headers, "License-Expression"),
        legacy=None if legacy in (None, "", "UNKNOWN") else legacy,
        classifiers=tuple(c for c in headers.get("Classifier", []) if c.startswith("License ::")),
        files=_dist_info_files(dist_info, listing, headers.get("License-File", []), read),
    )


def _headers(metadata: str) -> dict[str, list[str]]:
    """METADATA's header fields, multi-line values unfolded the way importlib.metadata does."""
    import email.parser
    import textwrap

    message = email.parser.HeaderParser().parsestr(metadata)
    found: dict[str, list[str]] = {}
    for key, value in message.items():
        value = textwrap.dedent(" " * 8 + value) if "\n" in value else value
        found.setdefault(key.title(), []).append(value)
    return found


def _first(headers: dict[str, list[str]], key: str) -> str | None:
    values = headers.get(key)
    return values[0].strip() if values else None


def _dist_info_files(dist_info: str, listing: list[str], declared: list[str],
                     read: Callable[[str], bytes]) -> list[LicenseFile]:
    """The texts under `licenses/` (PEP 639) or `license_files/`, license-named files at the top, and the files
    `License-File` names wherever older backends put them."""
    chosen: dict[str, str] = {}
    for rel in listing:
        top, _, rest = rel.partition("/")
        if rest and top in ("licenses", "license_files"):
            chosen[rel] = license_kind(Path(rel).name) or "license"
        elif not rest and license_kind(rel):
            chosen[rel] = license_kind(rel) or "license"
    present = set(listing)
    for entry in declared:
        rel = next((c for c in _declared_locations(entry) if c in present), None)
        if rel is not None:
            chosen.setdefault(rel, license_kind(Path(rel).name) or "notice")
    return [f for f in _read_all(dist_info, chosen, read) if f is not None]


def _declared_locations(entry: str) -> Iterable[str]:
    yield f"licenses/{entry}"
    yield entry
    yield f"license_files/{entry}"
    yield Path(entry).name


def _read_all(dist_info: str, chosen: dict[str, str], read: Callable[[str], bytes]) -> Iterable[LicenseFile | None]:
    for rel, kind in sorted(chosen.items()):
        text = read_text(read(rel))
        yield LicenseFile(f"{dist_info}/{rel}", kind, text) if text is not None else None
