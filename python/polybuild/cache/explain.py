"""`polybuild explain TARGET`: why a target would rebuild, by name — which input file, config key, toolchain,
environment variable or dependency changed since its last build in this workspace."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from polybuild.cache.keys import KeyParts, key_parts

if TYPE_CHECKING:
    from collections.abc import Iterator

    from polybuild.builders import BuildContext
    from polybuild.plan import Plan, Task


def explain(plan: Plan, ctx: BuildContext, target_id: str) -> str:
    """Reasons per task of `target_id`; dependencies are evaluated first, as a build would."""
    lines: list[str] = []
    for task, _key, reasons in assess(plan, ctx):
        if task.target.id == target_id:
            lines.append(f"{task.id}: " + ("would rebuild" if reasons else "up to date"))
            lines += [f"  {r}" for r in reasons]
    return "\n".join(lines)


def assess(plan: Plan, ctx: BuildContext) -> Iterator[tuple[Task, str | None, list[str]]]:
    """Every task in plan order with its cache key and why it would run (none: cached). The key is None while a
    dependency would be rebuilt: it depends on that dependency's new output."""
    from graphlib import TopologicalSorter

    changed: dict[str, bool] = {}
    for tid in TopologicalSorter({i: t.deps for i, t in plan.tasks.items()}).static_order():
        task = plan.tasks[tid]
        parts, reasons = _reasons(task, ctx, changed)
        changed[tid] = bool(reasons)
        yield task, None if any(changed[d] for d in task.deps) else parts.key, reasons


def _reasons(task: Task, ctx: BuildContext, changed: dict[str, bool]) -> tuple[KeyParts, list[str]]:
    record = ctx.records.get(task.id)
    dep_records = {d: ctx.records.get(d) for d in sorted(task.deps)}
    deps = {d: (r["output"] if r and not changed.get(d) else "(will be rebuilt)") for d, r in dep_records.items()}
    parts = key_parts(task, ctx, deps)
    return parts, _why(ctx, parts, record)


def _why(ctx: BuildContext, parts: KeyParts, record: dict[str, Any] | None) -> list[str]:
    if record is None:
        return ["never built in this workspace"]
    now = ctx.records.sealed(parts.to_json())  # compared as the records hold them
    if record["key"] == now["key"]:
        in_cache = ctx.cache is not None and ctx.cache.store.get_manifest(parts.key) is not None
        return [] if in_cache else ["its cache entry is gone (cleared or collected)"]
    if record["parts"].get("format") != parts.format:
        return ["the cache key format changed (new polybuild version)"]
    try:
        return _changes(KeyParts.from_json(record["parts"]), KeyParts.from_json(now), ctx) or ["the key changed"]
    except (KeyError, TypeError, AttributeError, ValueError, IndexError):
        return ["the record of its last build is unreadable"]


def _changes(old: KeyParts, new: KeyParts, ctx: BuildContext) -> list[str]:
    out = _file_changes(old.files, new.files, "")
    for lib in sorted(old.libraries.keys() | new.libraries.keys()):
        if old.libraries.get(lib) != new.libraries.get(lib):
            then = ctx.records.library(lib)
            now = {p: f"{m} {d}" for p, (m, d) in ctx.fingerprints.library_entries(lib).items()}
            changes = _file_changes(then["files"], now, f" (library {lib})") if then else []
            out += changes or [f"library changed: {lib}"]
    return out + diff(old, new)


def _file_changes(before_files: dict[str, str], after_files: dict[str, str], suffix: str) -> list[str]:
    out = []
    for path in sorted(before_files.keys() | after_files.keys()):
        before, after = before_files.get(path), after_files.get(path)
        if before == after:
            continue
        if before is None:
            out.append(f"input added: {path}{suffix}")
        elif after is None:
            out.append(f"input removed: {path}{suffix}")
        elif before.split()[0] != after.split()[0]:
            out.append(f"input mode changed: {path} ({before.split()[0]} -> {after.split()[0]}){suffix}")
        else:
            out.append(f"input changed: {path}{suffix}")
    return out


def diff(old: KeyParts, new: KeyParts) -> list[str]:
    """Human-readable differences between the non-file parts of two keys."""
    out: list[str] = []
    old_conf, new_conf = _flatten(old.config), _flatten(new.config)
    for key in sorted(old_conf.keys() | new_conf.keys()):
        if old_conf.get(key) != new_conf.get(key):
            out.append(f"config changed: {key} ({_show(old_conf.get(key))} -> {_show(new_conf.get(key))})")
    for tool in sorted(old.toolchain.keys() | new.toolchain.keys()):
        if old.toolchain.get(tool) != new.toolchain.get(tool):
            out.append(f"toolchain changed: {tool}")
    for var in sorted(old.env.keys() | new.env.keys()):
        if old.env.get(var) != new.env.get(var):
            out.append(f"environment variable changed: {var}")
    for dep in sorted(old.deps.keys() | new.deps.keys()):
        if old.deps.get(dep) != new.deps.get(dep):
            out.append(f"dependency changed: {dep}")
    if old.format != new.format:
        out.append("the cache key format changed (new polybuild version)")
    return out


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for k, v in value.items():
            flat.update(_flatten(v, f"{prefix}.{k}" if prefix else k))
        return flat
    return {prefix: value}


def _show(value: Any) -> str:
    return "unset" if value is None else json.dumps(value)
