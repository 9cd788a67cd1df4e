"""`polybuild version set` and `check`: stamp one version into every place, or list the places that disagree.

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

from polybuild.errors import UserError
from polybuild.report import write_atomic
from polybuild.versioning.convert import ReleaseVersion, parse_version
from polybuild.versioning.places import Place, find_places
from polybuild.workspace import Workspace


@dataclass(frozen=True)
class Mismatch:
    place: Place
    expected: str


def workspace_version(ws: Workspace) -> ReleaseVersion:
    """The declared workspace version (config, root [project] or [workspace.package]) in both spellings."""
    if not ws.version:
        raise UserError("the workspace declares no version",
                        hint="run `polybuild version set X`, or set [workspace.package] version or [project] version")
    return parse_version(ws.version)


def check(ws: Workspace) -> list[Mismatch]:
    """Every place whose version differs from the workspace version (in that place's spelling)."""
    version = workspace_version(ws)
    return [Mismatch(p, p.expected(version)) for p in find_places(ws) if not _agrees(p, version)]


def stamp(ws: Workspace, version: ReleaseVersion) -> list[Place]:
    """Write `version` into every place, each in its own spelling; returns the places that changed."""
    changed = [p for p in find_places(ws) if not _agrees(p, version)]
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
