"""cgo binaries that link a Rust `staticlib` crate of the workspace (dynamo's inference gateway links the C API
crate's `.a`).

The edge comes from the Go sources (`#cgo LDFLAGS: -l<name>` naming a crate's library) or from config (`deps`).
The crate is built first; its `.a` files are copied into a directory of their own, so the linker cannot pick the
crate's shared library instead, and the Go build gets `CGO_LDFLAGS=-L<dir> -l<name>` and, for a crate with an
`include-dir`, `CGO_CFLAGS=-I<dir>`: environment values built from paths, never from config text.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from polybuild.support.errors import PolybuildError, UserError
from polybuild.workspace.targetinfo import RustInfo

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from polybuild.builders import BuildContext
    from polybuild.plan import Task
    from polybuild.workspace import Target


def cgo_enabled(target: Target, targets: Mapping[str, Target], conf: dict) -> bool:
    """CGO_ENABLED for a Go target, one answer for its build and its license inventory (cgo-only packages are
    excluded by build constraints without it): on when it links a staticlib of the workspace, else the target's
    `cgo`, else `[go] cgo`."""
    if any(_staticlibs(targets[d]) for d in target.deps):
        return True
    setting = target.settings.get("cgo")
    return conf["cgo"] if setting is None else setting


def linked_crates(task: Task, ctx: BuildContext) -> list[Target]:
    """The Rust staticlib crates this Go target depends on directly."""
    targets = ctx.ws.targets
    return [targets[d] for d in sorted(task.target.deps) if _staticlibs(targets[d])]


def _staticlibs(target: Target) -> list[str]:
    return target.info.staticlibs if isinstance(target.info, RustInfo) else []


def check_links(task: Task, ctx: BuildContext) -> None:
    """A preamble that links a workspace staticlib by path (`${SRCDIR}/lib/libx.a`) would link whatever file is
    there, stale or missing, not the crate polybuild builds: it must name the library with `-l`."""
    ours = {lib: crate for crate in linked_crates(task, ctx) for lib in crate.info.staticlibs}
    for link in task.target.info.cgo_links:
        if link.by_path and link.lib in ours:
            raise UserError(
                f"{link.source}: {task.target.id} links lib{link.lib}.a by a path, so the build would use "
                f"whatever file is there instead of the one polybuild builds from {ours[link.lib].id}",
                hint=f"link it by name: `#cgo LDFLAGS: -l{link.lib}` (polybuild passes the -L directory)",
            )


def environment(task: Task, ctx: BuildContext, lib_dir: Path) -> dict[str, str]:
    """CGO_* variables pointing at the linked crates' libraries and headers (empty when it links none): the
    caller's own CGO_LDFLAGS / CGO_CFLAGS come after ours."""
    from polybuild.builders.go import go_quoted

    crates = linked_crates(task, ctx)
    if not crates:
        return {}
    ldflags = [f"-L{lib_dir}"] + [f"-l{lib}" for crate in crates for lib in crate.info.staticlibs]
    cflags = [f"-I{crate.dir / crate.settings['include-dir']}" for crate in crates if crate.settings.get("include-dir")]
    env = {"CGO_LDFLAGS": _join(go_quoted(ldflags), ctx.env.get("CGO_LDFLAGS"))}
    if cflags:
        env["CGO_CFLAGS"] = _join(go_quoted(cflags), ctx.env.get("CGO_CFLAGS"))
    return env


def collect_libraries(task: Task, ctx: BuildContext, lib_dir: Path) -> None:
    """Copy the `.a` files the linked crates' build tasks published into `lib_dir` (and nothing else)."""
    from polybuild.builders.cargo import staticlib_file

    plat = task.platform or ctx.host
    lib_dir.mkdir(parents=True, exist_ok=True)
    for crate in linked_crates(task, ctx):
        published = {p.name: p for d in task.deps if ctx.tasks[d].target is crate for p in ctx.artifacts.get(d, [])}
        for lib in crate.info.staticlibs:
            name = staticlib_file(lib, plat.os)
            if name not in published:
                raise PolybuildError(f"{crate.id} published no {name} for {task.target.id} to link")
            shutil.copyfile(published[name], lib_dir / name)


def _join(ours: str, theirs: str | None) -> str:
    return f"{ours} {theirs}" if theirs else ours
