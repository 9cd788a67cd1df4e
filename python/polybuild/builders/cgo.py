"""cgo binaries that link a Rust `staticlib` crate of the workspace (dynamo's inference gateway links the C API
crate's `.a`).

The edge comes from the Go sources (`#cgo LDFLAGS: -l<name>` naming a crate's library) or from config (`deps`).
The crate is built first; its `.a` files are copied into a directory of their own, so the linker cannot pick the
crate's shared library instead, and the Go build gets `CGO_LDFLAGS=-L<dir> -l<name>` and, for a crate with an
`include-dir`, `CGO_CFLAGS=-I<dir>`: environment values built from paths, never from config text.

A preamble that names the `.a` by a path (`${SRCDIR}/lib/libx.a`) would link whatever file is there. With
`cgo-stage = true` the module is built from a copy of its input files in the task's staging directory, at the same
workspace-relative paths (its local `replace`s too), with the freshly built library copied to the path the
preamble names: the tree is never written, and `-trimpath` keeps the copy's location out of the binary.
"""

from __future__ import annotations

import posixpath
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
    from polybuild.workspace.targetinfo import CgoLink


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
    return _linked_crates(task.target, ctx.ws.targets)


def _linked_crates(target: Target, targets: Mapping[str, Target]) -> list[Target]:
    return [targets[d] for d in sorted(target.deps) if _staticlibs(targets[d])]


def _staticlibs(target: Target) -> list[str]:
    return target.info.staticlibs if isinstance(target.info, RustInfo) else []


def path_links(task: Task, ctx: BuildContext) -> list[CgoLink]:
    """The preamble links that name a linked crate's `.a` by a path."""
    return links_by_path(task.target, ctx.ws.targets)


def links_by_path(target: Target, targets: Mapping[str, Target]) -> list[CgoLink]:
    """The preamble links of a Go target that name a workspace crate's `.a` by a path (they need `cgo-stage`)."""
    ours = {lib for crate in _linked_crates(target, targets) for lib in crate.info.staticlibs}
    return [link for link in target.info.cgo_links if link.by_path and link.lib in ours]


def check_links(task: Task, ctx: BuildContext) -> None:
    """A preamble that links a workspace staticlib by path (`${SRCDIR}/lib/libx.a`) would link whatever file is
    there, stale or missing, not the crate polybuild builds: it must name the library with `-l`, or the target
    builds from a staged copy (`cgo-stage`) with the library at a path inside the module."""
    t = task.target
    for link in path_links(task, ctx):
        if t.settings.get("cgo-stage"):
            staged_path(task, ctx, link)
            continue
        crate = next(c for c in linked_crates(task, ctx) if link.lib in c.info.staticlibs)
        raise UserError(
            f"{link.source}: {t.id} links lib{link.lib}.a by a path, so the build would use whatever file "
            f"is there instead of the one polybuild builds from {crate.id}",
            hint=f"link it by name: `#cgo LDFLAGS: -l{link.lib}` (polybuild passes the -L directory), or set "
                 f"cgo-stage = true in {t.config_table} to build from a copy with the library at that path",
        )


def staged_path(task: Task, ctx: BuildContext, link: CgoLink) -> str:
    """Where a by-path link expects the library, relative to the workspace: `${SRCDIR}/...` from the directory of
    the Go file that names it, and inside the module (the copy holds nothing else)."""
    source = link.source.rpartition(":")[0]
    head, _, rest = (link.path or "").partition("/")
    module = ctx.ws.rel(task.target.dir)
    rel = posixpath.normpath(posixpath.join(posixpath.dirname(source), rest))
    if head not in ("${SRCDIR}", "$SRCDIR") or not (module == "." or rel.startswith(module + "/")) \
            or rel.startswith("../"):
        raise UserError(f"{link.source}: {task.target.id} links lib{link.lib}.a at {link.path}: cgo-stage "
                        "places the library only at a ${SRCDIR}-relative path inside the module",
                        hint=f"name it like `${{SRCDIR}}/lib/lib{link.lib}.a`, or link it by name: "
                             f"-l{link.lib}")
    return rel


def environment(task: Task, ctx: BuildContext, lib_dir: Path) -> dict[str, str]:
    """CGO_* variables pointing at the linked crates' libraries (those not staged at a path of their own) and
    headers (empty when it links none): the caller's own CGO_LDFLAGS / CGO_CFLAGS come after ours."""
    from polybuild.builders.go import go_quoted

    crates = linked_crates(task, ctx)
    libs = by_name(task, ctx)
    cflags = [f"-I{crate.dir / crate.settings['include-dir']}" for crate in crates if crate.settings.get("include-dir")]
    env = {}
    if libs:
        ldflags = [f"-L{lib_dir}"] + [f"-l{lib}" for lib in libs]
        env["CGO_LDFLAGS"] = _join(go_quoted(ldflags), ctx.env.get("CGO_LDFLAGS"))
    if cflags:
        env["CGO_CFLAGS"] = _join(go_quoted(cflags), ctx.env.get("CGO_CFLAGS"))
    return env


def by_name(task: Task, ctx: BuildContext) -> list[str]:
    """The linked libraries polybuild passes as `-l<name>`: all of them, but those a staged build places at the
    path its preamble names."""
    staged = {link.lib for link in path_links(task, ctx)} if task.target.settings.get("cgo-stage") else set()
    return [lib for crate in linked_crates(task, ctx) for lib in crate.info.staticlibs if lib not in staged]


def collect_libraries(task: Task, ctx: BuildContext, lib_dir: Path) -> None:
    """Copy the `.a` files of the libraries linked by name, as the crates' build tasks published them, into
    `lib_dir` (and nothing else)."""
    lib_dir.mkdir(parents=True, exist_ok=True)
    for lib in by_name(task, ctx):
        source = _published(task, ctx, lib)
        shutil.copyfile(source, lib_dir / source.name)


def stage_module(task: Task, ctx: BuildContext, stage_root: Path) -> None:
    """Copy the module's input files (its key's files: its own, its local libraries') to the same relative paths
    under `stage_root`, then each freshly built library over the path its preamble names. The staged build uses
    the module's own go.mod (GOWORK=off: a copied go.work is not read)."""
    t = task.target
    inputs = ctx.inputs
    files = [*inputs.files(t), *(f for lib in inputs.libraries(t) for f in inputs.library_files(lib))]
    for rel in files:
        source = ctx.ws.root / rel
        if not source.is_file():  # absent: a sparse checkout's, unread by a build in the tree too
            continue
        dest = stage_root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
    for link in path_links(task, ctx):
        dest = stage_root / staged_path(task, ctx, link)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_published(task, ctx, link.lib), dest)


def _published(task: Task, ctx: BuildContext, lib: str) -> Path:
    """The `.a` of `lib` that its crate's build task published in this run."""
    from polybuild.builders.cargo import staticlib_file

    crate = next(c for c in linked_crates(task, ctx) if lib in c.info.staticlibs)
    name = staticlib_file(lib, (task.platform or ctx.host).os)
    published = {p.name: p for d in task.deps if ctx.tasks[d].target is crate for p in ctx.artifacts.get(d, [])}
    if name not in published:
        raise PolybuildError(f"{crate.id} published no {name} for {task.target.id} to link")
    return published[name]


def _join(ours: str, theirs: str | None) -> str:
    return f"{ours} {theirs}" if theirs else ours
