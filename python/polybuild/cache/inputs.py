"""Which files each target's output depends on.

A target's inputs are the files in its directory: those git lists, those a sparse checkout left out (by their index
blob id), and those on disk that git ignores, such as generated code or a `_version.py`, which a backend may pack
(but not other tools' outputs and caches, see `workspace.files.unlisted_files`, nor the target's declared task
outputs); minus the directories of other targets nested inside it, plus the files of the library targets it uses (a
crate's path dependencies, even those with binaries of their own: cargo compiles them from source; a Go module's local
`replace`s), plus the workspace-level files its toolchain reads (the Cargo workspace manifest and lock, go.work).
`[targets.<name>] inputs` replaces the directory part with explicit globs.

Libraries enter a key as one digest each (computed once per run), not file by file: in a deep graph of Go or Rust
libraries that keeps the work per run proportional to the number of files, not files times dependents.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import TYPE_CHECKING

from polybuild.workspace.targetinfo import CrateInfo

if TYPE_CHECKING:
    from polybuild.graph import TargetGraph
    from polybuild.workspace import Target, Workspace

CARGO_WORKSPACE_FILES = ("Cargo.toml", "Cargo.lock", "rust-toolchain.toml", "rust-toolchain", ".cargo/config.toml")
GO_WORKSPACE_FILES = ("go.work", "go.work.sum")


def _declared_outputs(ws: Workspace, target: Target) -> list[str]:
    """The output globs (relative to the target) of the custom tasks it may run: written there, never read."""
    from polybuild.plan import task_spec

    names = {*target.settings.get("tasks", {}), *ws.config["tasks"]}
    return [p for name in names if (spec := task_spec(ws, target, name)) for p in spec["outputs"]]


def _owners(rel: str, dirs: dict[str, list[str]]) -> list[str]:
    """The targets whose directory is the deepest one containing `rel`."""
    d = rel
    while d:
        d = d.rpartition("/")[0]
        found = dirs.get(d or ".")
        if found:
            return found
    return []


class InputIndex:
    """Input files per target, computed once per run from the workspace listing."""

    def __init__(self, ws: Workspace, graph: TargetGraph) -> None:
        self.ws = ws
        self.graph = graph
        self._own = self._own_files()
        self._listed = set(ws.files)
        self._cache: dict[str, list[str]] = {}
        self._library_cache: dict[str, list[str]] = {}

    def _own_files(self) -> dict[str, list[str]]:
        """Assign every file to the deepest target directory containing it (a gitignored file only if it is not one
        of that target's declared task outputs)."""
        ws = self.ws
        dirs: dict[str, list[str]] = {}
        for t in ws.targets.values():
            if t.kind != "image":
                dirs.setdefault(ws.rel(t.dir), []).append(t.id)
        own: dict[str, list[str]] = {tid: [] for tid in ws.targets}
        for rel in (*ws.files, *ws.absent):
            for tid in _owners(rel, dirs):
                own[tid].append(rel)
        outputs: dict[str, tuple[int, list[str]]] = {}  # target -> (prefix length, output globs), when needed
        for rel in ws.unlisted.files:
            for tid in _owners(rel, dirs):
                if tid not in outputs:
                    base = ws.rel(ws.targets[tid].dir)
                    outputs[tid] = (0 if base == "." else len(base) + 1, _declared_outputs(ws, ws.targets[tid]))
                cut, globs = outputs[tid]
                if not any(fnmatch.fnmatchcase(rel[cut:], g) for g in globs):
                    own[tid].append(rel)
        return own

    def all_files(self) -> list[str]:
        """Every file some target reads: what a no-op check must watch."""
        return [*self.ws.files, *self.ws.unlisted.files]

    def files(self, target: Target, patterns: list[str] | None = None) -> list[str]:
        """The sorted input files of `target` (relative to the workspace root)."""
        cache_key = target.id if patterns is None else f"{target.id}\0{patterns}"
        if cache_key not in self._cache:
            self._cache[cache_key] = sorted(self._collect(target, patterns))
        return self._cache[cache_key]

    def _collect(self, target: Target, patterns: list[str] | None) -> set[str]:
        ws = self.ws
        if target.kind == "image":  # root-relative globs: its templates and context files
            return {f for f in ws.files if any(fnmatch.fnmatchcase(f, p) for p in target.info.inputs)}
        patterns = patterns if patterns is not None else target.settings.get("inputs") or None
        if patterns:
            base = ws.rel(target.dir)
            cut = 0 if base == "." else len(base) + 1
            files = {f for f in self._own[target.id] if any(fnmatch.fnmatchcase(f[cut:], p) for p in patterns)}
        else:
            files = set(self._own[target.id])
        files.update(self._toolchain_files(target))
        return files

    def library_files(self, library_id: str) -> list[str]:
        return self._own[library_id]

    def libraries(self, target: Target) -> list[str]:
        """Dependencies without a build of their own, or that it compiles from source (Cargo path dependencies),
        followed transitively: their sources are our inputs."""
        if target.id not in self._library_cache:
            self._library_cache[target.id] = self._find_libraries(target)
        return self._library_cache[target.id]

    def _find_libraries(self, target: Target) -> list[str]:
        found: set[str] = set()
        stack = [(target.id, d) for d in self.graph.successors(target.id)]
        while stack:
            via, dep = stack.pop()
            if dep in found or (self.ws.targets[dep].builder is not None and not self.graph.source_only(via, dep)):
                continue
            found.add(dep)
            stack.extend((dep, d) for d in self.graph.successors(dep))
        return sorted(found)

    def _toolchain_files(self, target: Target) -> list[str]:
        ws = self.ws
        extra: list[str] = []
        if isinstance(target.info, CrateInfo):
            base = ws.rel(Path(target.info.cargo_workspace))
            extra += [f if base == "." else f"{base}/{f}" for f in CARGO_WORKSPACE_FILES]
        if target.kind == "go":
            extra += list(GO_WORKSPACE_FILES)
        return [f for f in extra if f in self._listed]
