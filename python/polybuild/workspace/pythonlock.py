"""Can every package a uv.lock installs on a target platform be installed there: a compatible wheel or an sdist?

uv locks once for every platform (a "universal" lock), so a lock can be fresh and still hold a package with no
wheel for, say, Linux/arm64 and no sdist to build it from; `uv sync` then fails inside the image builder. This
module answers the question without uv and without a network: it reads the lock (`read`: the one uv.lock model,
used by every command), evaluates the markers for the target's environment (packaging.markers), walks the
dependency graph from the workspace members and compares each package's wheel tags with the target's compatible
tags (packaging.tags).
"""

from __future__ import annotations

import functools
import re
import sys
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.markers import InvalidMarker, Marker
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags, mac_platforms
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from polybuild.support.errors import UserError
from polybuild.support.platforms import Platform, host

if TYPE_CHECKING:
    from polybuild.support.tomlfile import TomlFile
    from polybuild.workspace import Workspace

# Sources uv builds from (a directory, a checkout): they never need a published wheel.
BUILT_FROM_SOURCE = frozenset({"editable", "virtual", "directory", "git"})
_MACHINE = {"linux": {"amd64": "x86_64", "arm64": "aarch64"}, "darwin": {"amd64": "x86_64", "arm64": "arm64"},
            "windows": {"amd64": "AMD64", "arm64": "ARM64"}}
_SYS_PLATFORM = {"linux": "linux", "darwin": "darwin", "windows": "win32"}
_SYSTEM = {"linux": "Linux", "darwin": "Darwin", "windows": "Windows"}
_EXTRA = re.compile(r"""extra\s*[!=]=\s*['"]([^'"]+)['"]""")


@dataclass(frozen=True)
class Target:
    """One platform and Python version to check a lock for, with the libc and macOS levels that decide tags."""

    platform: Platform
    python: tuple[int, int]
    glibc: tuple[int, int] = (2, 28)
    musl: tuple[int, int] | None = None  # Linux targets are musl (Alpine) when set
    macos: tuple[int, int] = (12, 0)

    @property
    def label(self) -> str:
        libc = f", musl {self.musl[0]}.{self.musl[1]}" if self.musl and self.platform.os == "linux" else ""
        return f"{self.platform.name}{libc}, Python {self.python[0]}.{self.python[1]}"

    @cached_property
    def environment(self) -> dict[str, str]:
        """PEP 508 marker variables as an interpreter on the target would report them."""
        os_name, major, minor = self.platform.os, *self.python
        return {
            "implementation_name": "cpython", "implementation_version": f"{major}.{minor}.0",
            "os_name": "nt" if os_name == "windows" else "posix",
            "platform_machine": _MACHINE[os_name][self.platform.arch], "platform_python_implementation": "CPython",
            "platform_release": "", "platform_system": _SYSTEM[os_name], "platform_version": "",
            "python_full_version": f"{major}.{minor}.0", "python_version": f"{major}.{minor}",
            "sys_platform": _SYS_PLATFORM[os_name], "extra": "",
        }

    @cached_property
    def platform_tags(self) -> list[str]:
        """The platform tags an installer on the target accepts, most specific first."""
        os_name, arch = self.platform.os, self.platform.arch
        if os_name == "windows":
            return [f"win_{arch}"]
        if os_name == "darwin":
            return list(mac_platforms(self.macos, _MACHINE["darwin"][arch]))
        machine = _MACHINE["linux"][arch]
        if self.musl:
            return [*(f"musllinux_{self.musl[0]}_{m}_{machine}" for m in range(self.musl[1], -1, -1)),
                    f"linux_{machine}"]
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        found = []
        for minor in range(self.glibc[1], 4, -1):
            found.append(f"manylinux_2_{minor}_{machine}")
            if minor in legacy and (minor == 17 or machine == "x86_64"):
                found.append(f"{legacy[minor]}_{machine}")
        return [*found, f"linux_{machine}"]

    @cached_property
    def tags(self) -> frozenset[Tag]:
        return frozenset(self.ranks)

    @cached_property
    def ranks(self) -> dict[Tag, int]:
        """Each tag the target accepts and its preference (0: the one an installer picks first)."""
        major, minor = self.python
        platforms = self.platform_tags
        ordered = [*cpython_tags((major, minor), platforms=platforms),
                   *compatible_tags((major, minor), f"cp{major}{minor}", platforms)]
        return {tag: rank for rank, tag in reversed(list(enumerate(ordered)))}

    def needed(self) -> str:
        """The wheels this target accepts, in a few words (the full tag list runs to hundreds)."""
        major, minor = self.python
        plats = self.platform_tags
        if len(plats) > 3:
            plats = [plats[0], f"older {plats[0].split('_')[0]} tags", plats[-1]]
        return f"cp{major}{minor}/abi3/py3 wheels tagged {', '.join(plats)} or any"

    def marker_hint(self) -> str:
        env = self.environment
        return f"sys_platform == '{env['sys_platform']}' and platform_machine == '{env['platform_machine']}'"

    def applies(self, marker: str | None) -> bool:
        """Does a lock marker hold here? uv writes conflicting extras and groups as `extra == '...'` markers;
        those hold when any of the extras they name is chosen, so every one is tried."""
        if not marker:
            return True
        parsed = _marker(marker)
        if parsed is None:
            return True  # a marker this packaging cannot read: check the package rather than skip it
        return any(parsed.evaluate({**self.environment, "extra": e}) for e in ["", *_EXTRA.findall(marker)])


@functools.lru_cache(maxsize=4096)
def _marker(text: str) -> Marker | None:
    """Markers repeat across edges and targets: parse each once."""
    try:
        return Marker(text)
    except InvalidMarker:
        return None


@dataclass(frozen=True)
class Artifact:
    """One distribution file a lock names: where to download it and the hash it must have."""

    filename: str
    url: str | None  # None for a local path
    sha256: str | None
    size: int | None

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")


@dataclass
class LockedPackage:
    """One `[[package]]` of a uv.lock (or pylock.toml): a version of a distribution, its files and its edges."""

    name: str
    version: str
    source: dict
    has_sdist: bool
    wheels: list[str]  # file names
    deps: list[dict]
    extras: dict[str, list[dict]] = field(default_factory=dict)
    groups: dict[str, list[dict]] = field(default_factory=dict)
    artifacts: list[Artifact] = field(default_factory=list)  # the wheels, then the sdist

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"

    def installable(self, target: Target) -> bool:
        if self.has_sdist or BUILT_FROM_SOURCE.intersection(self.source):
            return True
        return any(target.tags.intersection(wheel_tags(w)) for w in self.wheels)


@dataclass
class Lock:
    path: Path
    display: str
    requires_python: SpecifierSet
    supported: list[str]  # the lock's `supported-markers` ([tool.uv] environments), empty for all
    packages: list[LockedPackage]
    members: list[str]

    def by_name(self, name: str) -> list[LockedPackage]:
        return [p for p in self.packages if p.name == name]


@dataclass(frozen=True)
class Miss:
    package: LockedPackage
    chain: tuple[str, ...]  # how the workspace reaches it


def wheel_tags(filename: str) -> frozenset[Tag]:
    try:
        return frozenset(parse_wheel_filename(filename)[3])
    except InvalidWheelFilename:
        return frozenset()


def read(path: Path, display: str) -> Lock:
    """The uv.lock at `path`, parsed once per content (every command and check of a run shares the model; callers
    never change it). A lock uv would not read either is the user's to fix: `display:line:col` and "regenerate it"."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{display}: cannot read the lock: {exc}", hint=_REGENERATE) from None
    return _parse_lock(path, display, text)


_REGENERATE = "regenerate it with `uv lock`"


@functools.lru_cache(maxsize=16)
def _parse_lock(path: Path, display: str, text: str) -> Lock:
    doc = _toml(text, path, display, "cannot read the lock", _REGENERATE)
    data = doc.data
    try:
        requires = SpecifierSet(data.get("requires-python", ""))
    except InvalidSpecifier as exc:
        raise doc.error(("requires-python",), f"cannot read the lock: {exc}", hint=_REGENERATE) from None
    packages = [_package(p) for p in data.get("package", [])]
    members = data.get("manifest", {}).get("members") or [
        p.name for p in packages if {"editable", "virtual"}.intersection(p.source) and
        next(iter(p.source.values())) == "."]
    return Lock(path, display, requires, list(data.get("supported-markers", [])), packages, members)


def _toml(text: str, path: Path, display: str, what: str, hint: str) -> TomlFile:
    """Parsed TOML, or a UserError saying `display:line:col: <what>: <why>` and how to fix it."""
    from polybuild.support.errors import ConfigError
    from polybuild.support.tomlfile import parse

    try:
        return parse(text, path, display)
    except ConfigError as exc:
        where, _, why = exc.message.partition(": ")
        raise UserError(f"{where}: {what}: {why}", hint=hint) from None


def _package(entry: dict) -> LockedPackage:
    artifacts = [_artifact(w) for w in [*entry.get("wheels", []), *([entry["sdist"]] if "sdist" in entry else [])]]
    wheels = [a.filename for a in artifacts if a.is_wheel]
    return LockedPackage(entry["name"], str(entry.get("version", "")), entry.get("source", {}), "sdist" in entry,
                   wheels, entry.get("dependencies", []), entry.get("optional-dependencies", {}),
                   entry.get("dev-dependencies", {}), [a for a in artifacts if a.filename])


def _artifact(entry: dict) -> Artifact:
    """A lock's `wheels` or `sdist` entry: uv.lock writes `hash = "sha256:..."`, pylock.toml `hashes = {sha256}`."""
    algorithm, _, digest = str(entry.get("hash", "")).partition(":")
    sha256 = digest if algorithm == "sha256" else entry.get("hashes", {}).get("sha256")
    filename = entry.get("filename") or entry.get("name") or _basename(entry.get("url") or entry.get("path") or "")
    return Artifact(filename, entry.get("url"), sha256, entry.get("size"))


def _basename(url: str) -> str:
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])


def python_allowed(lock: Lock, python: tuple[int, int]) -> bool:
    """Does the lock's requires-python admit some X.Y.z of this Python?"""
    return any(lock.requires_python.contains(f"{python[0]}.{python[1]}.{patch}", prereleases=True)
               for patch in range(0, 30))


def lowest_python(lock: Lock) -> tuple[int, int] | None:
    """The oldest Python 3 the lock's requires-python admits: what a check runs for when the configured one is out."""
    return next(((3, m) for m in range(8, 30) if python_allowed(lock, (3, m))), None)


def misses(lock: Lock, target: Target) -> list[Miss]:
    """The packages installed on `target` (every extra and dependency group of the members included) that have
    neither a compatible wheel nor an sdist."""
    return [Miss(p, chain) for p, chain in reachable(lock, target) if not p.installable(target)]


def reachable(lock: Lock, target: Target) -> list[tuple[LockedPackage, tuple[str, ...]]]:
    """Every package that applies on `target`, with the shortest chain of names that pulls it in."""
    roots = [p for p in lock.packages if p.name in lock.members]
    chains: dict[int, tuple[str, ...]] = {}
    seen: set[tuple[int, str]] = set()
    queue: deque[tuple[LockedPackage, str, tuple[str, ...]]] = deque()
    for root in roots:
        chains[id(root)] = (root.name,)
        queue.extend((root, part, (root.name,)) for part in ["", *root.extras, *(f"group:{g}" for g in root.groups)])
    while queue:
        package, part, chain = queue.popleft()
        if (id(package), part) in seen:
            continue
        seen.add((id(package), part))
        for edge in _edges(package, part):
            if not target.applies(edge.get("marker")):
                continue
            for dep in resolve(lock, edge):
                label = _step(part, dep.name)
                chains.setdefault(id(dep), (*chain, label))
                queue.extend((dep, e, (*chain, label)) for e in ["", *edge.get("extra", [])])
    return [(p, chains[id(p)]) for p in lock.packages if id(p) in chains]


def _edges(package: LockedPackage, part: str) -> list[dict]:
    if not part:
        return package.deps
    if part.startswith("group:"):
        return package.groups.get(part[len("group:"):], [])
    return package.extras.get(part, [])


def _step(part: str, name: str) -> str:
    if part.startswith("group:"):
        return f"{name} (group {part[len('group:'):]})"
    return f"{name} (extra {part})" if part else name


def resolve(lock: Lock, edge: dict) -> list[LockedPackage]:
    """The locked package an edge names; forked resolutions lock several versions, told apart by version/source."""
    found = lock.by_name(edge["name"])
    if len(found) > 1:
        found = [p for p in found if ("version" not in edge or p.version == edge["version"])
                 and ("source" not in edge or p.source == edge["source"])]
    return found


def describe(miss: Miss, target: Target, display: str) -> str:
    """One user-facing line: the package, what the target needs, what the lock has, and how to fix it."""
    package = miss.package
    has = _available(package.wheels)
    via = " -> ".join(miss.chain)
    fix = (f"if {package.name} is needed there, add `required-environments = [\"{target.marker_hint()}\"]` to "
           f"[tool.uv] and run `uv lock` so uv picks a version with such a wheel (or fails saying why); if not, "
           f"limit the requirement with a marker, e.g. `{package.name}; {_marker_for(package.wheels)}`")
    return (f"{display}: {package.label} has no wheel for {target.label} and no sdist (pulled in by {via}); "
            f"needs {target.needed()}; has {has}; fix: {fix}")


def _available(wheels: list[str]) -> str:
    """The lock's wheels of the package as the platform and Python tags they cover."""
    if not wheels:
        return "no wheels"
    tags = [t for w in wheels for t in wheel_tags(w)]
    platforms = ", ".join(sorted({t.platform for t in tags}))
    pythons = ", ".join(sorted({t.interpreter for t in tags}))
    return f"{len(wheels)} wheel(s) tagged {platforms} (Python tags {pythons})"


def _marker_for(wheels: list[str]) -> str:
    """The sys_platform the package's wheels cover, as a marker to suggest."""
    prefixes = {"win": "win32", "macosx": "darwin", "manylinux": "linux", "musllinux": "linux", "linux": "linux"}
    found = {next((v for k, v in prefixes.items() if t.platform.startswith(k)), "?")
             for w in wheels for t in wheel_tags(w)}
    return f"sys_platform == '{found.pop()}'" if len(found) == 1 and "?" not in found else "sys_platform == '...'"


def read_pylock(path: Path) -> list[LockedPackage]:
    """The packages of a PEP 751 pylock.toml (as `uv pip compile --format pylock.toml` writes it: one resolution,
    no dependency edges), in the shape uv.lock's are read into."""
    hint = "delete it; it is a cache entry"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the resolution: {exc}", hint=hint) from None
    data = _toml(text, path, str(path), "cannot read the resolution", hint).data
    return [_package({**entry, "source": {"registry": entry["index"]} if "index" in entry else {}})
            for entry in data.get("packages", [])]


def platform_targets(ws: Workspace, platforms: list[str], pythons: list[str]) -> list[Target]:
    """Every (platform, Python) pair to check, with the libc and macOS levels of the config."""
    conf = ws.config["lockfiles"]
    names = list(dict.fromkeys(platforms or ws.config["platforms"] or [host().name]))
    chosen = [Platform.parse(n, "--platform") for n in names]
    versions = [_version(v, "--python") for v in pythons] or \
        [_version(v, f"{ws.config.display} lockfiles.python") for v in conf["python"]] or [_interpreter(ws)]
    glibc = _level(ws, "glibc", conf["glibc"])
    musl = _level(ws, "musl", conf["musl"]) if conf["musl"] else None
    macos = _level(ws, "macos", conf["macos"])
    return [Target(p, v, glibc, musl, macos) for p in chosen for v in dict.fromkeys(versions)]


def _version(value: str, source: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)\.(\d+)", value.strip())
    if not match:
        raise UserError(f"{source}: '{value}' is not a Python version", hint="write MAJOR.MINOR, e.g. 3.12")
    return int(match.group(1)), int(match.group(2))


def _level(ws: Workspace, key: str, value: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)\.(\d+)", value.strip())
    if not match:
        raise ws.config.error(("lockfiles", key), f"lockfiles.{key}: '{value}' is not a MAJOR.MINOR version",
                              hint='e.g. "2.28" for glibc, "1.2" for musl, "12.0" for macOS')
    return int(match.group(1)), int(match.group(2))


def _interpreter(ws: Workspace) -> tuple[int, int]:
    """The version of the Python polybuild builds with (config `python.interpreter`, else the running one)."""
    from polybuild.support.toolchains import python_facts

    interpreter = ws.config["python"]["interpreter"]
    if not interpreter:
        return sys.version_info[:2]
    facts = python_facts(interpreter)
    if not facts.ran:
        raise UserError(f"python.interpreter: cannot run {interpreter}",
                        hint="set it to an installed Python, or pass --python X.Y")
    if facts.version is None:
        raise UserError(f"python.interpreter: '{facts.output.strip()}' is not a Python version",
                        hint="write MAJOR.MINOR, e.g. 3.12")
    return facts.version
