"""The plan: which tasks run, for which variant and platform, and what each waits for.

Variants and platforms multiply only the targets they affect: a pure wheel is built once even when the Rust
extension it depends on is built for three variants, and artifacts of different variants never share a path.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from polybuild import builders
from polybuild.support.errors import UserError
from polybuild.support.platforms import PLATFORMS, Platform, host

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Set

    from polybuild.graph import TargetGraph
    from polybuild.workspace import Target, Workspace

@dataclass(frozen=True)
class Variant:
    name: str
    features: tuple[str, ...]
    platforms: tuple[str, ...]


@dataclass
class Task:
    """One unit of work: a target's build (or custom task) for one variant and platform."""

    id: str
    target: Target
    action: str  # "build", or the name of a custom task such as "test"
    builder: str
    variant: Variant | None
    platform: Platform | None
    deps: set[str] = field(default_factory=set)
    priority: float = 0.0  # length of the longest chain of work waiting on this task
    spec: dict | None = None  # the config of a custom (command) task

    @property
    def features(self) -> list[str]:
        """Cargo features: the target's configured ones plus those of its variant that it declares."""
        chosen = set(self.target.settings.get("features", ()))
        if self.variant:
            chosen |= set(self.variant.features) & self.target.features
        return sorted(chosen)

    def dist_subdir(self, host_platform: Platform) -> str:
        """Where a build publishes, inside the dist directory: per variant, per foreign platform, and the target's
        own `dist-subdir`."""
        parts = [self.variant.name if self.variant else "",
                 self.platform.slug if self.platform and self.platform != host_platform else "",
                 self.target.settings.get("dist-subdir") or ""]
        return "/".join(p for p in parts if p)


@dataclass
class Plan:
    tasks: dict[str, Task]
    skipped: list[tuple[str, str]]  # (target id, reason)
    variants: list[Variant | None]
    platforms: list[Platform]


def variants_of(ws: Workspace) -> dict[str, Variant]:
    return {
        name: Variant(name, tuple(v["features"]), tuple(v["platforms"]))
        for name, v in ws.config["variants"].items()
    }


def choose_dimensions(ws: Workspace, variant_names: list[str], platform_names: list[str]
                      ) -> tuple[list[Variant | None], list[Platform]]:
    """Check the requested variants and platforms against config before anything runs."""
    known = variants_of(ws)
    for name in variant_names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean '{close[0]}'?" if close else (
                f"variants: {', '.join(known)}" if known else "declare variants in [variants]")
            raise UserError(f"unknown variant '{name}'", hint=hint)
    if variant_names:
        variants: list[Variant | None] = [known[n] for n in dict.fromkeys(variant_names)]
    else:
        variants = [v for n, v in known.items() if ws.config["variants"][n]["default"]] or [None]
    valid = ws.config["platforms"] or PLATFORMS
    platforms = [Platform.parse(name, valid=valid, why="not valid for this workspace")
                 for name in dict.fromkeys(platform_names) or [host().name]]
    for v in variants:
        for p in platforms:
            if v and v.platforms and p.name not in v.platforms:
                raise UserError(f"variant '{v.name}' cannot be built for {p.name}",
                                hint=f"'{v.name}' is valid for: {', '.join(v.platforms)}")
    return variants, platforms


def _sensitive_variant(target: Target, variant: Variant | None) -> Variant | None:
    if variant and set(variant.features) & target.features:
        return variant
    return None


def _sensitive_platform(builder: str, platform: Platform) -> Platform | None:
    return platform if builders.get(builder).platform_sensitive else None


def task_id(target_id: str, action: str, variant: Variant | None, platform: Platform | None) -> str:
    """Readable and unique: `py:serving-runtime`, `go:operator [linux/arm64]`, `rust:x:test [cuda]`."""
    base = target_id if action == "build" else f"{target_id}:{action}"
    dims = [d for d in (variant.name if variant else None,
                        platform.name if platform and platform != host() else None) if d]
    return f"{base} [{', '.join(dims)}]" if dims else base


def build_plan(ws: Workspace, g: TargetGraph, selected: set[str], variants: list[Variant | None],
               platforms: list[Platform], named: Set[str] = frozenset()) -> Plan:
    """Build tasks for the selected targets (and what they need), deduplicated across dimensions; harness crates
    only when `named`."""
    tasks: dict[str, Task] = {}
    left_out = {tid: reason for tid in g.order(selected) if (reason := ws.targets[tid].left_out(tid in named))}
    skipped = list(left_out.items())
    buildable = {i for i in selected if ws.targets[i].builder and i not in left_out}
    images = [i for i in g.order(buildable) if ws.targets[i].kind == "image"]
    artifacts = buildable.difference(images)

    def add(tid: str, v: Variant | None, p: Platform) -> Task:
        target = ws.targets[tid]
        task = _task(target, "build", target.builder, v, p)
        task = tasks.setdefault(task.id, task)
        for dep in _buildable_deps(ws, g, tid, artifacts):
            dep_target = ws.targets[dep]
            task.deps.add(_task(dep_target, "build", dep_target.builder, v, p).id)
        return task

    for tid in g.order(artifacts):
        for v in variants:
            for p in platforms:
                add(tid, v, p)
    for tid in images:
        for v in variants:
            candidates = _image_platforms(ws.targets[tid], platforms)
            image_platforms = [p for p in candidates if not (v and v.platforms) or p.name in v.platforms]
            if image_platforms:
                _add_image(ws.targets[tid], v, image_platforms, g.order(g.needs([tid]) & artifacts), add, tasks)
            elif v:  # the variant is built for none of the image's (Linux) platforms
                skipped.append((tid, f"variant '{v.name}' is built for {', '.join(v.platforms)}, not for "
                                     f"{', '.join(p.name for p in candidates)}"))
    _check_dist_paths(ws, tasks)
    _prioritize(tasks)
    return Plan(tasks, skipped, variants, platforms)


def _check_dist_paths(ws: Workspace, tasks: dict[str, Task]) -> None:
    """Two tasks that would publish the same dist path (Go binaries of one name from two modules, wheels of names
    equal after normalisation: one wheel pattern) stop the plan before anything runs, naming both."""
    for path, first, task in dist_clashes(tasks.values()):
        shown = f"{ws.config['dist-dir'].rstrip('/')}/{path}"
        raise UserError(f"{first.id} and {task.id} would both publish {shown}",
                        hint=f"give one of them its own directory: {task.target.config_table} "
                             "dist-subdir = \"...\" (or build them one at a time)")


def dist_clashes(tasks: Iterable[Task]) -> list[tuple[str, Task, Task]]:
    """(dist path, the task that claims it first, another task publishing it) for every clash, in task id order."""
    here = host()
    claimed: dict[str, Task] = {}
    clashes = []
    for task in sorted(tasks, key=lambda t: t.id):
        subdir = task.dist_subdir(here)
        for name in builders.get(task.builder).published_names(task, here):
            path = f"{subdir}/{name}" if subdir else name
            first = claimed.setdefault(path, task)
            if first.id != task.id:
                clashes.append((path, first, task))
    return clashes


def _image_platforms(image: Target, platforms: list[Platform]) -> list[Platform]:
    """Images are Linux: the image's own platforms, else the Linux side of the requested ones."""
    names = image.info.spec["platforms"]
    if names:
        return [Platform.parse(n) for n in names]
    return sorted({Platform("linux", p.arch) for p in platforms})


def _add_image(image: Target, v: Variant | None, platforms: list[Platform], contents: list[str],
               add: Callable[[str, Variant | None, Platform], Task], tasks: dict[str, Task]) -> None:
    """An image task needs every artifact of its closure built for its platforms; an image is built per platform
    (a Dockerfile build), or once for all of them when its builder says so (one multi-platform index)."""
    per_platform = {p: {add(tid, v, p).id for tid in contents} for p in platforms}
    at_once = builders.get(image.builder).all_platforms_in_one_task
    groups = [platforms] if at_once else [[p] for p in platforms]
    for group in groups:
        deps = set().union(*(per_platform[p] for p in group))
        variant = _image_variant(image, v, any(tasks[d].variant for d in deps))
        platform = None if at_once else group[0]
        task = Task(task_id(image.id, "build", variant, platform), image, "build", image.builder, variant, platform)
        tasks.setdefault(task.id, task).deps |= deps


def _image_variant(image: Target, v: Variant | None, contents_vary: bool) -> Variant | None:
    """An image task carries the variant when an artifact in it does, or when its `variant` choice renders it
    differently from the default build (whose value is the choice's first)."""
    follows = image.info.spec["variant"]
    renders_differently = bool(follows and v and v.name != image.info.spec["choices"][follows][0])
    return v if contents_vary or renders_differently else None


def _task(target: Target, action: str, builder: str, v: Variant | None, p: Platform) -> Task:
    variant = _sensitive_variant(target, v)
    platform = _sensitive_platform(builder, p)
    return Task(task_id(target.id, action, variant, platform), target, action, builder, variant, platform)


def _buildable_deps(ws: Workspace, g: TargetGraph, tid: str, buildable: set[str]) -> set[str]:
    """The nearest dependencies that have a build task, looking through libraries and through the crates it only
    compiles from source (their own builds need not run first)."""
    found: set[str] = set()
    stack = [(tid, d) for d in g.successors(tid)]
    seen: set[str] = set()
    while stack:
        via, d = stack.pop()
        if d in buildable and not g.source_only(via, d):
            found.add(d)
        elif d not in seen:
            seen.add(d)
            stack.extend((d, s) for s in g.successors(d))
    return found


def _prioritize(tasks: dict[str, Task]) -> None:
    """Priority = the task's weight (its builder's rough relative cost) plus the heaviest chain of tasks that wait
    on it (critical path first)."""
    from graphlib import TopologicalSorter

    dependents: dict[str, list[str]] = {i: [] for i in tasks}
    for t in tasks.values():
        for d in t.deps:
            dependents[d].append(t.id)
    chain: dict[str, float] = {}
    for i in reversed(list(TopologicalSorter({i: t.deps for i, t in tasks.items()}).static_order())):
        chain[i] = builders.get(tasks[i].builder).weight + max((chain[d] for d in dependents[i]), default=0.0)
        tasks[i].priority = chain[i]


def _default_task_builder(ws: Workspace, target: Target, action: str) -> str | None:
    """Built-in tasks: `test` is cargo test, pytest (against the built wheels) or go test per package."""
    if action != "test":
        return None
    if target.kind == "rust":
        return "cargo-test"
    if target.kind == "go":
        return "go-test"
    if target.kind == "py" and _has_python_tests(ws, target):
        return "pytest"
    return None


def _has_python_tests(ws: Workspace, target: Target) -> bool:
    prefix = ws.rel(target.dir)
    prefix = "" if prefix == "." else prefix + "/"
    for rel in ws.files:
        if rel.startswith(prefix) and rel.endswith(".py"):
            name = rel.rsplit("/", 1)[-1]
            if name.startswith("test_") or name.endswith("_test.py"):
                return True
    return False


def task_spec(ws: Workspace, target: Target, action: str) -> dict | None:
    """The custom task `action` of a target: its own, else the workspace-wide one if it applies to its kind."""
    own = target.settings.get("tasks", {}).get(action)
    if own is not None:
        return own
    shared = ws.config["tasks"].get(action)
    if shared is not None and (not shared["kinds"] or target.kind in shared["kinds"]):
        return shared
    return None


def task_builder(ws: Workspace, target: Target, action: str) -> str | None:
    if task_spec(ws, target, action) is not None:
        return "command"
    return _default_task_builder(ws, target, action)


def run_plan(ws: Workspace, g: TargetGraph, selected: set[str], action: str, variants: list[Variant | None],
             platforms: list[Platform]) -> Plan:
    """Tasks named `action` for the selected targets, in graph order, plus the builds that some of them need."""
    with_action = {i: b for i in selected if (b := task_builder(ws, ws.targets[i], action))}
    if not with_action:
        raise UserError(f"no selected target has a task named '{action}'",
                        hint=f"declare one in [targets.<name>.tasks.{action}]")
    needs_build = [i for i, b in with_action.items()
                   if builders.get(b).needs_build(task_spec(ws, ws.targets[i], action))]
    plan = build_plan(ws, g, g.needs(needs_build), variants, platforms) if needs_build else Plan(
        {}, [], variants, platforms)
    tasks = plan.tasks
    build_ids = {t.target.id: [] for t in tasks.values()}
    for t in tasks.values():
        build_ids[t.target.id].append(t.id)
    for tid in sorted(with_action):
        target = ws.targets[tid]
        for v in variants:
            for p in platforms:
                task = _task(target, action, with_action[tid], v, p)
                task.spec = task_spec(ws, target, action)
                task = tasks.setdefault(task.id, task)
                for dep in _buildable_deps(ws, g, tid, set(with_action)):
                    dep_target = ws.targets[dep]
                    task.deps.add(_task(dep_target, action, with_action[dep], v, p).id)
                if tid in needs_build:
                    for built in g.needs([tid]):
                        task.deps.update(build_ids.get(built, []))
    _prioritize(tasks)
    return plan
