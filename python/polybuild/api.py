"""polybuild's Python API and its composition root: what the command line and the nox sessions call.

A build goes through the stages in this order, each one a package of its own:

    load        config -> workspace -> graph                           `load`
    select      named, affected or a CI job's targets, and their deps  `select_build`, `select`
    plan        tasks = target x variant x platform                    `build`, `run`
    preflight   every toolchain the plan needs is here, the version    `_run`, `preflight`
                groups resolved; a target its builder refuses fails
                alone (with what depends on it)
    execute     the scheduler: each task from the cache, or built      `_run`
    publish     artifacts into dist/, stale ones removed               `_run`
    report      dist/build-report.json                                 `_run`
    remember    what the next identical command's fast path answers from (`_run`)

`build` and `run` plan, then `_run` goes through the rest in that order. The no-op fast path sits in front of all
of it, in the command line (`cli.main._fast_path`), so that an unchanged workspace is answered without importing
this module.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polybuild.support.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    import networkx as nx

    from polybuild.builders import BuildContext
    from polybuild.cache.reapi.cache import ReapiCache
    from polybuild.cache.reapi.execute import RemoteExecutor
    from polybuild.cache.remote import RemoteCache
    from polybuild.cache.store import LocalStore
    from polybuild.container.templates import Rendered
    from polybuild.execute.scheduler import TaskResult
    from polybuild.graph import TargetGraph
    from polybuild.plan import Plan
    from polybuild.workspace import Target, Workspace

__all__ = [
    "CacheOptions",
    "Loaded",
    "Outcome",
    "Selection",
    "build",
    "dry_run",
    "expand",
    "explain",
    "image_target",
    "load",
    "local_store",
    "preflight",
    "promote",
    "push_image",
    "render_image",
    "run",
    "select",
    "select_build",
    "with_image_options",
]


@dataclass
class Loaded:
    """A loaded workspace: its targets and their graph."""

    ws: Workspace
    dag: TargetGraph  # what build and run use: plain dicts, no networkx import

    @cached_property
    def graph(self) -> nx.DiGraph:
        """The target graph as a networkx DiGraph: an edge from each target to each target it depends on."""
        return self.dag.to_networkx()


def load(directory: Path | str = ".", config_file: Path | None = None) -> Loaded:
    """Find the workspace at or above `directory`, validate its config, discover targets and build the graph."""
    from polybuild.config.model import find_root, load_config
    from polybuild.graph import build_graph
    from polybuild.workspace import discover

    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"not a directory: {directory}")
    root = config_file.resolve().parent if config_file else find_root(directory)
    ws = discover(load_config(root, config_file))
    return Loaded(ws, build_graph(ws))


def expand(loaded: Loaded, names: Sequence[str], *, dependents: bool = False) -> list[str]:
    """The ids of the targets the names select (ids, names, globs such as `py:*`, directories such as `lib/`),
    and with `dependents` every target depending on them, dependencies first."""
    ids = loaded.ws.select(list(names))
    return loaded.dag.order(loaded.dag.dependents(ids)) if dependents else ids


def select(loaded: Loaded, names: Sequence[str], *, to_build: bool = False, dependents: bool = False) -> set[str]:
    """The named targets (and their dependents, with `dependents`) and their dependencies (`to_build`: only those
    whose builds they need); all targets when none are named."""
    if not names:
        return set(loaded.ws.targets)
    ids = expand(loaded, names, dependents=dependents)
    return loaded.dag.needs(ids) if to_build else loaded.dag.closure(ids)


@dataclass(frozen=True)
class Selection:
    """What a build builds, or why it builds nothing."""

    targets: list[str]
    variants: list[str]
    platforms: list[str]
    nothing: str | None = None  # why nothing is selected: a CI job without targets, or nothing affected
    since: str | None = None  # with --affected: the base compared with, as `Affected.described` says it


def select_build(loaded: Loaded, targets: Sequence[str] = (), *, variants: Sequence[str] = (),
                 platforms: Sequence[str] = (), affected_since: str | None = None,
                 ci_job: str | None = None, dependents: bool = False) -> Selection:
    """The targets, variants and platforms of `polybuild build`: those named (with `dependents`, and what depends
    on them), or those affected by the changes since a git revision (among the named ones, when some are; "" for
    the merge base with the default branch), or one entry of `ci matrix` (its targets, variant, platform and
    Python)."""
    chosen = Selection(expand(loaded, targets, dependents=dependents), list(variants), list(platforms))
    if ci_job:
        from polybuild.ci import job

        if targets or affected_since is not None or variants or platforms or dependents:
            raise UserError("--ci-job names the targets, variant and platform itself",
                            hint="drop TARGET, --dependents, --affected, --variant and --platform")
        chosen = Selection(*job.apply(loaded, job.parse(ci_job)))
        if not chosen.targets:
            return dataclasses.replace(chosen, nothing="this job has no targets")
    if affected_since is not None:
        from polybuild.cache.affected import affected

        named = set(chosen.targets)
        found = affected(loaded.ws, loaded.dag, affected_since or None)
        chosen = dataclasses.replace(chosen, targets=[t for t in found.targets if not named or t in named],
                                     since=found.described)
        if not chosen.targets:
            return dataclasses.replace(chosen, nothing=f"nothing is affected by changes since {found.described}")
    return chosen


@dataclass
class Outcome:
    """What a build or a task run did: its plan, every task's result, and the report when it wrote one."""

    plan: Plan
    results: list[TaskResult]
    report_path: Path | None
    report: dict[str, Any] | None = None
    tools: set[str] = field(default_factory=set)  # toolchains whose identity entered keys
    python: str = sys.executable
    toolchains: dict[str, str] = field(default_factory=dict)  # what each probed tool said of its version
    refused: dict[str, UserError] = field(default_factory=dict)  # task id -> what its builder's preflight said
    output_logs: str = "errors-only"  # what the run showed of its children's output (--output-logs, or config)
    tool_locks: list[str] = field(default_factory=list)  # the locks of the tool environments provisioned for it

    @property
    def ok(self) -> bool:
        return all(r.status in ("built", "cached") for r in self.results)


def build(loaded: Loaded, targets: Sequence[str] = (), *, variants: Sequence[str] = (),
          platforms: Sequence[str] = (), jobs: int | None = None, keep_going: bool = False, json_mode: bool = False,
          cache: CacheOptions | None = None, named: Iterable[str] | None = None,
          remember_as: list[str] | None = None, output_logs: str | None = None) -> Outcome:
    """Build the targets (all by default) and their dependencies into dist/; writes dist/build-report.json.
    Harness crates are built only when `named` (default: `targets`) names them. `remember_as`: the command the
    fast path knows this run by (recorded when the run succeeded). `output_logs`: full, errors-only or none
    (default: the `output-logs` key)."""
    plan = _build_plan(loaded, targets, variants, platforms, named)
    options = _RunOptions(jobs, keep_going, json_mode, cache or CacheOptions(), report=True, remember_as=remember_as,
                          output_logs=output_logs or loaded.ws.config["output-logs"])
    return _run(loaded, plan, options)


def run(loaded: Loaded, action: str, targets: Sequence[str] = (), *, variants: Sequence[str] = (),
        platforms: Sequence[str] = (), jobs: int | None = None, keep_going: bool = False,
        json_mode: bool = False, cache: CacheOptions | None = None, remember_as: list[str] | None = None,
        dependents: bool = False, output_logs: str | None = None) -> Outcome:
    """Run the custom (or built-in) task `action` for the named targets (with `dependents`, and what depends on
    them), or all, in graph order."""
    plan = _run_plan(loaded, action, expand(loaded, targets, dependents=dependents), variants, platforms)
    options = _RunOptions(jobs, keep_going, json_mode, cache or CacheOptions(), report=False,
                          remember_as=remember_as, output_logs=output_logs or loaded.ws.config["output-logs"])
    return _run(loaded, plan, options)


def _build_plan(loaded: Loaded, targets: Sequence[str], variants: Sequence[str], platforms: Sequence[str],
                named: Iterable[str] | None) -> Plan:
    """Select and plan a build: the targets and their dependencies, per variant and platform; optional images
    that cannot be built here leave the plan."""
    from polybuild.plan import build_plan, choose_dimensions

    if not loaded.ws.targets:
        raise UserError(f"no targets found under {loaded.ws.root}",
                        hint="polybuild reads Cargo.toml, pyproject.toml, go.mod and go.work; check `exclude`")
    chosen_variants, chosen_platforms = choose_dimensions(loaded.ws, list(variants), list(platforms))
    named_ids = set(expand(loaded, list(targets if named is None else named)))
    plan = build_plan(loaded.ws, loaded.dag, select(loaded, targets, to_build=True), chosen_variants,
                      chosen_platforms, named_ids)
    _skip_unavailable_images(loaded, plan, named_ids)
    return plan


def _run_plan(loaded: Loaded, action: str, targets: Sequence[str], variants: Sequence[str],
              platforms: Sequence[str]) -> Plan:
    """Select and plan a task run: `action` for the named targets (all when none are named), in graph order."""
    from polybuild.plan import choose_dimensions, run_plan

    chosen_variants, chosen_platforms = choose_dimensions(loaded.ws, list(variants), list(platforms))
    selected = set(expand(loaded, targets)) if targets else set(loaded.ws.targets)
    return run_plan(loaded.ws, loaded.dag, selected, action, chosen_variants, chosen_platforms)


@dataclass(frozen=True)
class _RunOptions:
    jobs: int | None
    keep_going: bool
    json_mode: bool  # JSON lines on stdout instead of the progress line
    cache: CacheOptions
    report: bool  # write dist/build-report.json (builds do, task runs do not)
    remember_as: list[str] | None  # the command the fast path knows the run by
    output_logs: str = "errors-only"  # full: the children's lines go to the reporter as they come


def _run(loaded: Loaded, plan: Plan, options: _RunOptions) -> Outcome:
    """The stages of a planned run, in order: preflight, execute, publish, report, remember. A task its builder
    refuses in preflight fails alone: what depends on it is skipped, the rest runs."""
    from polybuild.execute import publish
    from polybuild.execute import report as reports
    from polybuild.support.runlock import workspace_lock

    ctx = _context(loaded, options.cache)
    refused = preflight(plan, ctx)  # every toolchain is here and the versions resolved, before anything starts
    with workspace_lock(ctx.state_dir):  # one run at a time per workspace, until its artifacts are published
        _drop_abandoned_staging(ctx.state_dir)
        start = time.monotonic()
        results = _execute(plan, ctx, options, refused)
        artifacts = publish.update(ctx, results)  # into dist/, stale artifacts removed
    outcome = Outcome(plan, results, report_path=None, tools=ctx.toolchains.used(), python=ctx.python,
                      toolchains=ctx.toolchains.versions(), refused=refused, output_logs=options.output_logs,
                      tool_locks=_tool_locks(ctx))
    if options.report:
        outcome.report = reports.build_report(ctx, results, time.monotonic() - start, artifacts)
        outcome.report_path = reports.write(loaded.ws, outcome.report)
    _clean_tmp(ctx.state_dir)
    if options.remember_as is not None:
        _remember(loaded, outcome, options.remember_as)
    return outcome


def _tool_locks(ctx: BuildContext) -> list[str]:
    """The files the provisioned tools of a run are pinned by (the fast path re-checks them): the committed
    polybuild.lock and each tool environment's copy of its pins."""
    envs = ctx.toolchains.tool_envs()
    committed = [str(ctx.toolchains.pins.path)] if envs and ctx.toolchains.pins else []
    return [*committed, *(str(env.lock) for env in envs)]


def _execute(plan: Plan, ctx: BuildContext, options: _RunOptions,
             refused: dict[str, UserError]) -> list[TaskResult]:
    """Every task of the plan, on worker threads, with progress (the `refused` ones fail with their preflight's
    message); what the run learnt is saved even when it is interrupted."""
    from polybuild.execute.progress import make_reporter
    from polybuild.execute.scheduler import Executor

    reporter = make_reporter(len(plan.tasks), options.json_mode, plan.skipped)
    try:
        return Executor(plan, ctx, options.jobs or ctx.ws.config.jobs, options.keep_going, reporter,
                        {tid: exc.message for tid, exc in refused.items()},
                        live_output=options.output_logs == "full",
                        remote_jobs=options.cache.remote_jobs if ctx.executor else 0).run()
    finally:
        reporter.close()
        ctx.stat_cache.save()
        ctx.records.save()
        if ctx.cache is not None:
            ctx.cache.store.flush()


def _remember(loaded: Loaded, outcome: Outcome, command: list[str]) -> None:
    """Record the run for the fast path, unless it failed or ran a task that must run every time (`cache = false`)."""
    if not outcome.ok or any(t.spec is not None and not t.spec["cache"] for t in outcome.plan.tasks.values()):
        return
    from polybuild.builders import env_names
    from polybuild.cache import fastpath
    from polybuild.execute.report import FILE_NAME, replayed_text

    root = loaded.ws.root
    config = loaded.ws.config
    artifacts = [a for r in outcome.results for a in r.artifacts]
    summary = {
        "root": str(root),
        "task_artifacts": [[r.task.id, r.task.target.id, [str(a.path) for a in r.artifacts],
                            str(r.log) if r.log else None] for r in outcome.results],
        "skipped": outcome.plan.skipped,
        "artifacts": [[str(a.path.relative_to(root)) if a.path.is_relative_to(root) else str(a.path), a.size,
                       a.sha256] for a in artifacts],
        "report": replayed_text(outcome.report) if outcome.report else None,
        "report_path": f"{config['dist-dir']}/{FILE_NAME}",
    }
    # Besides the workspace's files: its config files (a config outside the root, includes, polybuild.lock)
    config_files = [str(p) for p in (*((config.file.path,) if config.file else ()), *config.inputs)]
    published = [str(config.state_dir / "published.json")]  # another command's build changes dist/
    unlisted = loaded.ws.unlisted
    fastpath.record(root, command, [*loaded.ws.files, *unlisted.files], unlisted.dirs,
                    [str(a.path) for a in artifacts],
                    fastpath.tool_paths(outcome.tools, outcome.python) + outcome.tool_locks + config_files + published,
                    {n for t in outcome.plan.tasks.values() for n in env_names(t, config)}, summary)


def _skip_unavailable_images(loaded: Loaded, plan: Plan, named: set[str]) -> None:
    """Optional images that cannot be built here (no engine, a base that cannot be pulled, no Go helper) and image
    combinations their config excludes leave the plan, with the reason in the summary; a required or explicitly
    named image fails in preflight instead."""
    from polybuild import builders

    for task in [t for t in plan.tasks.values() if t.target.id not in named]:
        reason = builders.get(task.builder).unavailable(task, loaded.ws)
        if reason:
            del plan.tasks[task.id]
            plan.skipped.append((task.id, reason))


def explain(loaded: Loaded, name: str, *, variants: Sequence[str] = (), platforms: Sequence[str] = ()) -> str:
    """Why each task of the target would rebuild (or that it is up to date)."""
    from polybuild.cache.explain import explain as explain_plan
    from polybuild.plan import build_plan, choose_dimensions

    target = loaded.ws.resolve(name)
    chosen_variants, chosen_platforms = choose_dimensions(loaded.ws, list(variants), list(platforms))
    plan = build_plan(loaded.ws, loaded.dag, loaded.dag.needs([target.id]), chosen_variants, chosen_platforms)
    if not any(t.target.id == target.id for t in plan.tasks.values()):
        return f"{target.id} has no build of its own (a library); its files are inputs of the targets using it"
    ctx = _context(loaded, CacheOptions())
    _resolve_versions(plan, ctx)
    try:
        return explain_plan(plan, ctx, target.id)
    finally:
        ctx.stat_cache.save()


def dry_run(loaded: Loaded, targets: Sequence[str] = (), *, variants: Sequence[str] = (),
            platforms: Sequence[str] = (), cache: CacheOptions | None = None,
            named: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """What `build` would do, in plan order: each task, its cache key and why it would run (no reasons: cached).
    Nothing runs and nothing is written: not dist/, not the cache, not the state directory."""
    from polybuild.cache.explain import assess

    plan = _build_plan(loaded, targets, variants, platforms, named)
    ctx = _context(loaded, cache or CacheOptions())
    _resolve_versions(plan, ctx)
    return [{"id": task.id, "target": task.target.id, "builder": task.builder, "action": task.action,
             "platform": task.platform.name if task.platform else None,
             "variant": task.variant.name if task.variant else None, "key": key, "cached": not reasons,
             "reasons": reasons} for task, key, reasons in assess(plan, ctx)]


def local_store(loaded: Loaded) -> LocalStore:
    """The workspace's local cache store."""
    ctx = _context(loaded, CacheOptions())
    return ctx.cache.store


# Reproducible by default: archive timestamps are fixed unless the caller chose an epoch (1980-01-01, the zip minimum).
DEFAULT_SOURCE_DATE_EPOCH = "315532800"


@dataclass
class CacheOptions:
    """How a run uses caches: off entirely, and the remote's URL and upload switch from the command line."""

    enabled: bool = True
    remote_url: str | None = None
    remote_upload: bool = False
    remote_jobs: int = 0  # tasks on the remote executor ([remote] execute) in flight beyond --jobs


def _remote(ws: Workspace, options: CacheOptions) -> RemoteCache | ReapiCache | None:
    conf = ws.config["remote"]
    sources = [("--remote", options.remote_url), ("$POLYBUILD_REMOTE_URL", os.environ.get("POLYBUILD_REMOTE_URL")),
               ("[remote] url", conf["url"])]
    source, url = next(((s, u) for s, u in sources if u), (None, None))
    if not url:
        return None
    if url.startswith(("grpc://", "grpcs://")):
        return _reapi_remote(ws, options, source, url)
    import urllib.parse

    from polybuild.cache.remote import RemoteCache

    try:
        parts = urllib.parse.urlsplit(url)
        valid = url.startswith(("http://", "https://")) and parts.hostname and (parts.port or 1) < 65536
    except ValueError:  # an unclosed [IPv6 address, a port out of range or not a number
        valid = False
    if not valid:
        message = f"{source}: not a remote cache URL: {url.split('@')[-1]}"
        hint = "use http(s)://host:port[/prefix], e.g. http://cache.internal:8080, or grpc(s)://host:port for REAPI"
        if source == "[remote] url":
            raise ws.config.error(("remote", "url"), message, hint)
        raise UserError(message, hint=hint)
    token = os.environ.get(conf["token-env"]) if conf["token-env"] else None
    return RemoteCache(url, upload=options.remote_upload or conf["upload"], timeout=conf["timeout"],
                       retries=conf["retries"], token=token, jobs=conf["jobs"])


def _reapi_remote(ws: Workspace, options: CacheOptions, source: str, url: str) -> ReapiCache:
    """A Remote Execution API cache (grpc:// or grpcs://); gRPC is imported only here."""
    from polybuild.cache.reapi.connect import header_problem, open_cache, target

    conf = ws.config["remote"]
    try:
        target(url)
    except ValueError as exc:
        message, hint = f"{source}: not a REAPI URL: {url.split('@')[-1]} ({exc})", "e.g. grpc://cache.internal:8980"
        if source == "[remote] url":
            raise ws.config.error(("remote", "url"), message, hint) from None
        raise UserError(message, hint=hint) from None
    for name, value in conf["headers"].items():
        problem = header_problem(name, value)
        if problem:
            raise ws.config.error(("remote", "headers", name), f"[remote] headers: '{name}': {problem}",
                                  "e.g. authorization = \"env:POLYBUILD_REMOTE_TOKEN\", with the variable exported")
    try:
        return open_cache(url, instance=conf["instance-name"], headers=conf["headers"], token_env=conf["token-env"],
                          upload=options.remote_upload or conf["upload"], timeout=conf["timeout"],
                          retries=conf["retries"])
    except ImportError as exc:
        raise UserError(f"{source} is a REAPI server ({url.split('@')[-1]}) but gRPC is not installed ({exc})",
                        hint="install polybuild[remote] (grpcio and protobuf)") from None


def _executor(ws: Workspace, remote: RemoteCache | ReapiCache | None) -> RemoteExecutor | None:
    """The remote executor for `[remote] execute`, which needs a REAPI server (and the cache: not --no-cache)."""
    conf = ws.config["remote"]
    if not conf["execute"] or remote is None:
        return None
    from polybuild.cache.reapi.cache import ReapiCache
    from polybuild.cache.reapi.execute import RemoteExecutor

    if not isinstance(remote, ReapiCache):
        raise ws.config.error(("remote", "execute"), "[remote] execute needs a Remote Execution API server, not an "
                              "HTTP cache", "use a grpc:// or grpcs:// url, or remove `execute`")
    from polybuild import builders

    able = [name for name in builders.BUILDERS if builders.get(name).remote_executable]
    for name in conf["execute"]:
        if name not in able:
            raise ws.config.error(("remote", "execute"), f"[remote] execute: '{name}' tasks cannot run remotely",
                                  f"builders whose tasks can: {', '.join(able)}")
    return RemoteExecutor(remote, conf["execute"], conf["platform"], conf["execute-timeout"])


def _usable_cache_dir(ws: Workspace, path: Path) -> Path:
    """The cache directory, created if needed; one that cannot be written is an error before anything runs (not
    a failure of every task)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        usable = os.access(path, os.W_OK | os.X_OK)
        reason = "not writable"
    except OSError as exc:
        usable, reason = False, exc.strerror or str(exc)
    if usable:
        return path
    source = next((name for name, value in (("cache-dir", ws.config["cache-dir"]),
                                            ("$POLYBUILD_CACHE_DIR", os.environ.get("POLYBUILD_CACHE_DIR")),
                                            ("$XDG_CACHE_HOME", os.environ.get("XDG_CACHE_HOME"))) if value), "$HOME")
    message = f"the cache directory {path} (from {source}) cannot be used: {reason}"
    hint = "point it at a writable directory, or build with --no-cache"
    if source == "cache-dir":
        raise ws.config.error(("cache-dir",), message, hint)
    raise UserError(message, hint=hint)


def _context(loaded: Loaded, cache_options: CacheOptions) -> BuildContext:
    """What every task of a run shares: the environment, the caches, the input index, toolchains and records."""
    from polybuild.builders import BuildContext
    from polybuild.cache.inputs import InputIndex
    from polybuild.cache.keys import Fingerprints, Toolchains
    from polybuild.cache.records import BuildRecords
    from polybuild.cache.store import LocalStore
    from polybuild.cache.tasks import TaskCache
    from polybuild.config.toolpins import ToolPins, locked_mode
    from polybuild.lockfiles.tools import requirement_sets
    from polybuild.support.cachedir import for_workspace
    from polybuild.support.fingerprint import StatCache
    from polybuild.support.platforms import host

    ws = loaded.ws
    python = ws.config.python
    state_dir = ws.config.state_dir
    env = {**os.environ}
    env.setdefault("SOURCE_DATE_EPOCH", DEFAULT_SOURCE_DATE_EPOCH)
    if not env["SOURCE_DATE_EPOCH"].isascii() or not env["SOURCE_DATE_EPOCH"].isdigit():
        raise UserError(f"$SOURCE_DATE_EPOCH is {env['SOURCE_DATE_EPOCH']!r}, not a number of seconds since 1970",
                        hint="e.g. SOURCE_DATE_EPOCH=$(git log -1 --format=%ct), or unset it")
    cache_dir = _usable_cache_dir(ws, for_workspace(ws.root, ws.config["cache-dir"]))
    cache = TaskCache(LocalStore(cache_dir), _remote(ws, cache_options)) if cache_options.enabled else None
    executor = _executor(ws, cache.remote if cache else None)
    inputs = InputIndex(ws, loaded.dag)
    stat_cache = StatCache(state_dir / "statcache")
    tool_pins = ToolPins.of(ws.root, ws.config.file.path if ws.config.file else None, cache_dir / "tools",
                            locked_mode(), in_use=lambda: requirement_sets(loaded))
    toolchains = Toolchains(python, ws.config["tools"]["provision"], cache_dir / "tools", tool_pins)
    return BuildContext(ws=ws, host=host(), python=python, version=ws.release_version, state_dir=state_dir,
                        env=env, inputs=inputs, toolchains=toolchains, stat_cache=stat_cache,
                        fingerprints=Fingerprints(ws.root, stat_cache, inputs),
                        records=BuildRecords(state_dir / "records.json", cache_dir / "salt"), cache=cache,
                        executor=executor)


def preflight(plan: Plan, ctx: BuildContext) -> dict[str, UserError]:
    """Every toolchain the plan needs is present, checked before anything starts; images for a platform other
    than the host's first need fresh lockfiles with wheels for that platform. Returns the tasks their builder
    refuses (what the user must fix in that target): those fail, and only what depends on them is held back."""
    from polybuild import builders
    from polybuild.lockfiles.preflight import before_images
    from polybuild.support.toolchains import require

    before_images(plan, ctx)
    _resolve_versions(plan, ctx)  # a [versions] mistake is the run's, not one Go target's
    seen: set[tuple[str, str]] = set()
    refused: dict[str, UserError] = {}
    for task in plan.tasks.values():
        builder = builders.get(task.builder)
        for tool in builder.required_tools:
            if (tool, task.builder) not in seen:
                seen.add((tool, task.builder))
                require(tool, f"{task.target.id} ({task.builder})")
        try:
            builder.preflight(task, ctx)
        except UserError as exc:
            refused[task.id] = exc
    if refused and not _runnable(plan, set(refused)):
        raise next(iter(refused.values()))  # nothing else would run: stop before anything starts, as always
    return refused


def _runnable(plan: Plan, refused: set[str]) -> bool:
    """Whether any task neither is refused nor depends, at any depth, on a refused one."""
    from polybuild.graph import reach

    users: dict[str, list[str]] = {}
    for task in plan.tasks.values():
        for dep in task.deps:
            users.setdefault(dep, []).append(task.id)
    return len(reach(refused, lambda tid: users.get(tid, ()))) < len(plan.tasks)


def _resolve_versions(plan: Plan, ctx: BuildContext) -> None:
    """Go binaries carry their version group's version: resolve the groups once when `[versions]` sets any and the
    plan builds Go binaries (otherwise every one carries the workspace version, and no manifest is read)."""
    from polybuild import builders
    from polybuild.versioning import grouped

    if grouped(ctx.ws) and any(builders.get(task.builder).stamps_version for task in plan.tasks.values()):
        from polybuild.versioning.groups import resolve

        ctx.version_groups = resolve(ctx.ws, places=False)


def _drop_abandoned_staging(state_dir: Path) -> None:
    """Staging directories left by a run that was killed (kill -9, power loss); only under the workspace lock,
    which no other run holds, so none of them is in use."""
    tmp = state_dir / "tmp"
    if tmp.is_dir():
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def _clean_tmp(state_dir: Path) -> None:
    tmp = state_dir / "tmp"
    if tmp.is_dir() and not any(tmp.iterdir()):
        os.rmdir(tmp)


def image_target(loaded: Loaded, name: str) -> Target:
    """The image target called `name` (an image may share its name with the package it holds)."""
    return loaded.ws.resolve(name, kinds=frozenset({"image"}))


def with_image_options(loaded: Loaded, name: str, *, vars: dict[str, str] | None = None, target: str | None = None,
                       platforms: Sequence[str] = (), tags: Sequence[str] = (),
                       build_args: dict[str, str] | None = None, no_cache: bool = False) -> Loaded:
    """`loaded` with the image `name` configured for this run (`--var`, `--target`, `--platform`, `--tag`,
    `--build-arg`, `--no-cache`): a new image target in a new workspace, the discovered ones left as they were.
    The overrides are part of its cache key like the config they replace."""
    image = image_target(loaded, name)
    spec = dict(image.info.spec)
    if vars:
        spec["set"] = {**spec.get("set", {}), **vars}
    if target:
        spec["target"] = target
    if platforms:
        from polybuild.support.platforms import PLATFORMS, Platform

        linux = [p for p in PLATFORMS if p.startswith("linux/")]
        for platform in platforms:
            Platform.parse(platform, "--platform", linux, "images are built for Linux platforms")
        spec["platforms"] = list(platforms)
    if tags:
        spec["tags"] = list(tags)
    if build_args:
        spec["build-args"] = {**spec["build-args"], **build_args}
    if no_cache:
        spec["no-cache"] = True
    configured = dataclasses.replace(image, info=dataclasses.replace(image.info, spec=spec))
    ws = dataclasses.replace(loaded.ws, targets={**loaded.ws.targets, image.id: configured})
    return Loaded(ws, loaded.dag)


def render_image(loaded: Loaded, name: str, platform: str | None = None) -> Rendered:
    """The rendered Dockerfile of an image (as `with_image_options` configured it), for one platform."""
    from polybuild.builders.image import render
    from polybuild.plan import Task
    from polybuild.support.platforms import Platform, host

    image = image_target(loaded, name)
    if not image.info.spec["template"]:
        raise UserError(f"{image.id} is assembled from artifacts and has no Dockerfile template")
    names = [platform] if platform else image.info.spec["platforms"] or [f"linux/{host().arch}"]
    task = Task(image.id, image, "build", image.builder, None, Platform.parse(names[0]))
    return render(task, loaded.ws, Platform.parse(names[0]))


def push_image(loaded: Loaded, outcome: Outcome, refs: list[str], insecure: bool = False) -> list[dict[str, Any]]:
    """Push the image an `Outcome` built to each reference (its configured tags when none are given)."""
    import json
    import tempfile

    from polybuild.container import helper, layout
    from polybuild.support.cachedir import default_dir

    archives = [a.path for r in outcome.results for a in r.artifacts if a.path.name.endswith(".oci.tar")]
    if len(archives) != 1:
        raise UserError(f"push needs exactly one built image, found {len(archives)}",
                        hint="push one image and one platform at a time (assembled images hold every platform)")
    described = json.loads(archives[0].with_name(archives[0].name[:-len(".oci.tar")] + ".json").read_text())
    refs = refs or described["tags"]
    if not refs:
        raise UserError(f"nothing to push {described['image']} to", hint="pass --tag REF or set tags in config")
    binary = helper.find(default_dir())
    pushed = []
    with tempfile.TemporaryDirectory(prefix="polybuild-push-") as tmp:
        layout_dir = layout.unpack(archives[0], Path(tmp) / "layout")
        for ref in refs:
            args = ["image", "push", "--layout", str(layout_dir), "--ref", ref, *(["--insecure"] if insecure else [])]
            pushed.append(helper.call(binary, args))
    return pushed


def promote(src: str, dst: str, insecure: bool = False) -> dict[str, Any]:
    """Copy an image by digest, every platform, from one reference to another (like `crane copy`)."""
    from polybuild.container import helper
    from polybuild.support.cachedir import default_dir

    return helper.call(helper.find(default_dir()), ["image", "copy", *(["--insecure"] if insecure else []), src, dst])
