"""Python inventory: the distributions the workspace's Python packages ship with, base dependencies plus every extra.

Nothing installed on the machine is read. The package set comes from the `uv.lock` that covers a project; without
one, uv resolves each project's requirements for the target platform (the base, and each extra on its own, so extras
that cannot be installed together are still scanned), cached by the requirements' digest. License evidence comes
from the exact distributions the lock or resolution names (`distributions.py`: fetched once by `--fetch`, a wheel's
METADATA and license files by HTTP Range or the whole file verified against its hash, then read offline): PEP 639
`License-Expression` and `License-File`, the legacy `License:` field and `License ::` classifiers. A distribution
not fetched yet is an error naming it and the command that fetches it. Extras and targets `[licenses] exclude-*`
names are not walked (`exclusions.py`)."""

from __future__ import annotations

import re
import sys
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name

from polybuild.licenses.inventory import license_files, license_kind, merge, read_text
from polybuild.licenses.model import LicenseFile, Package
from polybuild.support.errors import UserError

if TYPE_CHECKING:
    from polybuild.licenses.exclusions import Exclusions
    from polybuild.workspace import Target, Workspace
    from polybuild.workspace.pythonlock import Artifact, Lock
    from polybuild.workspace.pythonlock import LockedPackage as Locked
    from polybuild.workspace.pythonlock import Target as Platform

PYPI_INDEXES = frozenset({"https://pypi.org/simple", "https://pypi.org/simple/"})
PYPI_FILES = "https://files.pythonhosted.org/"
FETCH_COMMAND = "polybuild deny --fetch"  # also `attributions --fetch`, `sbom --fetch`
_COMPILE_JOBS = 4  # uv resolutions side by side (each mostly waits for the index)


@dataclass(frozen=True)
class Dist:
    """A distribution the closure can reach: locked or resolved, or one of the workspace's own packages."""

    name: str  # normalized
    version: str
    target: str | None = None  # the target id of a workspace package


Node = tuple[Dist, str | None]  # a distribution with one of its extras (None: its base requirements)


@dataclass
class Sources:
    """Where the inventory reads from: polybuild's cache, the target platforms, and whether it may download."""

    cache: Path  # <cache>/licenses/pypi
    platforms: list[Platform]
    fetch: str | None  # None: offline; else distributions.METADATA or FULL


def packages(ws: Workspace, *, fetch: bool | str | None = False, leave_out: Exclusions | None = None) -> list[Package]:
    """Every distribution the workspace's Python packages ship with, and those packages themselves; `fetch` (True:
    metadata by Range where possible, or a mode of `distributions`) downloads what is missing; the roots `leave_out`
    names are not walked (nor fetched)."""
    from polybuild.licenses.distributions import METADATA
    from polybuild.licenses.exclusions import Exclusions

    leave_out = leave_out or Exclusions()
    projects = [t for t in ws.targets.values() if t.kind == "py" and not leave_out.excludes(t.id)]
    if not projects:
        return []
    from polybuild.support.cachedir import for_workspace
    from polybuild.workspace.pythonlock import platform_targets

    sources = Sources(for_workspace(ws.root, ws.config["cache-dir"]) / "licenses" / "pypi",
                      platform_targets(ws, [], []), METADATA if fetch is True else fetch or None)
    own = {t.info.dist_name: t for t in ws.targets.values() if t.kind == "py"}
    by_lock: dict[Path | None, list[Target]] = {}
    for target in projects:
        by_lock.setdefault(lock_for(ws.root, target.dir), []).append(target)
    graphs: list[DistGraph] = []
    for lock, targets in sorted(by_lock.items(), key=lambda item: str(item[0])):
        if lock:
            graphs.append(LockGraph(lock, lock.relative_to(ws.root).as_posix(), own, ws.release_version, sources,
                                    targets, leave_out))
        else:
            graphs += resolved_graphs(targets, own, ws.release_version, sources, leave_out)
    _fetch_or_fail(graphs, sources)
    found = [package for graph in graphs for package in graph.packages()]
    return merge([*found, *(_own_package(t, ws.release_version) for t in projects)])


def lock_for(root: Path, directory: Path) -> Path | None:
    """The nearest uv.lock at or above a project, inside the workspace."""
    for candidate in (directory, *directory.parents):
        if (candidate / "uv.lock").is_file():
            return candidate / "uv.lock"
        if candidate == root:
            return None
    return None


def _fetch_or_fail(graphs: list[DistGraph], sources: Sources) -> None:
    """Every distribution the graphs read, in the cache: fetched with --fetch, else named in one error."""
    from polybuild.licenses import distributions

    wanted: dict[Artifact, str] = {}
    pages: dict[Artifact, str] = {}  # the index page offering each file's PEP 658 METADATA hash
    for graph in graphs:
        for dist, artifact in graph.artifacts().items():
            wanted.setdefault(artifact, f"{dist.name} {dist.version}")
            entry = graph.locked(dist)
            registry = entry.source.get("registry") if entry else None
            if not registry and (artifact.url or "").startswith(PYPI_FILES):  # a pylock.toml names no default index
                registry = "https://pypi.org/simple"
            if isinstance(registry, str) and registry.startswith(("https://", "http://")):
                pages[artifact] = f"{registry.rstrip('/')}/{dist.name}/"
    if sources.fetch:
        fetched = distributions.fetch(sources.cache, list(wanted), mode=sources.fetch, pages=pages)
        if fetched.ranged or fetched.whole:
            print(f"polybuild: {fetched.summary()}", file=sys.stderr)
        return
    missing = sorted({label for a, label in wanted.items() if distributions.stored(sources.cache, a) is None})
    if missing:
        shown = "\n  ".join(missing[:20]) + (f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else "")
        raise UserError(f"{len(missing)} locked Python distributions are not in polybuild's cache ({sources.cache}), "
                        f"so their licenses cannot be read:\n  {shown}",
                        hint=f"run `{FETCH_COMMAND}` once (it downloads each file the lock names and checks its "
                        "hash); later runs read them offline")


@dataclass
class DistGraph:
    """A dependency graph of distributions walked from workspace targets (each root: a target's base or one of its
    extras); subclasses say what each node needs and which file holds a distribution's evidence."""

    own: dict[str, Target]  # normalized dist name -> workspace target
    release_version: str  # the version of workspace packages that declare none
    sources: Sources
    roots: list[tuple[Target, str | None]]
    _needs: dict[Node, list[Node]] = field(default_factory=dict, init=False, repr=False)
    _chains: dict[Dist, list[tuple[str, ...]]] | None = field(default=None, init=False, repr=False)

    def needs(self, node: Node) -> list[Node]:
        """What a node requires (once per node: every root's walk shares the answers)."""
        if node not in self._needs:
            self._needs[node] = self.requires(node)
        return self._needs[node]

    def requires(self, node: Node) -> list[Node]:
        raise NotImplementedError

    def locked(self, dist: Dist) -> Locked | None:
        """The lock entry of a third-party distribution (None: nothing to read, e.g. a git checkout)."""
        raise NotImplementedError

    def dist_of(self, target: Target) -> Dist:
        return Dist(target.info.dist_name, target.version or self.release_version, target.id)

    def chains(self) -> dict[Dist, list[tuple[str, ...]]]:
        """Walk from every root; the shortest chain per root."""
        if self._chains is None:
            self._chains = {}
            for target, extra in sorted(self.roots, key=lambda r: (r[0].id, r[1] or "")):
                for dist, chain in self._walk(self.dist_of(target), extra).items():
                    self._chains.setdefault(dist, []).append(chain)
        return self._chains

    def artifacts(self) -> dict[Dist, Artifact]:
        """The file read for each third-party distribution."""
        from polybuild.licenses.distributions import choose

        found = {}
        for dist in self.chains():
            entry = None if dist.target else self.locked(dist)
            artifact = choose(entry, self.sources.platforms) if entry else None
            if artifact:
                found[dist] = artifact
        return found

    def packages(self) -> list[Package]:
        artifacts = self.artifacts()
        return [self._package(dist, chains, artifacts.get(dist)) for dist, chains in self.chains().items()]

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

    def _package(self, dist: Dist, dependents: list[tuple[str, ...]], artifact: Artifact | None) -> Package:
        from polybuild.licenses import distributions
        from polybuild.licenses.purl import purl

        if dist.target:
            package = _own_package(self.own[dist.name], self.release_version)
            package.dependents = dependents
            return package
        if artifact:
            package = distributions.evidence(distributions.stored(self.sources.cache, artifact))
            package.name, package.version, package.purl = dist.name, dist.version, purl("pypi", dist.name, dist.version)
        else:
            package = _bare_package(dist.name, dist.version)
        entry = self.locked(dist)
        package.source = _locked_source(entry.source if entry else {})
        package.url = f"https://pypi.org/project/{dist.name}/{dist.version}/" if package.source == "pypi" else None
        package.dependents = dependents
        return package


def _label(node: Node) -> str:
    dist, extra = node
    suffix = f"[{extra}]" if extra else ""
    return f"{dist.target}{suffix}" if dist.target else f"{dist.name}{suffix}@{dist.version}"


def _applies(platforms: list[Platform], marker: str | None) -> bool:
    """Does a marker hold on any target platform (what ships anywhere is inventoried)?"""
    return any(p.applies(marker) for p in platforms)


class LockGraph(DistGraph):
    """The packages of a uv.lock that apply on a target platform: members' dependencies and all their extras
    (development dependency groups do not ship)."""

    def __init__(self, path: Path, display: str, own: dict[str, Target], release_version: str, sources: Sources,
                 targets: list[Target], leave_out: Exclusions) -> None:
        from polybuild.workspace import pythonlock

        self.lock: Lock = pythonlock.read(path, display)
        self.display = display
        sources = Sources(sources.cache, [_within(self.lock, p) for p in sources.platforms], sources.fetch)
        super().__init__(own, release_version, sources, [])
        self.roots = [(t, extra) for t in targets for extra in [None, *self._extras_of(t)]
                      if not leave_out.excludes(t.id, extra)]

    def _extras_of(self, target: Target) -> list[str]:
        return sorted(self._entry(target.info.dist_name, None, target.id).extras)

    def locked(self, dist: Dist) -> Locked | None:
        return self._entry(dist.name, dist.version, self.display)

    def requires(self, node: Node) -> list[Node]:
        from polybuild.workspace.pythonlock import resolve

        dist, extra = node
        entry = self._entry(dist.name, None if dist.target else dist.version, _label(node))
        found: list[Node] = []
        for edge in entry.extras.get(extra, []) if extra else entry.deps:
            if not _applies(self.sources.platforms, edge.get("marker")):
                continue
            name = canonicalize_name(edge["name"])
            target = self.own.get(name)
            if target:
                resolved = [self.dist_of(target)]
            else:
                resolved = [Dist(name, p.version) for p in resolve(self.lock, edge)]
                if not resolved:
                    self._entry(name, edge.get("version"), _label(node))  # raises: the lock is out of date
            found += [(d, e) for d in resolved for e in [None, *(canonicalize_name(x) for x in edge.get("extra", []))]]
        return found

    def _entry(self, name: str, version: str | None, needed_by: str) -> Locked:
        candidates = [p for p in self.lock.by_name(name) if version is None or p.version == version]
        if not candidates:
            raise UserError(f"{self.display}: no locked package {name}{f' {version}' if version else ''} "
                            f"(needed by {needed_by})", hint="the lock is out of date: run `uv lock`")
        return candidates[0]


def _within(lock: Lock, platform: Platform) -> Platform:
    """The platform with a Python the lock's requires-python admits (its lowest), when the configured one is not."""
    from dataclasses import replace

    from polybuild.workspace.pythonlock import lowest_python, python_allowed

    if python_allowed(lock, platform.python):
        return platform
    lowest = lowest_python(lock)
    return replace(platform, python=lowest) if lowest else platform


def resolved_graphs(targets: list[Target], own: dict[str, Target], release_version: str,
                    sources: Sources, leave_out: Exclusions) -> list[DistGraph]:
    """Projects without a uv.lock: uv resolves each project's base, and base plus each extra on its own, for the
    first target platform; each resolution is its own graph."""
    from concurrent.futures import ThreadPoolExecutor

    from polybuild.licenses import resolution
    from polybuild.workspace.pythonlock import read_pylock

    sources = Sources(sources.cache, sources.platforms[:1], sources.fetch)
    platform = sources.platforms[0]
    roots = [(t, extra) for t in sorted(targets, key=lambda t: t.id) for extra in [None, *_extras(t)]
             if not leave_out.excludes(t.id, extra)]
    wanted = []
    for target, extra in roots:
        requirements = _requirements(target, extra, own, sources.platforms)
        label = _label((Dist("", "", target.id), extra))
        wanted.append((target, extra, label, requirements,
                       resolution.location(sources.cache, platform, requirements, target)))
    todo = [w for w in wanted if not w[4].is_file()]
    if todo and not sources.fetch:
        raise UserError(f"the Python requirements of {', '.join(w[2] for w in todo)} are not resolved yet (no "
                        "uv.lock covers them)", hint=f"run `{FETCH_COMMAND}` once: uv resolves them for "
                        f"{platform.label} into polybuild's cache, and later runs read that offline (or lock the "
                        "projects with `uv lock`)")
    with ThreadPoolExecutor(max_workers=_COMPILE_JOBS) as pool:
        failures = [e for e in pool.map(lambda w: _failure(resolution.resolve, w[4], platform, w[3], w[0], w[2]),
                                        todo) if e]
    if failures:  # every resolution that failed, at once
        raise UserError("\n".join(e.message for e in failures), hint=failures[0].hint)
    return [ResolvedGraph(own, release_version, sources, [(target, extra)], read_pylock(path))
            for target, extra, _, _, path in wanted]


def _failure(function: Callable[..., None], *args: Any) -> UserError | None:
    try:
        function(*args)
    except UserError as exc:
        return exc
    return None


def _extras(target: Target) -> list[str]:
    return sorted(_project(target).get("optional-dependencies", {}))


def _requirements(target: Target, extra: str | None, own: dict[str, Target], platforms: list[Platform]) -> list[str]:
    """The third-party requirements of a project's base (plus one extra): workspace packages it requires are
    replaced by their own requirements, since they ship from the workspace, not from an index."""
    from packaging.requirements import InvalidRequirement, Requirement

    found: set[str] = set()
    seen: set[tuple[str, str | None]] = set()
    todo: list[tuple[Target, str | None]] = [(target, extra)]
    while todo:
        project, part = todo.pop()
        if (project.id, part) in seen:
            continue
        seen.add((project.id, part))
        for spec in _declared(project, part):
            try:
                requirement = Requirement(spec)
            except InvalidRequirement as exc:
                raise UserError(f"{project.manifest}: '{spec}' is not a valid requirement: {exc}") from None
            name = canonicalize_name(requirement.name)
            if name not in own:
                found.add(spec)
            elif _applies(platforms, str(requirement.marker) if requirement.marker else None):
                todo += [(own[name], None), *((own[name], canonicalize_name(e)) for e in sorted(requirement.extras))]
        if part is not None:
            todo.append((project, None))
    return sorted(found)


def _declared(target: Target, extra: str | None) -> list[str]:
    """A project's requirements as its pyproject lists them (dynamic ones cannot be read)."""
    project = _project(target)
    if "dependencies" in project.get("dynamic", []):
        raise UserError(f"{target.manifest}: the dependencies are dynamic, so polybuild cannot read what the package "
                        "ships", hint="list them in [project] dependencies, or lock the workspace with uv (uv.lock)")
    if extra is None:
        return list(project.get("dependencies", []))
    extras = {canonicalize_name(k): v for k, v in project.get("optional-dependencies", {}).items()}
    return list(extras.get(extra, []))


class ResolvedGraph(DistGraph):
    """One uv resolution (a pylock.toml: packages without edges) for one root; the edges come from each
    distribution's `Requires-Dist`, for the chains. What the resolution holds ships, reached by an edge or not."""

    def __init__(self, own: dict[str, Target], release_version: str, sources: Sources,
                 roots: list[tuple[Target, str | None]], resolution: list[Locked]) -> None:
        super().__init__(own, release_version, sources, roots)
        from polybuild.licenses.distributions import choose

        self.entries = {canonicalize_name(p.name): p for p in resolution}
        self.environment = sources.platforms[0].environment
        chosen = {Dist(n, e.version): choose(e, sources.platforms) for n, e in self.entries.items() if n not in own}
        self.files = {dist: artifact for dist, artifact in chosen.items() if artifact}

    def locked(self, dist: Dist) -> Locked | None:
        return self.entries.get(dist.name)

    def artifacts(self) -> dict[Dist, Artifact]:
        return self.files

    def chains(self) -> dict[Dist, list[tuple[str, ...]]]:
        chains = super().chains()
        (target, extra), = self.roots
        for name, entry in self.entries.items():
            if name not in self.own:
                chains.setdefault(Dist(name, entry.version), [(_label((self.dist_of(target), extra)),)])
        return chains

    def requires(self, node: Node) -> list[Node]:
        from packaging.requirements import InvalidRequirement, Requirement

        dist, extra = node
        found: list[Node] = []
        for spec in self._requirements(node):
            try:
                requirement = Requirement(spec)
            except InvalidRequirement:
                continue
            marker = requirement.marker
            if marker is not None and not marker.evaluate({**self.environment, "extra": extra or ""}):
                continue
            if extra and dist.target is None and (marker is None or marker.evaluate(self.environment)):
                continue  # a base requirement, reached through the base node
            name = canonicalize_name(requirement.name)
            resolved = self.dist_of(self.own[name]) if name in self.own else (
                Dist(name, self.entries[name].version) if name in self.entries else None)
            if resolved:
                found += [(resolved, None), *((resolved, canonicalize_name(e)) for e in sorted(requirement.extras))]
        return found

    def _requirements(self, node: Node) -> list[str]:
        from polybuild.licenses.distributions import requirements, stored

        dist, extra = node
        if dist.target is not None:
            return _declared(self.own[dist.name], extra)
        artifact = self.files.get(dist)
        path = stored(self.sources.cache, artifact) if artifact else None
        return requirements(path) if path else []


def _locked_source(source: dict[str, str]) -> str:
    """"pypi", "index:<url>", "git+<url>", "url+<url>" or "path", from a uv.lock package's source."""
    if "registry" in source:
        return "pypi" if source["registry"] in PYPI_INDEXES else f"index:{source['registry']}"
    if "git" in source:
        return f"git+{source['git']}"
    if "url" in source:
        return f"url+{source['url']}"
    return "path"


def _project(target: Target) -> dict[str, Any]:
    from polybuild.support import tomlfile

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
        ecosystem="pypi", name=target.info.dist_name, version=version,
        purl=purl("pypi", target.info.dist_name, version), declared=declared, legacy=table.get("text"),
        classifiers=tuple(c for c in project.get("classifiers", []) if c.startswith("License ::")),
        files=license_files(target.dir, extra), source="path", workspace=True,
    )


def _bare_package(name: str, version: str) -> Package:
    from polybuild.licenses.purl import purl

    return Package(ecosystem="pypi", name=name, version=version, purl=purl("pypi", name, version))


def evidence_from_metadata(dist_info: str, metadata: str, listing: list[str],
                           read: Callable[[str], bytes]) -> Package:
    """Package and evidence from a METADATA (or PKG-INFO) text and the files beside it."""
    from polybuild.licenses.purl import purl

    headers = metadata_headers(metadata)
    name, version = canonicalize_name(_first(headers, "Name") or ""), _first(headers, "Version") or ""
    legacy = _first(headers, "License")
    files = _dist_info_files(dist_info, listing, headers.get("License-File", []), read)
    choice = _choice_statement(metadata)
    if choice:
        files.append(LicenseFile(f"{dist_info}/METADATA", "notice", choice))
    return Package(
        ecosystem="pypi", name=name, version=version, purl=purl("pypi", name, version),
        declared=_first(headers, "License-Expression"),
        legacy=None if legacy in (None, "", "UNKNOWN") else legacy,
        classifiers=tuple(c for c in headers.get("Classifier", []) if c.startswith("License ::")),
        files=files,
    )


def _choice_statement(metadata: str) -> str | None:
    """The paragraphs of the description (METADATA's body) that offer a choice of licenses ("uvloop is
    dual-licensed under MIT and Apache 2.0 licenses."): a notice that makes the texts one OR term."""
    from polybuild.licenses.resolve import CHOICE

    body = re.split(r"\r?\n\r?\n", metadata, maxsplit=1)[1:]  # the headers end at the first empty line
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", body[0] if body else "")]
    found = []
    for i, paragraph in enumerate(paragraphs):
        if CHOICE.search(paragraph) and re.search(r"licen[cs]", paragraph, re.IGNORECASE):
            # "Licensed under either of:" names the licenses in the list that follows: keep it with them
            found.append(f"{paragraph}\n{paragraphs[i + 1]}" if paragraph.endswith(":") and i + 1 < len(paragraphs)
                         else paragraph)
    return "\n\n".join(found) or None


def metadata_headers(metadata: str) -> dict[str, list[str]]:
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
    return [f for f in _read_all(dist_info, license_members(listing, declared), read) if f is not None]


def license_members(listing: list[str], declared: list[str]) -> dict[str, str]:
    """The files of a `.dist-info` (paths relative to it) that hold license texts, each with its kind: the texts
    under `licenses/` (PEP 639) or `license_files/`, license-named files at the top, and the files `License-File`
    names wherever older backends put them."""
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
    return chosen


def _declared_locations(entry: str) -> Iterable[str]:
    yield f"licenses/{entry}"
    yield entry
    yield f"license_files/{entry}"
    yield Path(entry).name


def _read_all(dist_info: str, chosen: dict[str, str], read: Callable[[str], bytes]) -> Iterable[LicenseFile | None]:
    for rel, kind in sorted(chosen.items()):
        text = read_text(read(rel))
        yield LicenseFile(f"{dist_info}/{rel}", kind, text) if text is not None else None
