"""The workspace: targets discovered from native manifests (no BUILD files), and how to find them by name.

One discoverer per ecosystem turns manifests into `Target`s with unresolved references (a path, a package name, a
target name); `discover` resolves those references into edges, so the graph layer only sees target ids.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polybuild.config.model import Config
from polybuild.support.errors import UserError
from polybuild.workspace.targetinfo import CrateInfo, GoInfo, MaturinInfo, PythonInfo, RustInfo, TargetInfo

if TYPE_CHECKING:
    from polybuild.workspace.cargometa import CargoMetadata
    from polybuild.workspace.files import DiskFiles

BUILT_KINDS = frozenset({"rust", "py", "go"})  # what [targets] settings and image artifacts can name
HARNESSES = {"fuzz": "a fuzz harness", "bench": "a benchmark harness", "wasm": "a wasm32-only crate"}


@dataclass(frozen=True)
class Ref:
    """A dependency as a manifest states it, before it is resolved to a target."""

    kind: str  # "path" (a directory), "py" (a normalized distribution name), "name" (a target name or id) or
    # "staticlib" (a library a cgo preamble links, by its name without `lib`)
    value: str
    source: str  # "file:line" or file, for errors
    required: bool = True  # a "py" ref to a package outside the workspace is simply external
    kinds: frozenset[str] | None = None  # for "name": the kinds of target it may name
    source_only: bool = False  # a Cargo path dependency: the dependent's cargo compiles it, no build of it is needed


@dataclass
class Target:
    """One buildable (or testable) unit: a crate, a Python package, a Go module or an image."""

    id: str  # "<ecosystem>:<name>", unique in the workspace
    name: str
    kind: str  # "rust", "py", "go" or "image"
    builder: str | None  # a key of polybuild.builders.BUILDERS, or None for libraries
    dir: Path
    manifest: Path
    info: TargetInfo  # what discovery read from its manifest, typed per kind (workspace.targetinfo)
    version: str | None = None
    features: frozenset[str] = frozenset()  # Cargo features the crate declares (variants apply only these)
    refs: list[Ref] = field(default_factory=list)
    deps: set[str] = field(default_factory=set)
    source_deps: set[str] = field(default_factory=set)  # the deps it only compiles from source (see Ref.source_only)
    settings: dict[str, Any] = field(default_factory=dict)  # its [targets.<name>] config table

    def left_out(self, named: bool = False) -> str | None:
        """Why `build` and `ci matrix` leave this target out, or None: `skip = true`, or a fuzz, benchmark or
        wasm-only crate (a harness, not a product) that was neither named nor given `skip = false`."""
        skip = self.settings.get("skip")
        if skip:
            return f"skip = true in {self.config_table}"
        harness = self.info.harness if isinstance(self.info, RustInfo) else None
        if harness and self.builder and skip is None and not named:
            return (f"{HARNESSES[harness]}, not a product (name it, or set skip = false in {self.config_table}, "
                    "to build it)")
        return None

    @property
    def config_table(self) -> str:
        """Its settings' table as a user would write it: by name, or by id when the id is qualified."""
        return f"[targets.{self.name}]" if self.id == f"{self.kind}:{self.name}" else f'[targets."{self.id}"]'

    @property
    def ecosystem_label(self) -> str:
        return {"rust": "Rust crate", "py": "Python package", "go": "Go module", "image": "image"}[self.kind]


@dataclass
class Workspace:
    """Everything discovered in one workspace root."""

    root: Path
    config: Config
    files: list[str]
    targets: dict[str, Target]
    version: str | None
    untracked: frozenset[str] | None = None  # files git does not track yet; None outside a git checkout
    notes: list[str] = field(default_factory=list)  # worth saying once (names that collide), not errors
    absent: dict[str, str] = field(default_factory=dict)  # sparse checkout: path -> "mode blob-id" from the index

    @cached_property
    def cargo_metadata(self) -> CargoMetadata:
        """This run's `cargo metadata` answers (discovery hands over those it read; none are read on a memo hit)."""
        return _cargo_metadata()

    @cached_property
    def unlisted(self) -> DiskFiles:
        """Files on disk in target directories that git's listing leaves out (read only by builds)."""
        from polybuild.workspace.files import unlisted_files

        dirs = [self.rel(t.dir) for t in self.targets.values() if t.kind != "image"]
        return unlisted_files(self.root, dirs, self.files, self.config.output_prefixes, self.config["exclude"])

    @property
    def release_version(self) -> str:
        """The version stamped into artifacts ("0.0.0-dev" when none is declared)."""
        return self.version or "0.0.0-dev"

    def rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix() or "."
        except ValueError:
            return str(path)

    def resolve(self, name: str, *, source: str = "command line", kinds: frozenset[str] | None = None) -> Target:
        """Find a target by id (with or without its kind), by name, or by directory; ambiguity and typos are errors
        with suggestions."""
        if name in self.targets and (kinds is None or self.targets[name].kind in kinds):
            return self.targets[name]
        candidates = [t for t in self.targets.values() if kinds is None or t.kind in kinds]
        matches = [t for t in candidates if name in (t.name, t.id.partition(":")[2])
                   or (t.kind != "image" and self.rel(t.dir) == name.rstrip("/"))]
        if len(matches) == 1:
            return matches[0]
        if matches:
            ids = ", ".join(sorted(t.id for t in matches))
            raise UserError(f"{source}: '{name}' is ambiguous: {ids}", hint="use the full id")
        names = sorted({*(t.id for t in candidates), *(t.name for t in candidates)})
        close = difflib.get_close_matches(name, names, n=3)
        hint = (f"did you mean {' or '.join(repr(c) for c in close)}?" if close
                else "run `polybuild graph` to list targets")
        raise UserError(f"{source}: no target named '{name}'", hint=hint)


    def select(self, names: list[str] | tuple[str, ...], *, source: str = "command line") -> list[str]:
        """The ids the names select, in order, each once: a glob (`py:*`, `*serving*`) matches ids and names; a
        directory (`lib/`) selects every target in or below it; anything else is one target (see `resolve`).
        A name that selects nothing is an error listing close names."""
        ids: dict[str, None] = {}
        for name in names:
            ids.update(dict.fromkeys(self._select_one(name, source)))
        return list(ids)

    def _select_one(self, name: str, source: str) -> list[str]:
        import fnmatch

        if any(c in name for c in "*?["):
            found = [t.id for t in self.targets.values()
                     if fnmatch.fnmatchcase(t.id, name) or fnmatch.fnmatchcase(t.name, name)]
            if found:
                return found
            names = sorted({*self.targets, *(t.name for t in self.targets.values())})
            close = difflib.get_close_matches(name.replace("*", ""), names, n=3, cutoff=0.4)
            hint = f"close names: {', '.join(close)}" if close else "run `polybuild graph` to list targets"
            raise UserError(f"{source}: no target matches '{name}'", hint=hint)
        if not name.endswith("/"):
            try:
                return [self.resolve(name, source=source).id]
            except UserError as exc:
                under = self._under(name)
                if not under:
                    raise exc from None
                return under
        under = self._under(name)
        if under:
            return under
        if (self.root / name).is_dir():
            raise UserError(f"{source}: no target in or below the directory '{name}'",
                            hint="run `polybuild graph` to list targets and their directories")
        return [self.resolve(name, source=source).id]  # not a directory: says which names are close

    def _under(self, directory: str) -> list[str]:
        """The targets (not images) whose directory is `directory` or below it."""
        prefix = os.path.normpath(directory.strip("/") or ".")
        if prefix == ".":
            return [t.id for t in self.targets.values() if t.kind != "image"]
        return [t.id for t in self.targets.values() if t.kind != "image"
                and (self.rel(t.dir) == prefix or self.rel(t.dir).startswith(prefix + "/"))]


def discover(config: Config) -> Workspace:
    """Read every manifest of the workspace and resolve references into edges."""
    from polybuild.support.statedir import ensure
    from polybuild.workspace import files, images, memo

    root = config.root
    ensure(config.state_dir)  # before the listing: a state directory polybuild makes is one git ignores
    found_files = files.list_files(root, config["exclude"])
    own = config.output_prefixes  # outputs are never inputs, even where .gitignore forgets them
    listing = [p for p in found_files.files if not p.startswith(own)]
    memo_path = config.state_dir / "discovery.json"
    signature, trusted = memo.signature(root, config, listing)
    found = memo.load(memo_path, signature) if trusted else None
    cargo_metadata = None
    if found is None:
        cargo_metadata = _cargo_metadata()
        found = _discover_manifests(config, listing, cargo_metadata)
        if trusted:
            memo.store(memo_path, signature, found)
    found += images.discover(root, config, found)
    notes = _qualify_colliding_ids(found, root)
    targets = _index(found, root)
    ws = Workspace(root, config, listing, targets, _workspace_version(config, targets), found_files.untracked,
                   notes, found_files.absent)
    if cargo_metadata is not None:
        ws.cargo_metadata = cargo_metadata  # discovery's answers serve the rest of the run
    _apply_settings(ws)
    _resolve_refs(ws)
    return ws


def _cargo_metadata() -> CargoMetadata:
    from polybuild.workspace.cargometa import CargoMetadata

    return CargoMetadata()


def _discover_manifests(config: Config, listing: list[str], cargo_metadata: CargoMetadata) -> list[Target]:
    """The targets the native manifests declare, one discoverer per ecosystem."""
    from polybuild.workspace import cargo, go, python

    asked = tuple(f"{r.strip('/')}/" for r in (*config["python-roots"], *config["go-roots"]) if _in_dot_dir(f"{r}/"))
    listing = [p for p in listing if not _in_dot_dir(p) or p.startswith(asked)]
    rust_targets = cargo.discover(config.root, listing, config, cargo_metadata)
    py_targets = python.discover(config.root, listing, config, rust_targets)
    staticlibs = frozenset(lib for t in rust_targets.values() for lib in t.info.staticlibs)
    go_targets = go.discover(config.root, listing, config, staticlibs)
    return [*rust_targets.values(), *py_targets, *go_targets]


def _in_dot_dir(rel: str) -> bool:
    """Whether a file lies under a directory whose name starts with a dot (`.github/`, `.devcontainer/`): helper
    scripts there are not products, even with a manifest, unless a `python-roots`/`go-roots` entry names it."""
    return any(part.startswith(".") for part in rel.split("/")[:-1])


def _qualify_colliding_ids(found: list[Target], root: Path) -> list[str]:
    """Targets of one kind that share a name get ids that tell them apart, the same whatever order they were
    found in: a Go module's id becomes its module path, others become `<kind>:<name>@<directory>`. One note
    per shared name."""
    by_id: dict[str, list[Target]] = {}
    for t in found:
        if t.kind != "image":  # image names are keys of one config table, unique already
            by_id.setdefault(t.id, []).append(t)
    notes = []
    for same in (group for _, group in sorted(by_id.items()) if len(group) > 1):
        dirs = sorted(t.dir.relative_to(root).as_posix() or "." for t in same)
        modules = {t.info.module for t in same if isinstance(t.info, GoInfo)}
        by_module = len(modules) == len(same)  # Go modules, each with its own module path
        for t in same:
            where = t.dir.relative_to(root).as_posix() or "."
            t.id = f"go:{t.info.module}" if by_module else f"{t.kind}:{t.name}@{where}"
        scheme = "their module paths" if by_module else f"'{same[0].kind}:<name>@<directory>'"
        notes.append(f"{len(same)} {same[0].ecosystem_label}s are named '{same[0].name}' ({', '.join(dirs)}): "
                     f"their ids are {scheme}")
    return notes


def _index(found: list[Target], root: Path) -> dict[str, Target]:
    return dict(sorted((t.id, t) for t in found))


def _workspace_version(config: Config, targets: dict[str, Target]) -> str | None:
    """The version stamped into artifacts: config, else the root [project].version, else Cargo's workspace one."""
    if config["version"]:
        return config["version"]
    pyproject = config.root / "pyproject.toml"
    if pyproject.is_file():
        from polybuild.support import tomlfile

        version = tomlfile.load(pyproject, "pyproject.toml").data.get("project", {}).get("version")
        if isinstance(version, str):
            return version
    return next((t.info.workspace_version for t in targets.values()
                 if isinstance(t.info, CrateInfo) and t.info.workspace_version), None)


def _apply_settings(ws: Workspace) -> None:
    renamed: list[tuple[str, Target]] = []
    for key, settings in ws.config["targets"].items():
        try:
            target = ws.resolve(key, source=f"[targets.{key}]", kinds=BUILT_KINDS)
        except UserError as exc:
            raise ws.config.error(("targets", key), exc.message, exc.hint) from None
        target.settings = settings
        if settings["version"] is not None:
            if target.kind != "go":
                raise ws.config.error(("targets", key, "version"), f"{target.id} declares its version in "
                                      f"{ws.rel(target.manifest)}, not here", hint="remove `version` from this table")
            target.version = settings["version"]
        for dep in settings["deps"]:
            if ws.resolve(dep, source=f"[targets.{key}].deps") is target:
                raise ws.config.error(("targets", key, "deps"), f"{target.id} depends on itself",
                                      hint=f"remove '{dep}' from its deps")
            target.refs.append(Ref("name", dep, f"[targets.{key}].deps"))
        if settings["name"] is not None:
            renamed.append((key, target))
    for key, target in renamed:
        _rename(ws, key, target)


def _rename(ws: Workspace, key: str, target: Target) -> None:
    """`[targets.<key>] name = "..."`: the target's id becomes `<kind>:<name>`; it must not take another's id."""
    new_id = f"{target.kind}:{target.settings['name']}"
    other = ws.targets.get(new_id)
    if other is not None and other is not target:
        raise ws.config.error(("targets", key, "name"),
                              f"renaming {target.id} to {new_id} collides with {new_id} ({ws.rel(other.manifest)})",
                              "choose a name no other target of this kind has")
    del ws.targets[target.id]
    target.id = new_id
    ws.targets[new_id] = target
    ws.targets = dict(sorted(ws.targets.items()))


def _resolve_refs(ws: Workspace) -> None:
    by_dir = {t.dir: t.id for t in ws.targets.values()}
    # a maturin package stands for the crate it wraps
    by_dir.update({Path(t.info.crate_manifest).parent: t.id for t in ws.targets.values()
                   if isinstance(t.info, MaturinInfo)})
    by_dist: dict[str, list[str]] = {}
    for t in ws.targets.values():
        if isinstance(t.info, PythonInfo):
            by_dist.setdefault(t.info.dist_name, []).append(t.id)
    by_staticlib = {lib: t.id for t in ws.targets.values() if isinstance(t.info, RustInfo)
                    for lib in t.info.staticlibs}
    for t in ws.targets.values():
        built: set[str] = set()  # deps whose artifacts t needs, by at least one reference
        for ref in t.refs:
            dep = (by_staticlib.get(ref.value) if ref.kind == "staticlib"
                   else _resolve_ref(ws, ref, by_dir, by_dist))
            if dep and dep != t.id:
                t.deps.add(dep)
                if not ref.source_only:
                    built.add(dep)
        t.source_deps = t.deps - built


def _resolve_ref(ws: Workspace, ref: Ref, by_dir: dict[Path, str], by_dist: dict[str, list[str]]) -> str | None:
    if ref.kind == "py":
        found = by_dist.get(ref.value, [])
        if len(found) > 1:
            manifests = ", ".join(sorted(ws.rel(ws.targets[i].manifest) for i in found))
            raise UserError(f"{ref.source}: '{ref.value}' is the name of {len(found)} packages of this workspace: "
                            f"{manifests}", hint="rename one of them in its [project] name, or exclude one")
        return found[0] if found else None
    if ref.kind == "path":
        path = Path(os.path.normpath(ref.value))
        if path in by_dir:
            return by_dir[path]
        if not ref.required:
            return None
        shown = ws.rel(path)
        if not path.exists():
            raise UserError(f"{ref.source}: depends on {shown}, which does not exist",
                            hint="fix the path or remove the dependency")
        raise UserError(f"{ref.source}: depends on {shown}, which is not a package of this workspace",
                        hint="add it to the workspace (or remove it from `exclude`)")
    return ws.resolve(ref.value, source=ref.source, kinds=ref.kinds).id
