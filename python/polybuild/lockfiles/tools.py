"""The committed build-tool pins in `lock check` and `lock upgrade --tools`: every requirement set the workspace's
tasks would provision (a backend with its [build-system] requires, maturin, pytest) has current pins in
polybuild.lock, and no pins are left for a set nothing uses."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from polybuild.api import Loaded
    from polybuild.config.toolpins import ToolPins


def requirement_sets(loaded: Loaded) -> set[tuple[str, ...]]:
    """The requirements of every tool environment a task of the workspace (its builds and its tasks such as
    `test`, for the host) provisions when its tool is missing, each set sorted."""
    from polybuild import builders
    from polybuild.plan import Task, task_builder, task_id, task_spec
    from polybuild.support.platforms import host

    ws, platform, sets = loaded.ws, host(), set()
    for target in ws.targets.values():
        for action in ("build", "test", *target.settings.get("tasks", {})):
            builder_name = target.builder if action == "build" else task_builder(ws, target, action)
            if not builder_name:
                continue
            task = Task(task_id(target.id, action, None, None), target, action, builder_name, None, platform,
                        spec=task_spec(ws, target, action) if action != "build" else None)
            builder = builders.get(builder_name)
            for tool in builder.key_toolchains:
                if provision := builder.toolchain_probe(tool, task).provision:
                    sets.add(tuple(sorted(set(provision))))
    return sets


def pins(loaded: Loaded) -> ToolPins:
    """The workspace's committed tool pins (the lock beside its config, else the root's polybuild.lock)."""
    from polybuild.config.toolpins import ToolPins, locked_mode
    from polybuild.support.cachedir import for_workspace

    ws = loaded.ws
    tools_dir = for_workspace(ws.root, ws.config["cache-dir"]) / "tools"
    return ToolPins.of(ws.root, ws.config.file.path if ws.config.file else None, tools_dir, locked_mode())


def check(loaded: Loaded) -> list[str]:
    """`lock check`'s problems with the tool pins; a workspace that never committed any (it provisions nothing,
    or `[tools] provision = "never"`) has none."""
    tool_pins = pins(loaded)
    if loaded.ws.config["tools"]["provision"] == "never" or not tool_pins.read().tools:
        return []
    return tool_pins.problems(requirement_sets(loaded))


def upgrade(loaded: Loaded) -> list[str]:
    """Re-resolve the pins of every requirement set the workspace provisions; one line per set."""
    tool_pins = pins(loaded)
    entries = tool_pins.replace(requirement_sets(loaded), loaded.ws.config.python)
    return [f"{tool_pins.display}: locked build tools {tool_pins.summary(e)}" for e in entries]
