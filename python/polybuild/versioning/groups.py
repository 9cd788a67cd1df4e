"""Version groups: which packages follow the workspace version (lockstep), which keep their own, which are left out.

Real repositories version a few packages on their own (a benchmark data generator at 0.1.0, a service at 0.9.0
next to a 1.1.0 workspace). The `[versions]` config says so: `exclude` (never checked or stamped), `independent`
(each package a group of one, versioned by its own manifest) and named `groups` (members released together, at
the group's `version` or at the version its first member declares). Everything else is the lockstep group, whose
version is the workspace's. A pin follows the group of the package it pins, so `gpu-memory-service==0.9.0` moves
with gpu-memory-service wherever it is written.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from polybuild.support.errors import UserError
from polybuild.versioning.convert import ReleaseVersion, parse_version
from polybuild.versioning.places import Place, find_places, string_place
from polybuild.workspace import Workspace

LOCKSTEP = "workspace"


@dataclass
class Group:
    """One version group: its members (target ids), its places, and where its version comes from."""

    name: str
    members: set[str] = field(default_factory=set)
    configured: str | None = None  # the `version` key of a named group
    places: list[Place] = field(default_factory=list)

    @property
    def lockstep(self) -> bool:
        return self.name == LOCKSTEP

    def declared(self) -> Place | None:
        """The place the group's version is read from when the config sets none: its first own version."""
        return next((p for p in self.places if p.declares), None)


@dataclass
class Groups:
    """Every group of the workspace, the lockstep one first, and the excluded packages."""

    groups: dict[str, Group]
    excluded: set[str]
    ws: Workspace
    placed: bool = False  # whether every version place was read and assigned to its group

    def place(self) -> None:
        """Read every version place of the workspace and assign it to its group (once)."""
        if self.placed:
            return
        self.placed = True
        for place in [*find_places(self.ws), *_group_config_places(self.ws, self.groups)]:
            group = _group_of_place(self, place)
            if group is not None:
                group.places.append(place)

    def of(self, target_id: str) -> Group | None:
        """The group of a package; None when it is excluded."""
        if target_id in self.excluded:
            return None
        return next((g for g in self.groups.values() if target_id in g.members), self.groups[LOCKSTEP])

    def version(self, group: Group) -> ReleaseVersion | None:
        """The version every place of `group` must hold; None for a group with nothing that declares one."""
        if group.lockstep:
            return workspace_version(self.ws)
        if group.configured is not None:
            return _parsed(group.configured, self.ws, ("versions", "groups", group.name, "version"))
        self.place()
        declared = group.declared()
        return parse_version(declared.found) if declared else None

    def version_of(self, target_id: str) -> str | None:
        """The PEP 440 version a package's artifacts carry: its group's, or for an excluded one its own."""
        group = self.of(target_id)
        if group is None:
            return self.ws.targets[target_id].version
        version = self.version(group)
        return version.pep440 if version else None

    def go_stamp(self, target_id: str) -> str | None:
        """The version a Go module's binaries are stamped with (-ldflags -X): the workspace version as declared for
        the lockstep group, else its group's in SemVer (Go's spelling); an excluded module's own, or None (not
        stamped)."""
        group = self.of(target_id)
        if group is None:
            return self.ws.targets[target_id].version
        if group.lockstep:
            return self.ws.release_version
        target = self.ws.targets[target_id]
        if group.members == {target_id} and group.configured is None and target.version:
            version = parse_version(target.version)  # its only place is its own `version` key: no manifest to read
        else:
            version = self.version(group)
        if version is None:
            raise UserError(f"{target_id} is versioned on its own (version group {group.name}) but declares no "
                            "version to stamp into its binaries",
                            hint=f'set version = "0.1.0" in {target.config_table} (go.mod holds none)')
        return version.semver

    def own_versions(self) -> dict[str, str]:
        """The packages outside the lockstep group (independent, grouped, excluded) and the version they carry."""
        found = {}
        for target_id in sorted(self.ws.targets):
            group = self.of(target_id)
            version = self.version_of(target_id) if group is None or not group.lockstep else None
            if version is not None:
                found[target_id] = version
        return found

    def find(self, name: str) -> Group:
        """A group by its name, or by one of its members (`version set --group py:gpu-memory-service`)."""
        if name in self.groups:
            return self.groups[name]
        target = self.ws.resolve(name, source="--group")
        group = self.of(target.id)
        if group is None:
            raise UserError(f"--group {name}: {target.id} is excluded from versioning ([versions] exclude)")
        return group


def workspace_version(ws: Workspace) -> ReleaseVersion:
    """The declared workspace version (config, root [project] or [workspace.package]) in both spellings."""
    if not ws.version:
        raise UserError("the workspace declares no version",
                        hint="run `polybuild version set X`, or set [workspace.package] version or [project] version")
    return parse_version(ws.version)


def resolve(ws: Workspace, *, places: bool = True) -> Groups:
    """Assign every package to its group and every version place to the group of the packages it belongs to
    (`places=False`: later, if a version asks for them; stamping Go binaries rarely needs the manifests read)."""
    conf = ws.config["versions"]
    excluded = _matching(ws, conf["exclude"], ("versions", "exclude"))
    groups = {LOCKSTEP: Group(LOCKSTEP)}
    claimed: dict[str, str] = dict.fromkeys(excluded, "[versions] exclude")
    for target_id in sorted(_matching(ws, conf["independent"], ("versions", "independent"))):
        _claim(ws, claimed, target_id, "[versions] independent", ("versions", "independent"))
        groups[target_id] = Group(target_id, {target_id})
    for name, spec in conf["groups"].items():
        keypath = ("versions", "groups", name, "packages")
        if name in groups:
            raise ws.config.error(keypath[:-1], f"versions.groups.{name}: the name is taken (by the lockstep group "
                                  "or an independent package)", hint="rename the group")
        members = _matching(ws, spec["packages"], keypath)
        if not members:
            raise ws.config.error(keypath, f"versions.groups.{name}: `packages` names no package",
                                  hint="list target ids or directories, e.g. packages = [\"rust:kvbm-*\"]")
        for target_id in sorted(members):
            _claim(ws, claimed, target_id, f"[versions.groups.{name}]", keypath)
        groups[name] = Group(name, members, spec["version"])
    result = Groups(groups, excluded, ws)
    if places:
        result.place()
    return result


def _matching(ws: Workspace, patterns: list[str], keypath: tuple[str, ...]) -> set[str]:
    """The versioned packages (crates, Python packages, Go modules) each pattern matches, by id or directory; a
    pattern that matches nothing is a mistake worth stopping for (a typo would silently version the package)."""
    packages = [t for t in ws.targets.values() if t.kind in ("rust", "py", "go")]
    found: set[str] = set()
    for pattern in patterns:
        hits = {t.id for t in packages
                if fnmatch.fnmatchcase(t.id, pattern) or fnmatch.fnmatchcase(ws.rel(t.dir), pattern.rstrip("/"))}
        if not hits:
            import difflib

            close = difflib.get_close_matches(pattern, sorted(t.id for t in packages), n=3)
            raise ws.config.error(keypath, f"{'.'.join(keypath)}: '{pattern}' matches no package",
                                  hint=(f"did you mean {' or '.join(repr(c) for c in close)}?" if close else
                                        "use target ids (`py:name`, `rust:crate`, globs allowed) or directories; "
                                        "`polybuild graph` lists them"))
        found |= hits
    return found


def _claim(ws: Workspace, claimed: dict[str, str], target_id: str, by: str, keypath: tuple[str, ...]) -> None:
    if target_id in claimed:
        raise ws.config.error(keypath, f"{target_id} is in both {claimed[target_id]} and {by}",
                              hint="a package belongs to one version group: remove it from one of them")
    claimed[target_id] = by


def _group_config_places(ws: Workspace, groups: dict[str, Group]) -> Iterable[Place]:
    """A named group's `version` key, when this config file sets it (an included one is not this file's)."""
    config = ws.config
    if config.file is None:
        return
    written = config.layers[-1].raw if config.layers else None
    for group in groups.values():
        if group.configured is None:
            continue
        if written is not None and "version" not in written.get("versions", {}).get("groups", {}).get(group.name, {}):
            continue
        keypath = (*config.prefix, "versions", "groups", group.name, "version")
        place = string_place(config.file, keypath, group.configured, "semver", f"group {group.name} version")
        yield replace(place, owners=tuple(sorted(group.members)), declares=True)


def _group_of_place(groups: Groups, place: Place) -> Group | None:
    """The group whose version a place holds: its owners' (all in one group), the lockstep one for the workspace's
    own places; None when every owner is excluded."""
    if not place.owners:
        return groups.groups[LOCKSTEP]
    names = sorted({g.name for g in map(groups.of, place.owners) if g is not None})
    if len(names) > 1:
        where = f"{groups.ws.rel(place.file)}:{place.line}"
        raise UserError(f"{where}: {place.label} is shared by packages of different version groups "
                        f"({', '.join(names)}): {', '.join(place.owners)}",
                        hint="put every crate that inherits a [workspace.package] version in one group, or give "
                        "those crates their own `version`")
    return groups.groups[names[0]] if names else None


def _parsed(text: str, ws: Workspace, keypath: tuple[str, ...]) -> ReleaseVersion:
    try:
        return parse_version(text)
    except UserError as exc:
        raise ws.config.error(keypath, f"{'.'.join(keypath)}: {exc.message}", hint=exc.hint) from None
