"""polybuild's Python API: what the command line and the nox sessions call.

config -> workspace -> graph -> plan -> execute -> artifacts -> reports, one function per user-visible job.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from polybuild.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Iterable

    import networkx as nx

    from polybuild.execute import TaskResult
    from polybuild.graph import TargetGraph
    from polybuild.plan import Plan
    from polybuild.workspace import Workspace


@dataclass
class Loaded:
    ws: Workspace
    dag: TargetGraph  # what build and run use: plain dicts, no networkx import

    @cached_property
    def graph(self) -> nx.DiGraph:
        """The target graph as a networkx DiGraph: an edge from each target to each target it depends on."""
        return self.dag.to_networkx()


def load(directory: Path | str = ".", config_file: Path | None = None) -> Loaded:
    """Find the workspace at or above `directory`, validate its config, discover targets and build the graph."""
    from polybuild.config import find_root, load_config
    from polybuild.graph import build_graph
    from polybuild.workspace import discover

    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"not a directory: {directory}")
    root = config_file.resolve().parent if config_file else find_root(directory)
    ws = discover(load_config(root, config_file))
    return Loaded(ws, build_graph(ws))


def select(loaded: Loaded, names: list[str], *, to_build: bool = False) -> set[str]:
    """The named targets and their dependencies (`to_build`: only those whose builds they need); all targets when
    none are named."""
    if not names:
        return set(loaded.ws.targets)
    ids = [loaded.ws.resolve(n).id for n in names]
    return loaded.dag.needs(ids) if to_build else loaded.dag.closure(ids)


@dataclass
class Outcome:
    plan: Plan
    results: list[TaskResult]
    report_path: Path | None
    report: dict | None = None
    tools: set[str] = field(default_factory=set)  # toolchains whose identity entered keys
    python: str = sys.executable
    toolchains: dict[str, str] = field(default_factory=dict)  # what each probed tool said of its version

    @property
    def ok(self) -> bool:
        return all(r.status in ("built", "cached") for r in self.results)


def build(loaded: Loaded, targets: list[str] = (), *, variants: list[str] = (), platforms: list[str] = (),
          jobs: int | None = None, keep_going: bool = False, json_mode: bool = False,
          cache: CacheOptions | None = None, named: Iterable[str] | None = None) -> Outcome:
    """Build the targets (all by default) and their dependencies; writes dist/build-report.json. Harness crates
    are built only when `named` (default: `targets`) names them."""
    from polybuild.plan import build_plan, choose_dimensions

    if not loaded.ws.targets:
        raise UserError(f"no targets found under {loaded.ws.root}",
                        hint="polybuild reads Cargo.toml, pyproject.toml, go.mod and go.work; check `exclude`")
    chosen_variants, chosen_platforms = choose_dimensions(loaded.ws, list(variants), list(platforms))
    named = {loaded.ws.resolve(n).id for n in (targets if named is None else named)}
    plan = build_plan(loaded.ws, loaded.dag, select(loaded, list(targets), to_build=True), chosen_variants,
                      chosen_platforms, named)
    _skip_unavailable_images(loaded, plan, named)
    return _execute(loaded, plan, jobs, keep_going, json_mode, write_report=True, cache=cache or CacheOptions())


def run(loaded: Loaded, action: str, targets: list[str] = (), *, variants: list[str] = (),
        platforms: list[str] = (), jobs: int | None = None, keep_going: bool = False,
        json_mode: bool = False, cache: CacheOptions | None = None) -> Outcome:
    """Run the custom (or built-in) task `action` for the named targets, or all, in graph order."""
    from polybuild.plan import choose_dimensions, run_plan

    chosen_variants, chosen_platforms = choose_dimensions(loaded.ws, list(variants), list(platforms))
    names = list(targets)
    selected = {loaded.ws.resolve(n).id for n in names} if names else set(loaded.ws.targets)
    plan = run_plan(loaded.ws, loaded.dag, selected, action, chosen_variants, chosen_platforms)
    return _execute(loaded, plan, jobs, keep_going, json_mode, write_report=False, cache=cache or CacheOptions())


def _skip_unavailable_images(loaded: Loaded, plan: Plan, named: set[str]) -> None:
    """Optional images that cannot be built here (no engine, a base that cannot be pulled) leave the plan, with
    the reason in the summary; a required or explicitly named image fails in preflight instead."""
    from polybuild.container.availability import unavailable

    for task in [t for t in plan.tasks.values() if t.builder == "dockerfile"]:
        spec = task.target.info["spec"]
        if not spec["optional"] or task.target.id in named:
            continue
        reason = unavailable(loaded.ws, task)
        if reason:
            del plan.tasks[task.id]
            plan.skipped.append((task.id, reason))


def explain(loaded: Loaded, name: str, *, variants: list[str] = (), platforms: list[str] = ()) -> str:
    """Why each task of the target would rebuild (or that it is up to date)."""
    from polybuild.explain import explain as explain_plan
    from polybuild.plan import build_plan, choose_dimensions

    target = loaded.ws.resolve(name)
    chosen_variants, chosen_platforms = choose_dimensions(loaded.ws, list(variants), list(platforms))
    plan = build_plan(loaded.ws, loaded.dag, loaded.dag.needs([target.id]), chosen_variants, chosen_platforms)
    if not any(t.target.id == target.id for t in plan.tasks.values()):
        return f"{target.id} has no build of its own (a library); its files are inputs of the targets using it"
    ctx = _context(loaded, CacheOptions())
    try:
        return explain_plan(plan, ctx, target.id)
    finally:
        ctx.stat_cache.save()


def local_store(loaded: Loaded):
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


def _remote(ws: Workspace, options: CacheOptions):
    conf = ws.config["remote"]
    sources = [("--remote", options.remote_url), ("$POLYBUILD_REMOTE_URL", os.environ.get("POLYBUILD_REMOTE_URL")),
               ("[remote] url", conf["url"])]
    source, url = next(((s, u) for s, u in sources if u), (None, None))
    if not url:
        return None
    import urllib.parse

    from polybuild.remote import RemoteCache

    try:
        parts = urllib.parse.urlsplit(url)
        valid = url.startswith(("http://", "https://")) and parts.hostname and (parts.port or 1) < 65536
    except ValueError:  # an unclosed [IPv6 address, a port out of range or not a number
        valid = False
    if not valid:
        message = f"{source}: not a remote cache URL: {url.split('@')[-1]}"
        hint = "use http(s)://host:port[/prefix], e.g. http://cache.internal:8080"
        if source == "[remote] url":
            raise ws.config.error(("remote", "url"), message, hint)
        raise UserError(message, hint=hint)
    token = os.environ.get(conf["token-env"]) if conf["token-env"] else None
    return RemoteCache(url, upload=options.remote_upload or conf["upload"], timeout=conf["timeout"],
                       retries=conf["retries"], token=token)


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


def _context(loaded: Loaded, cache_options: CacheOptions):
    from polybuild.builders import BuildContext
    from polybuild.cache import TaskCache
    from polybuild.cachedir import for_workspace
    from polybuild.fingerprint import StatCache
    from polybuild.inputs import InputIndex
    from polybuild.keys import Fingerprints, Toolchains
    from polybuild.platforms import host
    from polybuild.records import BuildRecords
    from polybuild.store import LocalStore

    ws = loaded.ws
    python = ws.config["python"]["interpreter"] or sys.executable
    state_dir = ws.root / ws.config["state-dir"]
    env = {**os.environ}
    env.setdefault("SOURCE_DATE_EPOCH", DEFAULT_SOURCE_DATE_EPOCH)
    if not env["SOURCE_DATE_EPOCH"].isascii() or not env["SOURCE_DATE_EPOCH"].isdigit():
        raise UserError(f"$SOURCE_DATE_EPOCH is {env['SOURCE_DATE_EPOCH']!r}, not a number of seconds since 1970",
                        hint="e.g. SOURCE_DATE_EPOCH=$(git log -1 --format=%ct), or unset it")
    cache_dir = _usable_cache_dir(ws, for_workspace(ws.root, ws.config["cache-dir"]))
    cache = TaskCache(LocalStore(cache_dir), _remote(ws, cache_options)) if cache_options.enabled else None
    inputs = InputIndex(ws, loaded.dag)
    stat_cache = StatCache(state_dir / "statcache")
    return BuildContext(ws=ws, host=host(), python=python, version=ws.release_version, state_dir=state_dir,
                        env=env, inputs=inputs, toolchains=Toolchains(python), stat_cache=stat_cache,
                        fingerprints=Fingerprints(ws.root, stat_cache, inputs),
                        records=BuildRecords(state_dir / "records.json", cache_dir / "salt"), cache=cache)


def preflight(plan: Plan, ctx) -> None:
    """Every toolchain and backend the plan needs is present, checked before anything starts; images for a
    platform other than the host's first need fresh lockfiles with wheels for that platform."""
    from polybuild import builders
    from polybuild.lockfiles.preflight import before_images
    from polybuild.toolchains import require

    before_images(plan, ctx)
    seen: set[tuple[str, str]] = set()
    for task in plan.tasks.values():
        builder = builders.get(task.builder)
        for tool in builder.tools:
            if (tool, task.builder) not in seen:
                seen.add((tool, task.builder))
                require(tool, f"{task.target.id} ({task.builder})")
        builder.preflight(task, ctx)


def _execute(loaded: Loaded, plan: Plan, jobs: int | None, keep_going: bool, json_mode: bool,
             write_report: bool, cache: CacheOptions) -> Outcome:
    import json

    from polybuild import published
    from polybuild.execute import Executor
    from polybuild.lock import workspace_lock
    from polybuild.progress import make_reporter
    from polybuild.report import build_report, write_atomic

    ctx = _context(loaded, cache)
    preflight(plan, ctx)
    with workspace_lock(ctx.state_dir):
        _drop_abandoned_staging(ctx.state_dir)
        reporter = make_reporter(len(plan.tasks), json_mode)
        start = time.monotonic()
        try:
            results = Executor(plan, ctx, jobs or loaded.ws.config.jobs, keep_going, reporter).run()
            artifacts = published.update(ctx, results)
        finally:
            reporter.close()
            ctx.stat_cache.save()
            ctx.records.save()
            if ctx.cache is not None:
                ctx.cache.store.flush()
    report_path = report = None
    if write_report:
        report_path = loaded.ws.root / loaded.ws.config["dist-dir"] / "build-report.json"
        report = build_report(ctx, results, time.monotonic() - start, artifacts)
        write_atomic(report_path, json.dumps(report, indent=2) + "\n")
    _clean_tmp(ctx.state_dir)
    return Outcome(plan, results, report_path, report, ctx.toolchains.used(), ctx.python, ctx.toolchains.versions())


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


def image_target(loaded: Loaded, name: str):
    """The image target called `name` (an image may share its name with the package it holds)."""
    return loaded.ws.resolve(name, kinds=frozenset({"image"}))


def set_image_options(loaded: Loaded, name: str, **options: object) -> str:
    """Override an image's config for this run (`--var`, `--target`, `--tag`, ...); the overrides are part of its
    cache key like the config they replace. Returns the image's target id."""
    image = image_target(loaded, name)
    spec = dict(image.info["spec"])
    if options.get("vars"):
        spec["set"] = {**spec.get("set", {}), **options["vars"]}
    if options.get("target"):
        spec["target"] = options["target"]
    if options.get("platforms"):
        from polybuild.config import PLATFORMS

        for name in options["platforms"]:
            if name not in PLATFORMS or not name.startswith("linux/"):
                raise UserError(f"--platform {name}: images are built for Linux platforms",
                                hint=", ".join(p for p in PLATFORMS if p.startswith("linux/")))
        spec["platforms"] = list(options["platforms"])
    if options.get("tags"):
        spec["tags"] = list(options["tags"])
    if options.get("build_args"):
        spec["build-args"] = {**spec["build-args"], **options["build_args"]}
    if options.get("no_cache"):
        spec["no-cache"] = True
    image.info = {**image.info, "spec": spec}
    return image.id


def render_image(loaded: Loaded, name: str, platform: str | None = None):
    """The rendered Dockerfile of an image (after `set_image_options`), for one platform."""
    from polybuild.builders.image import render
    from polybuild.plan import Task
    from polybuild.platforms import Platform, host

    image = image_target(loaded, name)
    if not image.info["spec"]["template"]:
        raise UserError(f"{image.id} is assembled from artifacts and has no Dockerfile template")
    names = [platform] if platform else image.info["spec"]["platforms"] or [f"linux/{host().arch}"]
    task = Task(image.id, image, "build", image.builder, None, Platform.parse(names[0]))
    return render(task, loaded.ws, Platform.parse(names[0]))


def push_image(loaded: Loaded, outcome: Outcome, refs: list[str], insecure: bool = False) -> list[dict]:
    """Push the image an `Outcome` built to each reference (its configured tags when none are given)."""
    import json
    import tempfile

    from polybuild.cachedir import default_dir
    from polybuild.container import helper, layout

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


def promote(src: str, dst: str, insecure: bool = False) -> dict:
    """Copy an image by digest, every platform, from one reference to another (like `crane copy`)."""
    from polybuild.cachedir import default_dir
    from polybuild.container import helper

    return helper.call(helper.find(default_dir()), ["image", "copy", *(["--insecure"] if insecure else []), src, dst])
