"""`polybuild version set` and `check`: stamp a group's version into its places, or list the places that disagree.

Edits go through tomlkit so comments, ordering and quoting survive. Every file is rendered and re-parsed in memory
before the first one is written, and each is replaced atomically, so a bad version or an unexpected manifest leaves
the tree as it was rather than half-bumped.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import tomlkit
from tomlkit.items import String

from polybuild.support.errors import UserError
from polybuild.support.fs import write_atomic
from polybuild.versioning.convert import ReleaseVersion
from polybuild.versioning.groups import LOCKSTEP, resolve
from polybuild.versioning.places import Place
from polybuild.workspace import Workspace


@dataclass(frozen=True)
class Mismatch:
    place: Place
    expected: str
    group: str  # the version group whose version the place must hold ("workspace" for the lockstep one)

    def describe(self, ws: Workspace) -> str:
        """`file:line: what: found A, expected B`, naming the group when it is not the lockstep one."""
        group = "" if self.group == LOCKSTEP else f" (version group {self.group})"
        return (f"{ws.rel(self.place.file)}:{self.place.line}: {self.place.label}: found {self.place.found}, "
                f"expected {self.expected}{group}")


def check(ws: Workspace) -> list[Mismatch]:
    """Every place whose version differs from its group's version (in that place's spelling), in file order."""
    groups = resolve(ws)
    found = []
    for group in groups.groups.values():
        if not group.places:
            continue
        version = groups.version(group)
        if version is not None:
            found += [Mismatch(p, p.expected(version), group.name) for p in group.places if not _agrees(p, version)]
    return sorted(found, key=lambda m: (m.place.file, m.place.line))


def stamp(ws: Workspace, version: ReleaseVersion, group: str | None = None) -> list[Place]:
    """Write `version` into every place of a group (default: the lockstep one), each in its own spelling; returns
    the places that changed. Other groups keep their versions."""
    groups = resolve(ws)
    chosen = groups.find(group) if group else groups.groups[LOCKSTEP]
    changed = [p for p in chosen.places if not _agrees(p, version)]
    by_file: dict[Path, list[Place]] = {}
    for place in changed:
        by_file.setdefault(place.file, []).append(place)
    rendered = {path: _render(path, places, version) for path, places in by_file.items()}
    for path, new_text in rendered.items():
        write_atomic(path, new_text)
    return changed


def _agrees(place: Place, version: ReleaseVersion) -> bool:
    return place.found == place.expected(version)


def _render(path: Path, places: list[Place], version: ReleaseVersion) -> str:
    """The file with each place's string replaced, keeping its quoting; checked to parse and to hold the values."""
    doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    for place in places:
        *parents, key = place.keypath
        container = doc
        for part in parents:
            container = container[part]
        old = container[key]
        container[key] = String.from_raw(place.stamped(version), type_=old.type) if isinstance(old, String) \
            else place.stamped(version)
    text = tomlkit.dumps(doc)
    _verify(path, text, places, version)
    return text


def _verify(path: Path, text: str, places: list[Place], version: ReleaseVersion) -> None:
    """Refuse to write a file that no longer parses or does not hold the stamped values (a tomlkit surprise)."""
    data = tomllib.loads(text)
    for place in places:
        value = data
        for part in place.keypath:
            value = value[part]
        if value != place.stamped(version):
            raise UserError(f"{path}: stamping {place.label} did not take (found {value!r}); nothing was written")
