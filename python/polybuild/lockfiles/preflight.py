"""The preflight: find the workspace's lockfiles, check each one, and check the wheels of every uv.lock for each
target; also the hook that runs it before container builds for a platform other than the host's."""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from polybuild.lockfiles import LockReport
from polybuild.lockfiles.memo import Memo
from polybuild.support.cachedir import for_workspace
from polybuild.support.errors import UserError

if TYPE_CHECKING:
    from polybuild.builders import BuildContext
    from polybuild.plan import Plan
    from polybuild.workspace import Workspace
    from polybuild.workspace.pythonlock import Target

LOCKFILES = ("Cargo.lock", "go.sum", "uv.lock")


def check(ws: Workspace, platforms: list[str], pythons: list[str], *, use_cache: bool = True) -> LockReport:
    """Every lockfile fresh (each problem a line naming the file and the fix) and every uv.lock installable on
    each target; usage mistakes (an unknown platform, a bad Python version) raise UserError.

    The checks run in parallel (up to `jobs`, they are mostly child processes), and a check whose inputs, tool and
    platform are unchanged since it last passed is answered from polybuild's cache (`use_cache=False` re-runs all)."""
    from polybuild.workspace import pythonlock

    targets = pythonlock.platform_targets(ws, platforms, pythons)
    report = LockReport(checked=sorted({t.label for t in targets}))
    found = _find(ws.files)
    memo = Memo(for_workspace(ws.root, ws.config["cache-dir"]), ws.config.state_dir, use_cache)
    jobs = [*_cargo_jobs(ws, found["Cargo.lock"]), *_go_jobs(ws), *_uv_jobs(ws, found["uv.lock"], targets, pythons)]
    keyed = [(job, memo.key(job.kind, job.lock, memo.digests(ws.root, job.inputs), *job.identity())) for job in jobs]
    remembered = {key: notes for _, key in keyed if (notes := memo.get(key)) is not None}
    pending = [i for i, (_, key) in enumerate(keyed) if key not in remembered]
    with ThreadPoolExecutor(max_workers=max(1, min(ws.config.jobs, len(pending)))) as pool:
        ran = dict(zip(pending, pool.map(lambda i: keyed[i][0].run(), pending), strict=True))
    for i, (job, key) in enumerate(keyed):
        if i not in ran:
            report.remembered.append(job.lock)
            report.notes += remembered[key]
            continue
        problems, notes = ran[i]
        report.problems += problems
        report.notes += notes
        if not problems:
            memo.put(key, notes)
    lockfiles = sorted(p for paths in found.values() for p in paths)
    report.digests = dict(sorted(memo.digests(ws.root, lockfiles).items()))
    memo.save()
    return report


@dataclass(frozen=True)
class _Job:
    """One lockfile check: what it reads (`inputs`), the tool and settings it runs with, and the check itself."""

    kind: str
    lock: str
    inputs: list[str]
    identity: Callable[[], tuple[str, list[str]]]
    run: Callable[[], tuple[list[str], list[str]]]  # -> (problems, notes)


def _cargo_jobs(ws: Workspace, locks: list[str]) -> list[_Job]:
    """One `cargo update --workspace --locked` per Cargo workspace (each has its own Cargo.lock)."""
    from polybuild.lockfiles import cargo

    return [_Job("cargo", lock, cargo.inputs(ws.files, lock), functools.partial(cargo.identity, ws.root, lock),
                 lambda lock=lock: (cargo.check(ws.root, lock), [])) for lock in locks]


def _go_jobs(ws: Workspace) -> list[_Job]:
    from polybuild.lockfiles import go

    modules = _go_modules(ws.files)
    by_module = go.module_files(ws.files, set(modules))
    return [_Job("go", f"{module}/go.sum".removeprefix("./"), go.inputs(ws.root, by_module, module),
                 lambda: (go.identity(), []),
                 lambda module=module: (go.check(ws.root, module), [])) for module in modules]


def _uv_jobs(ws: Workspace, locks: list[str], targets: list[Target], pythons: list[str]) -> list[_Job]:
    from polybuild.lockfiles import uvlock

    def identity() -> tuple[str, list[str]]:
        tool, env = uvlock.identity()
        return tool, [*env, repr(ws.config["lockfiles"]), repr(targets), f"explicit python: {bool(pythons)}",
                      ws.config.display]

    return [_Job("uv", lock, uvlock.inputs(ws.files, lock), identity,
                 functools.partial(_check_uv_lock, ws, lock, targets, explicit_python=bool(pythons)))
            for lock in locks]


def _find(files: list[str]) -> dict[str, list[str]]:
    """The lockfiles git sees (nested ones included; `exclude` and nested workspaces already left out)."""
    found: dict[str, list[str]] = {name: [] for name in LOCKFILES}
    for path in files:
        name = path.rpartition("/")[2]
        if name in found:
            found[name].append(path)
    return found


def _go_modules(files: list[str]) -> list[str]:
    """Every Go module directory: a go.sum belongs to its go.mod, and a go.mod whose go.sum is missing is checked
    too (tidy reports the missing file)."""
    return sorted({p.rpartition("/")[0] or "." for p in files if p.rpartition("/")[2] in ("go.mod", "go.sum")})


def _check_uv_lock(ws: Workspace, path: str, targets: list[Target], *,
                   explicit_python: bool) -> tuple[list[str], list[str]]:
    """(problems, notes) of one uv.lock: fresh with the pinned uv, and installable on every target."""
    from dataclasses import replace

    from polybuild.lockfiles import uvlock
    from polybuild.workspace import pythonlock

    conf = ws.config["lockfiles"]
    result = uvlock.check(ws.root, path, conf["uv-version"], ws.config.display)
    report = LockReport(problems=list(result.problems), notes=list(result.notes))
    try:
        lock = pythonlock.read(ws.root / path, path)
    except UserError as exc:  # a lock nobody can read is this lock's problem, not a usage error
        report.problems.append(str(exc).replace("\n  hint: ", "; fix: "))
        return report.problems, report.notes
    for target in targets:
        if not pythonlock.python_allowed(lock, target.python):
            version = f"{target.python[0]}.{target.python[1]}"
            if explicit_python:
                report.problems.append(f"{path}: Python {version} is outside the lock's requires-python "
                                       f"'{lock.requires_python}'; fix: check another --python, or widen "
                                       f"requires-python and run `uv lock`")
                continue
            lowest = pythonlock.lowest_python(lock)
            if lowest is None:
                continue
            report.notes.append(f"{path}: requires-python '{lock.requires_python}' excludes Python {version}; "
                                f"checked Python {lowest[0]}.{lowest[1]} instead")
            target = replace(target, python=lowest)
        if lock.supported and not any(target.applies(m) for m in lock.supported):
            report.problems.append(f"{path}: the lock is limited to the environments {lock.supported} ([tool.uv] "
                                   f"environments), which leave out {target.label}; fix: add "
                                   f"\"{target.marker_hint()}\" to [tool.uv] environments and run `uv lock`")
            continue
        report.problems += [pythonlock.describe(m, target, path) for m in pythonlock.misses(lock, target)]
    return report.problems, report.notes


def before_images(plan: Plan, ctx: BuildContext) -> None:
    """Before building images for platforms other than the host's, the lockfiles must be fresh and installable
    there: a UserError listing every finding stops the build before anything runs."""
    from polybuild import builders
    from polybuild.builders.image import image_platforms

    here = ctx.host
    foreign = sorted({p.name for task in plan.tasks.values() if builders.get(task.builder).builds_image
                      for p in image_platforms(task, ctx) if p != here})
    if not foreign:
        return
    report = check(ctx.ws, foreign, [])
    if report.problems:
        lines = "\n".join(f"  {p}" for p in report.problems)
        raise UserError(f"lockfile preflight for {', '.join(foreign)} (images are built for a platform other "
                        f"than this {here.name} host) found {len(report.problems)} problem(s):\n{lines}",
                        hint=f"fix them, then check with `polybuild lock check --platform {foreign[0]}`")
