"""Composed configuration: a config's `include`s, merged in order and pinned by polybuild.lock.

Merge rule, the same for every section (config-reference.md states it per section): tables merge key by key,
recursively; every other value (string, number, boolean, array) is replaced whole, so an array such as an allow-list
is never unioned and an include cannot widen what a later file sets. Order: an included file is first composed from
its own includes, then the includes apply in the order written, later ones winning, and the including file wins over
all of them.

polybuild.lock pins every include, nested ones too (named `parent/child`), by descriptor, sha256 and a snapshot of
its content. An include whose content or descriptor differs from the lock stops the run until
`polybuild lock upgrade NAME` accepts it; editing the composer never upgrades an include. An included file that has
includes of its own must carry an up-to-date lock of its own, or it is refused.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from polybuild.config import includelock
from polybuild.config.includelock import Descriptor, Entry, LockFile
from polybuild.config.model import SCHEMA, Layer, config_prefix
from polybuild.support.errors import ConfigError, UserError
from polybuild.support.schema import Validator
from polybuild.support.tomlfile import TomlFile, parse

_NAME = re.compile(r"[A-Za-z0-9._-]+\Z")
_DIFF_LINES = 30


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` applied on top of `base`: tables merge recursively, anything else in `over` replaces."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class Place:
    """Where a config file lives, so the includes it names can be found: a directory, or a directory of a
    repository at a commit."""

    directory: Path | None = None
    git: str | None = None  # URL or absolute path of the repository
    commit: str | None = None
    inside: PurePosixPath = field(default_factory=PurePosixPath)  # the file's directory inside the repository

    def identity(self, descriptor: Descriptor) -> tuple[str, ...]:
        """What identifies the file an include names from here, for finding cycles."""
        if descriptor.git:
            return (_git_location(self, descriptor.git), descriptor.rev or "", _repo_path(PurePosixPath("."),
                                                                                          descriptor.path))
        if self.git:
            return (self.git, self.commit or "", _repo_path(self.inside, descriptor.path))
        assert self.directory is not None
        return (os.path.normpath(self.directory / descriptor.path),)


@dataclass
class Composition:
    """A composed config, not yet committed: `commit()` writes the lock once the whole config is known valid."""

    raw: dict[str, Any]
    layers: tuple[Layer, ...]
    lock_path: Path
    lock_display: str
    old: LockFile | None
    new: LockFile

    @property
    def inputs(self) -> tuple[Path, ...]:
        """The files besides the composer this config depends on: the lock and every include read from disk."""
        return (self.lock_path, *(layer.file.path for layer in self.layers[:-1] if layer.file.path.is_absolute()))

    def commit(self) -> list[str]:
        """Write the lock if it changed; say what changed, once, on stderr."""
        changes = _changes(self.old, self.new, self.lock_display)
        moved = self.old is not None and self.old.composer != self.new.composer
        if changes or moved or (self.old is None and self.new.entries):
            includelock.write(self.lock_path, self.new)
        for line in changes:
            print(f"polybuild: {line}", file=sys.stderr)
        return changes


def compose(root: Path, composer: Layer, upgrade: frozenset[str] | None = None) -> Composition:
    """Merge `composer` with everything it includes, checked against (or pinning into) its polybuild.lock.

    `upgrade` names includes (with everything they include) to re-read instead of checking; empty means all.
    """
    lock_path = includelock.lock_path(composer.file.path)
    lock_display = _display(lock_path, root)
    old = includelock.read(lock_path, lock_display)
    walk = _Walk(root, old, upgrade, lock_display)
    top = ((os.path.normpath(composer.file.path),), composer.file.display)
    raw = walk.file(composer, "", Place(directory=composer.file.path.parent), (top,), [])
    walk.finish()
    new = LockFile(composer.file.display, walk.entries, old.tools if old else {})  # the tool pins stay
    return Composition(raw, tuple(walk.layers), lock_path, lock_display, old, new)


@dataclass
class _Read:
    """One include as read for this run."""

    file: TomlFile
    place: Place
    entry: Entry
    pinned: bool  # its content came from the lock's snapshot (it lives at a git commit, which never changes)


class _Walk:
    """One depth-first pass over the includes: reads, checks against the lock, merges, records the new lock."""

    def __init__(self, root: Path, lock: LockFile | None, upgrade: frozenset[str] | None, lock_display: str):
        self.root = root
        self.lock = lock
        self.upgrade = upgrade
        self.lock_display = lock_display
        self.entries: dict[str, Entry] = {}
        self.layers: list[Layer] = []
        self.stale: list[tuple[str, str]] = []  # (name, "where: what changed")
        self.refused: list[tuple[str, str]] = []  # (message, hint): included composers with stale locks

    def file(self, layer: Layer, name: str, place: Place, chain: tuple[tuple[tuple[str, ...], str], ...],
             owners: list[tuple[str, LockFile]], pinned: bool = False) -> dict[str, Any]:
        """`layer` composed with its includes, its own keys winning."""
        includes = layer.raw.get("include", [])
        if includes and name and not pinned:
            own = self._own_lock(layer, name, place)
            owners = [*owners, (name, own)] if own is not None else owners
        merged: dict[str, Any] = {}
        names: set[str] = set()
        for table in includes:
            descriptor, short = _descriptor(layer, table, names)
            qualified = f"{name}/{short}" if name else short
            identity = place.identity(descriptor)
            if identity in (link[0] for link in chain):
                start = [link[0] for link in chain].index(identity)
                cycle = " -> ".join([link[1] for link in chain[start:]] + [chain[start][1]])
                raise _include_error(layer, descriptor, f"include cycle: {cycle}", "remove one of these includes")
            read = self._read(layer, descriptor, qualified, place, owners)
            child = Layer(read.file, config_prefix(Path(descriptor.path)), _table(read.file, descriptor))
            Validator(child.file, child.prefix).check(SCHEMA, child.raw, ())
            merged = merge(merged, self.file(child, qualified, read.place, (*chain, (identity, read.entry.file)),
                                             owners, read.pinned))
        self.layers.append(layer)
        return merge(merged, {k: v for k, v in layer.raw.items() if k != "include"})

    def _read(self, parent: Layer, descriptor: Descriptor, name: str, place: Place,
              owners: list[tuple[str, LockFile]]) -> _Read:
        locked = None if self._upgrading(name) or self.lock is None else self.lock.entries.get(name)
        if locked is not None and locked.descriptor != descriptor:
            self.stale.append((name, f"{parent.file.display}: include '{name}' is now {descriptor.describe()}, "
                                     f"{self.lock_display} has {locked.descriptor.describe()}"))
            locked = None
        if locked is not None and (descriptor.git or place.git):  # a commit's content never changes
            if _sha256(locked.content.encode()) != locked.sha256:
                raise ConfigError(f"include '{name}': the locked content does not match its sha256",
                                  file=self.lock_display, hint=f"restore the lock, or run `polybuild lock upgrade "
                                  f"{name}` to re-read the include")
            read = self._parse(locked, descriptor, place, pinned=True)
        else:
            entry = self._fetch(parent, descriptor, name, place, owners)
            if locked is not None and entry.sha256 != locked.sha256:
                self.stale.append((name, f"{entry.file}: include '{name}' changed since {self.lock_display} was "
                                         f"written {_changed(locked, entry)}"))
            read = self._parse(entry, descriptor, place, pinned=False)
            for owner, lock in owners:
                self._check_owner(owner, lock, name, read.entry)
        self.entries[name] = read.entry
        return read

    def _fetch(self, parent: Layer, descriptor: Descriptor, name: str, place: Place,
               owners: list[tuple[str, LockFile]]) -> Entry:
        """Read an include as it is now (a git include: at its owner's locked commit, else at `rev` now)."""
        commit = None
        if descriptor.git or place.git:
            from polybuild.config import gitinclude

            if descriptor.git:
                url, inside = _git_location(place, descriptor.git), _repo_path(PurePosixPath("."), descriptor.path)
                assert descriptor.rev is not None
                commit = self._owner_commit(name, descriptor, owners) or gitinclude.resolve(url, descriptor.rev)
                shown = f"{descriptor.git}@{descriptor.rev}:{inside}"
            else:
                assert place.git is not None and place.commit is not None
                url, inside, commit = place.git, _repo_path(place.inside, descriptor.path), place.commit
                shown = f"{parent.file.display.rpartition(':')[0]}:{inside}"  # the same repository and revision
            if inside.startswith("../") or inside.startswith("/"):
                raise _include_error(parent, descriptor, f"include '{name}': {descriptor.path} is outside the "
                                     "repository it is read from", "a file in a git repository includes files of "
                                     "that repository, or names another repository with `git`")
            data = gitinclude.show(url, commit, inside)
        else:
            assert place.directory is not None
            path = Path(os.path.normpath(place.directory / descriptor.path))
            shown = _display(path, self.root)
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                data = None
            except OSError as exc:
                raise _include_error(parent, descriptor, f"include '{name}': cannot read {shown}: "
                                     f"{exc.strerror}") from None
        if data is None:
            where = "inside the repository at that revision" if descriptor.git or place.git else \
                "relative to the including file's directory"
            raise _include_error(parent, descriptor, f"include '{name}': {shown} does not exist",
                                 f"fix `path` ({where})")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"not UTF-8 text ({exc.reason})", file=shown) from None
        return Entry(descriptor, shown, _sha256(data), text, commit)

    def _parse(self, entry: Entry, descriptor: Descriptor, place: Place, pinned: bool) -> _Read:
        """The include's TOML, and where the files it includes are found. (A file read from git keeps its path in
        the repository, which is relative: it is no input on disk.)"""
        if descriptor.git or place.git:
            inside = _repo_path(PurePosixPath() if descriptor.git else place.inside, descriptor.path)
            git = _git_location(place, descriptor.git) if descriptor.git else place.git
            here = Place(git=git, commit=entry.commit or place.commit, inside=PurePosixPath(inside).parent)
            return _Read(parse(entry.content, Path(inside), entry.file), here, entry, pinned)
        assert place.directory is not None
        path = Path(os.path.normpath(place.directory / descriptor.path))
        return _Read(parse(entry.content, path, entry.file), Place(directory=path.parent), entry, pinned)

    def _own_lock(self, layer: Layer, name: str, place: Place) -> LockFile | None:
        """The lock an included composer carries for its own includes (None, and refused, when missing)."""
        from polybuild.config import gitinclude

        lock_name = includelock.lock_path(Path(layer.file.path.name)).name
        if place.git:
            assert place.commit is not None
            inside = _repo_path(place.inside, lock_name)
            where = f"{layer.file.display.rpartition(':')[0]}:{inside}"
            data = gitinclude.show(place.git, place.commit, inside)
            lock = includelock.parse(data.decode("utf-8", "replace"), where) if data is not None else None
        else:
            assert place.directory is not None
            where = _display(place.directory / lock_name, self.root)
            lock = includelock.read(place.directory / lock_name, where)
        if lock is None:
            self.refused.append((f"include '{name}' ({layer.file.display}) has includes of its own but no lock "
                                 f"({where}), so what it is made of is not pinned", self._owner_fix(layer, place)))
        return lock

    def _check_owner(self, owner: str, lock: LockFile, name: str, entry: Entry) -> None:
        """An include below an included composer must be exactly what that composer's own lock says."""
        relative = name[len(owner) + 1:]
        mine = lock.entries.get(relative)
        if mine is not None and mine.descriptor == entry.descriptor and mine.sha256 == entry.sha256:
            return
        if mine is None:
            what = "is not in it"
        elif mine.descriptor != entry.descriptor:
            what = f"is locked there as {mine.descriptor.describe()}"
        else:
            what = f"changed since it was locked there (sha256 {mine.sha256[:12]} -> {entry.sha256[:12]})"
        self.refused.append((f"include '{owner}' is refused: its own lock is out of date: '{relative}' "
                             f"({entry.file}) {what}",
                             f"the owner of '{owner}' accepts the change with `polybuild --config FILE lock upgrade "
                             f"{relative}` and commits the lock"))

    def _owner_fix(self, layer: Layer, place: Place) -> str:
        if place.git:
            return "pin `rev` to a revision that has an up-to-date lock next to the file"
        return f"run `polybuild --config {layer.file.display} lock upgrade --all` and commit the lock it writes"

    def _owner_commit(self, name: str, descriptor: Descriptor, owners: list[tuple[str, LockFile]]) -> str | None:
        """A git include below an included composer is read at the commit that composer's lock pins."""
        if not descriptor.git or not owners:
            return None
        owner, lock = owners[-1]
        mine = lock.entries.get(name[len(owner) + 1:])
        return mine.commit if mine is not None and mine.descriptor == descriptor else None

    def _upgrading(self, name: str) -> bool:
        if self.upgrade is None:
            return False
        return not self.upgrade or any(name == u or name.startswith(u + "/") for u in self.upgrade)

    def finish(self) -> None:
        """Stop on includes that changed since they were locked, and on upgrades of includes that do not exist."""
        unknown = sorted(n for n in self.upgrade or () if n not in self.entries)
        if unknown:
            raise UserError(f"no include named {', '.join(repr(n) for n in unknown)}",
                            hint=f"includes: {', '.join(sorted(self.entries)) or '(none)'}")
        if self.refused:
            raise UserError("\n".join(m for m, _ in self.refused), hint=self.refused[0][1])
        if self.stale:
            names = " ".join(dict.fromkeys([*sorted(self.upgrade or ()), *(name for name, _ in self.stale)]))
            raise UserError("\n".join(what for _, what in self.stale),
                            hint=f"review the change, then accept it with `polybuild lock upgrade {names}`")


def _descriptor(layer: Layer, table: dict[str, Any], names: set[str]) -> tuple[Descriptor, str]:
    """A validated include entry and its name, unique among its siblings."""
    if "path" not in table:
        raise layer.file.error((*layer.prefix, "include"), "an include needs `path`",
                               'e.g. include = [{ path = "../shared/polybuild-base.toml" }]')
    descriptor = Descriptor(table["path"], table.get("git"), table.get("rev"))
    if descriptor.git and not descriptor.rev:
        raise _include_error(layer, descriptor, f"git include {descriptor.path} needs `rev`",
                             "pin it to a commit or tag, e.g. rev = \"v1.2.0\"")
    if descriptor.rev and not descriptor.git:
        raise _include_error(layer, descriptor, f"include {descriptor.path} has `rev` but no `git`",
                             "`rev` is the revision of the repository named by `git`")
    name = table.get("name") or PurePosixPath(descriptor.path).stem
    if not _NAME.match(name):
        raise _include_error(layer, descriptor, f"include name '{name}' is not a plain name",
                             "give the include a `name` of letters, digits, '.', '_' and '-'")
    if name in names:
        raise _include_error(layer, descriptor, f"two includes are named '{name}'",
                             "give one of them a different `name`")
    names.add(name)
    return descriptor, name


def _include_error(layer: Layer, descriptor: Descriptor, message: str, hint: str | None = None) -> ConfigError:
    """An error located at the line of the include entry (the line naming its path), else at `include`."""
    line = layer.file.line_of((*layer.prefix, "include"))
    if line is not None:
        lines = layer.file.text.splitlines()
        for i in range(line - 1, len(lines)):
            if f'"{descriptor.path}"' in lines[i] or f"'{descriptor.path}'" in lines[i]:
                line = i + 1
                break
    return ConfigError(message, file=layer.file.display, line=line, hint=hint)


def _table(file: TomlFile, descriptor: Descriptor) -> dict[str, Any]:
    raw: Any = file.data
    for key in config_prefix(Path(descriptor.path)):
        raw = raw.get(key, {}) if isinstance(raw, dict) else {}
    return raw


def _git_location(place: Place, git: str) -> str:
    """A repository's URL, or a local repository's absolute path (relative to the including file)."""
    from polybuild.config.gitinclude import is_url

    if is_url(git) or Path(git).expanduser().is_absolute():
        return git if is_url(git) else str(Path(git).expanduser())
    if place.directory is None:
        raise UserError(f"git = \"{git}\" is a relative path in a file read from git",
                        hint="a file in a git repository names other repositories by URL or absolute path")
    return os.path.normpath(place.directory / Path(git).expanduser())


def _repo_path(inside: PurePosixPath, path: str) -> str:
    return os.path.normpath(str(inside / path)).replace(os.sep, "/")


def _display(path: Path, root: Path) -> str:
    return os.path.relpath(path, root) if path.is_absolute() else str(path)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _changed(locked: Entry, now: Entry) -> str:
    """The sha256s and the start of a diff between the locked snapshot and the content now."""
    import difflib

    diff = list(difflib.unified_diff(locked.content.splitlines(), now.content.splitlines(), "locked", "now",
                                     lineterm="", n=1))
    shown = diff[:_DIFF_LINES] + ([f"... ({len(diff) - _DIFF_LINES} more diff lines)"]
                                  if len(diff) > _DIFF_LINES else [])
    return f"(sha256 {locked.sha256[:12]} -> {now.sha256[:12]}):" + "".join(f"\n    {line}" for line in shown)


def _changes(old: LockFile | None, new: LockFile, display: str) -> list[str]:
    """What writing `new` over `old` changes, one line per include."""
    before = old.entries if old else {}
    out = []
    for name in sorted(new.entries.keys() | before.keys()):
        was, now = before.get(name), new.entries.get(name)
        if was == now:
            continue
        if now is None:
            out.append(f"{display}: dropped '{name}' (no longer included)")
        elif was is None:
            out.append(f"{display}: locked '{name}' ({now.file}, sha256 {now.sha256[:12]})")
        else:
            out.append(f"{display}: upgraded '{name}' ({now.file}, sha256 {was.sha256[:12]} -> {now.sha256[:12]})")
    return out
