"""The GitHub Actions matrix of a change: which jobs build which targets, on which runner, for which variant,
Python version and Linux wheel flavour.

Each build is assigned to exactly one job (the first dimension combination that needs it): a pure wheel is built
once, a Go binary once per platform, a PyO3 wheel once per platform x flavour x Python version (once for all Python
versions when it is abi3). Matrix jobs run in parallel, so a job builds the dependency closure of its targets itself
(`polybuild build` does), restoring from the remote cache whatever another job already uploaded. To keep that
duplicate work small, targets sharing dependencies go into the same job; groups smaller than the shard size share a
job, larger ones are split in dependency order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from polybuild import builders
from polybuild.ci.settings import Settings, settings
from polybuild.support.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Callable

    from polybuild.api import Loaded
    from polybuild.plan import Variant
    from polybuild.support.platforms import Platform
    from polybuild.workspace import Target, Workspace


@dataclass(frozen=True, order=True)
class Axis:
    """The dimensions one job runs with (its sort order is the order of the matrix)."""

    platform_index: int
    variant_index: int
    libc_index: int
    python_index: int


@dataclass
class Matrix:
    include: list[dict[str, Any]]
    targets: list[str]  # the targets the matrix builds (the affected ones with --since), in graph order
    since: str | None

    @property
    def empty(self) -> bool:
        return not self.include

    def as_json(self) -> dict[str, Any]:
        return {"include": self.include}


# GitHub refuses a matrix of more jobs than this ("Strategy matrix may not exceed 256 jobs").
MAX_JOBS = 256


def compute(loaded: Loaded, *, since: str | None = None, platforms: list[str] = (), variants: list[str] = (),
            shard_size: int | None = None, max_jobs: int = MAX_JOBS) -> Matrix:
    """The matrix of every buildable target, or of those affected by changes since `since`."""
    ws, dag = loaded.ws, loaded.dag
    conf = settings(ws)
    if shard_size is not None and shard_size < 1:
        raise UserError(f"--shard-size {shard_size}: a job holds at least one target")
    size = shard_size or conf.shard_size
    chosen_platforms, chosen_variants = _dimensions(ws, conf, list(platforms), list(variants))
    if since is not None:
        from polybuild.cache.affected import affected

        selected = affected(ws, dag, since).targets
    else:
        selected = dag.order(set(ws.targets))
    buildable = [t for t in selected if ws.targets[t].builder and not ws.targets[t].left_out()]
    jobs = _assign(loaded, conf, buildable, chosen_platforms, chosen_variants)
    order = {t: i for i, t in enumerate(dag.order(set(ws.targets)))}
    include = []
    for axis in sorted(jobs):
        groups = _shards(_groups(loaded, jobs[axis], order), size)
        for n, targets in enumerate(groups, 1):
            builds = [ws.targets[t] for t in loaded.dag.closure(targets)]
            include.append(_entry(conf, axis, chosen_platforms, chosen_variants, targets, builds, n, len(groups)))
    if len(include) > max_jobs:
        raise UserError(f"the matrix has {len(include)} jobs; GitHub Actions runs at most {max_jobs} per matrix",
                        hint=f"raise the shard size (now {size}: --shard-size or [ci] shard-size)")
    return Matrix(include, buildable, since)


def _dimensions(ws: Workspace, conf: Settings, platforms: list[str], variants: list[str]
                ) -> tuple[list[Platform], list[Variant | None]]:
    """Requested (else configured) platforms and variants, each checked like `build` checks them."""
    from polybuild.plan import choose_dimensions, variants_of
    from polybuild.support.platforms import host

    platform_names = platforms or conf.platforms or ws.config["platforms"] or [host().name]
    variant_names = variants or conf.variants
    known = variants_of(ws)
    unknown = [n for n in variant_names if n not in known]
    if unknown:
        choose_dimensions(ws, unknown, [])  # raises the unknown-variant error, with its "did you mean"
    chosen_variants: list[Variant | None] = [known[n] for n in dict.fromkeys(variant_names)] or [
        v for n, v in known.items() if ws.config["variants"][n]["default"]] or [None]
    chosen_platforms = []
    for name in dict.fromkeys(platform_names):
        chosen_platforms += choose_dimensions(ws, [], [name])[1]
        if name not in conf.runners:
            raise ws.config.error(("ci", "runners"), f"no runner label for {name}",
                                  f"add it to [ci.runners], e.g. \"{name}\" = \"my-runner\"")
    if not any(_valid(v, p) for v in chosen_variants for p in chosen_platforms):
        raise UserError("no requested variant can be built for the requested platforms",
                        hint="check the variants' `platforms` in config")
    return chosen_platforms, chosen_variants


def _valid(variant: Variant | None, platform: Platform) -> bool:
    return variant is None or not variant.platforms or platform.name in variant.platforms


def _assign(loaded: Loaded, conf: Settings, buildable: list[str], platforms: list[Platform],
            variants: list[Variant | None]) -> dict[Axis, list[str]]:
    """Each distinct build (target x the dimensions it is sensitive to) goes to the first job that needs it."""
    ws = loaded.ws
    claimed: set[tuple] = set()
    jobs: dict[Axis, list[str]] = {}
    for tid in buildable:
        target = ws.targets[tid]
        sensitive_to = _variant_sensitivity(loaded, target)
        builder = builders.get(target.builder)
        wheel = builder.binary_wheel
        abi3 = wheel and builder.is_abi3(target)
        for pi, p in enumerate(platforms):
            for vi, v in enumerate(variants):
                if not _valid(v, p) or not _builds_on(target, p, v, platforms):
                    continue
                variant = v.name if v and sensitive_to(v) else None
                platform = p.name if builder.platform_sensitive or builder.builds_image else None
                libcs = range(len(conf.libc)) if wheel and p.os == "linux" else [0]
                pythons = range(len(conf.python)) if wheel and not abi3 else [0]
                for li in libcs:
                    for yi in pythons:
                        key = (tid, variant, platform, li if wheel else None, yi if wheel else None)
                        if key not in claimed:
                            claimed.add(key)
                            jobs.setdefault(Axis(pi, vi, li, yi), []).append(tid)
    return jobs


def _variant_sensitivity(loaded: Loaded, target: Target) -> Callable[[Variant], bool]:
    """A target is built per variant when it (or, for an image, anything it holds) declares the variant's features."""
    ws = loaded.ws
    closure = loaded.dag.closure([target.id]) if target.kind == "image" else {target.id}
    features = set().union(*(ws.targets[t].features for t in closure))
    return lambda v: bool(set(v.features) & features)


def _builds_on(target: Target, p: Platform, v: Variant | None, platforms: list[Platform]) -> bool:
    """Images are Linux; an image's own `platforms` and `exclude` (with its default choices) rule out the rest. An
    image assembled for several platforms at once is built by the job of its first platform in the matrix."""
    if target.kind != "image":
        return True
    spec = target.info.spec
    if p.os != "linux" or (spec["platforms"] and p.name not in spec["platforms"]):
        return False
    if builders.get(target.builder).all_platforms_in_one_task and spec["platforms"]:
        first = next((q for q in platforms if q.name in spec["platforms"]), None)
        if first != p:
            return False
    values = {var: choices[0] for var, choices in spec["choices"].items()}
    values.update(platform=p.name, target=spec["target"], variant=v.name if v else None)
    return not any(all(str(values.get(k)) == str(val) for k, val in combo.items()) for combo in spec["exclude"])


def _groups(loaded: Loaded, targets: list[str], order: dict[str, int]) -> list[list[str]]:
    """Targets whose dependency closures meet (a shared crate, a wheel and the image holding it) form one group."""
    parent = {t: t for t in targets}

    def find(t: str) -> str:
        while parent[t] != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    owner: dict[str, str] = {}
    for t in targets:
        for member in loaded.dag.closure([t]):
            other = owner.setdefault(member, t)
            a, b = find(other), find(t)
            if a != b:
                parent[max(a, b, key=order.__getitem__)] = min(a, b, key=order.__getitem__)
    groups: dict[str, list[str]] = {}
    for t in sorted(dict.fromkeys(targets), key=order.__getitem__):
        groups.setdefault(find(t), []).append(t)
    return sorted(groups.values(), key=lambda g: order[g[0]])


def _shards(groups: list[list[str]], size: int) -> list[list[str]]:
    """Jobs of at most `size` targets: small groups share a job (first fit, in order); a larger group is cut in
    dependency order, so a shard's dependencies from its group are in it or in an earlier shard."""
    jobs: list[list[str]] = []
    for group in groups:
        if len(group) > size:
            jobs += [group[i:i + size] for i in range(0, len(group), size)]
            continue
        fit = next((j for j in jobs if len(j) + len(group) <= size), None)
        if fit is None:
            jobs.append(list(group))
        else:
            fit += group
    return jobs


def _entry(conf: Settings, axis: Axis, platforms: list[Platform], variants: list[Variant | None],
           targets: list[str], builds: list[Target], n: int, total: int) -> dict[str, Any]:
    """One `include` entry: only the keys that matter for what the job builds, its targets and their dependencies
    (a Go-only job has no Python version)."""
    p, v = platforms[axis.platform_index], variants[axis.variant_index]
    libc, python = conf.libc[axis.libc_index], conf.python[axis.python_index]
    has_python = any(t.kind == "py" for t in builds)
    wheels = p.os == "linux" and any(t.builder and builders.get(t.builder).binary_wheel for t in builds)
    parts = [p.slug, *([v.name] if v else []), *([libc] if wheels else []),
             *([f"py{python}"] if has_python else []), *([str(n)] if total > 1 else [])]
    entry: dict[str, Any] = {"id": "-".join(parts), "name": " ".join(parts), "platform": p.name,
                             "runner": conf.runners[p.name]}
    if v:
        entry["variant"] = v.name
    if has_python:
        entry["python"] = python
    if wheels:
        entry["libc"] = libc
        container = conf.container(libc, p.arch)
        if container:
            entry["container"] = container
    entry["targets"] = targets
    return entry
