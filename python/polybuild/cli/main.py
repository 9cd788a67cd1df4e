"""The `polybuild` command line: argument parsing, output and exit codes (0 ok, 1 build failed, 2 usage or
config error, 130 interrupted by Ctrl-C, 143 by SIGTERM, 129 by SIGHUP, 141 when stdout's reader left). All the
work is in `polybuild.api`."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from polybuild import __version__
from polybuild.support import terminal
from polybuild.support.errors import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_USAGE, PolybuildError, UserError
from polybuild.support.signals import Terminated, stop_on_signals
from polybuild.support.terminal import paint, paint_first

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from polybuild.api import Loaded, Outcome
    from polybuild.licenses.scan import Scan
    from polybuild.versioning.groups import Groups
    from polybuild.versioning.places import Place
    from polybuild.workspace import Workspace


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps prose to the terminal as argparse does, but keeps a paragraph with indented lines (the examples) as
    written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for paragraph in text.split("\n\n"):
            if "\n  " in paragraph:
                paragraphs.append("\n".join(indent + line for line in paragraph.splitlines()))
            else:
                paragraphs.append(super()._fill_text(paragraph, width, indent))
        return "\n\n".join(paragraphs)


class _Parser(argparse.ArgumentParser):
    """Every command's parser takes the global options too, so `polybuild build -C dir` works like
    `polybuild -C dir build`; given in both places, the later one wins."""

    def __init__(self, *args, top: bool = False, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)
        _global_options(self, top)

    def error(self, message: str) -> None:  # argparse exits 2 too; keep its message, add our prefix
        self.print_usage(sys.stderr)
        print(f"polybuild: {paint('error:', sys.stderr)} {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _examples(examples: Sequence[str]) -> str:
    """The `Examples:` epilog, the comments aligned."""
    rows = [(command.strip(), comment.strip()) for command, _, comment in (e.partition("# ") for e in examples)]
    width = max(len(command) for command, _ in rows)
    return "Examples:\n" + "\n".join(f"  {command:<{width}}  # {comment}" if comment else f"  {command}"
                                      for command, comment in rows)


def _document(parser: argparse.ArgumentParser, path: str = "polybuild") -> None:
    """A command's --help opens with the line its parent lists it with, as a sentence, then its own description
    when it has one, and ends with its examples (polybuild.cli.examples)."""
    from polybuild.cli.examples import EXAMPLES

    if path in EXAMPLES:
        parser.epilog = _examples(EXAMPLES[path])
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for listed in action._choices_actions:
                command = action.choices[listed.dest]
                if listed.help:
                    summary = f"{listed.help[0].upper()}{listed.help[1:]}."
                    command.description = f"{summary}\n\n{command.description}" if command.description else summary
                _document(command, f"{path} {listed.dest}")


def _global_options(p: argparse.ArgumentParser, top: bool) -> None:
    """-C, --config and --color. Below the top level they default to nothing (argparse.SUPPRESS), so a command's
    parser keeps what was given before the command unless it is given again after it."""

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    p.add_argument("-C", dest="directory", default=default("."), metavar="DIR", help="run as if started in DIR")
    p.add_argument("--config", type=Path, default=default(None), metavar="FILE", help="config file (default: "
                   "polybuild.toml or [tool.polybuild] in pyproject.toml at the workspace root)")
    p.add_argument("--color", choices=terminal.CHOICES, default=default("auto"),
                   help="colour the status words: auto (a terminal, unless NO_COLOR is set; FORCE_COLOR: pipes "
                   "too), always or never")


def _jobs(text: str) -> int:
    """-j N: a number of parallel tasks within what a machine can run (a huge one would start that many threads)."""
    from polybuild.config.model import MAX_JOBS

    try:
        jobs = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 1 <= jobs <= MAX_JOBS:
        raise argparse.ArgumentTypeError(f"{text} is out of range: use 1 to {MAX_JOBS}")
    return jobs


def _size(text: str) -> int:
    """A cache size such as 500M or 2G: a finite, non-negative number of bytes."""
    from polybuild.cache.store import parse_size

    try:
        size = parse_size(text)
    except (ValueError, OverflowError):  # not a number, or infinite
        size = -1
    if size < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 500M, 2G)")
    return size


def output_logs_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output-logs", choices=terminal.OUTPUT_LOGS, metavar="full|errors-only|none",
                   help="the tools' output: full (every line as it comes, prefixed with its task), errors-only (a "
                   "failed task's log; the default, or the output-logs key) or none (only where the log is)")


_TARGETS_HELP = "target ids, names, globs (py:*, '*serving*') or directories (lib/)"
_DEPENDENTS_HELP = "also every target that depends on the named ones"


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="polybuild", description="Build monorepos that mix Rust, Python and Go. `polybuild COMMAND "
                "--help` explains a command's options, with examples.", top=True)
    p.add_argument("-V", "--version", action="version", version=f"polybuild {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)  # none: the help

    def dims(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("targets", nargs="*", metavar="TARGET", help=_TARGETS_HELP + " (default: all)")
        sp.add_argument("--dependents", action="store_true", help=_DEPENDENTS_HELP)
        sp.add_argument("-j", "--jobs", type=_jobs, metavar="N", help="parallel tasks (default: cores)")
        sp.add_argument("-k", "--keep-going", action="store_true", help="do not stop at the first failure")
        sp.add_argument("--variant", action="append", default=[], metavar="NAME",
                        help="build variant from config (repeatable)")
        sp.add_argument("--platform", action="append", default=[], metavar="OS/ARCH",
                        help="target platform such as linux/arm64 (repeatable; default: the host)")
        sp.add_argument("--json", action="store_true", help="JSON lines on stdout instead of progress text")
        output_logs_option(sp)
        sp.add_argument("--no-cache", action="store_true", help="neither read nor write any cache")
        sp.add_argument("--remote", metavar="URL", help="remote cache (bazel-remote HTTP protocol, or grpc[s]:// "
                        "for a Remote Execution API server)")
        sp.add_argument("--remote-upload", action="store_true", help="upload results to the remote cache")
        sp.add_argument("--remote-jobs", type=_jobs, default=0, metavar="N",
                        help="with [remote] execute: this many more tasks in flight on the remote executor")

    build = sub.add_parser("build", help="build targets and their dependencies into dist/")
    dims(build)
    build.add_argument("--affected", nargs="?", const="", metavar="REF",
                       help="only the targets affected by changes since REF (default: the merge base with the "
                       "default branch; put a bare --affected after the targets)")
    build.add_argument("--ci-job", metavar="JSON", help="build exactly one entry of `polybuild ci matrix`")
    build.add_argument("--dry-run", action="store_true",
                       help="say which tasks would run and why, and which are cached; run and write nothing")
    affected = sub.add_parser("affected", help="list the targets affected by changes since a git revision")
    affected.add_argument("--since", metavar="REF", help="a commit, branch or tag (default: the merge base of HEAD "
                          "with the default branch: origin/HEAD's, else main or master)")
    affected.add_argument("--json", action="store_true", help="machine-readable output")
    run = sub.add_parser("run", help="run a task (test, lint, ...) for targets in graph order")
    run.add_argument("task", nargs="?", metavar="TASK", help="the task name, e.g. test")
    dims(run)
    graph = sub.add_parser("graph", help="print the target graph")
    graph.add_argument("targets", nargs="*", metavar="TARGET",
                       help=f"only these targets and their dependencies: {_TARGETS_HELP}")
    graph.add_argument("--dependents", action="store_true", help=_DEPENDENTS_HELP)
    graph.add_argument("--format", choices=("text", "json", "dot", "mermaid"), default="text",
                       help="text (default), json, dot (Graphviz) or mermaid (Markdown pages)")
    graph.add_argument("--json", dest="format", action="store_const", const="json",
                       help="the same as --format json, as on every command with machine output")
    explain = sub.add_parser("explain", help="say why a target would rebuild")
    explain.add_argument("target", metavar="TARGET", help="a target id or name")
    explain.add_argument("--variant", action="append", default=[], metavar="NAME",
                         help="build variant from config (repeatable)")
    explain.add_argument("--platform", action="append", default=[], metavar="OS/ARCH",
                         help="target platform such as linux/arm64 (repeatable; default: the host)")
    cache = sub.add_parser("cache", help="inspect or trim the local cache")
    cache_sub = cache.add_subparsers(dest="cache_command", metavar="ACTION", parser_class=_Parser, required=True)
    stats = cache_sub.add_parser("stats", help="entries, blobs and size")
    stats.add_argument("--json", action="store_true", help="machine-readable output")
    gc = cache_sub.add_parser("gc", help="drop least recently used entries until the cache fits")
    gc.add_argument("--max-size", required=True, type=_size, metavar="SIZE", help="e.g. 500M, 2G")
    _container_parser(sub)
    _version_parser(sub)
    deny = sub.add_parser("deny", help="check dependencies against deny.toml (licenses, bans, sources, advisories)")
    deny.add_argument("--json", action="store_true", help="machine-readable output")
    fetch = {"nargs": "?", "const": "metadata", "choices": ("metadata", "full"), "metavar": "MODE",
             "help": "first download what the lockfiles name (crates, Go modules, the locked Python distributions); "
             "of a wheel, only its METADATA and license files by HTTP Range where the index allows it (--fetch=full: "
             "every file whole, verified against the lock's sha256)"}
    deny.add_argument("--fetch", **fetch)
    attributions = sub.add_parser("attributions", help="write ATTRIBUTIONS.md and the per-ecosystem files")
    attributions.add_argument("--check", action="store_true", help="fail when the committed files are stale")
    attributions.add_argument("--target", metavar="TARGET", help="only what this artifact or image ships")
    attributions.add_argument("--dir", type=Path, metavar="DIR", help="where to write (default: config)")
    attributions.add_argument("--force", action="store_true",
                              help="also replace ATTRIBUTIONS*.md files that polybuild did not write")
    attributions.add_argument("--fetch", **fetch)
    sbom = sub.add_parser("sbom", help="write an SBOM (CycloneDX 1.6 or SPDX 2.3 JSON)")
    sbom.add_argument("--format", choices=("cyclonedx", "spdx"), default="cyclonedx",
                      help="cyclonedx (1.6, the default) or spdx (2.3)")
    sbom.add_argument("--target", metavar="TARGET", help="only what this artifact or image ships")
    sbom.add_argument("-o", "--output", type=Path, metavar="FILE", help="write to FILE (default: stdout)")
    sbom.add_argument("--fetch", **fetch)
    doctor = sub.add_parser("doctor", help="check every tool this workspace needs (exit 1 when one is missing)")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    reference = sub.add_parser("config-reference", help="print the Markdown reference of every config key")
    reference.add_argument("--deny", action="store_true", help="the keys of deny.toml instead")
    reference.add_argument("--json-schema", nargs="?", const="polybuild.toml", metavar="FILE",
                           choices=("polybuild.toml", "pyproject.toml"),
                           help="the JSON Schema of the config for editors instead, as a polybuild.toml (the "
                           "default) or a pyproject.toml with [tool.polybuild] (docs/*.schema.json)")
    for module in FEATURE_COMMANDS:
        importlib.import_module(module).register(sub, _Parser)
    _document(p)
    return p


# Commands that live with their feature: each module's `register(sub, parser_class)` adds its parser and sets
# `handler` (args -> exit code) as its default. Keep these modules light: import the work inside the handler.
FEATURE_COMMANDS = (
    "polybuild.cli.lock",
    "polybuild.cli.extras",
    "polybuild.cli.release",
    "polybuild.cli.ci",
    "polybuild.cli.clean",
    "polybuild.cli.completion",
    "polybuild.cli.init",
)


def _container_parser(sub) -> None:
    container = sub.add_parser("container", help="render, build, push and promote container images")
    actions = container.add_subparsers(dest="container_command", metavar="ACTION", parser_class=_Parser,
                                       required=True)

    def options(sp: argparse.ArgumentParser, many: bool = False) -> None:
        sp.add_argument("image", metavar="IMAGE", help="the image's name in [images]")
        sp.add_argument("--target", metavar="STAGE", help="the stage to build (default: the last)")
        if many:  # a build takes several platforms, repeated as on every command
            sp.add_argument("--platform", action="append", default=[], metavar="OS/ARCH",
                            help="e.g. linux/arm64 (repeatable; default: the image's, or the host's)")
        else:
            sp.add_argument("--platform", metavar="OS/ARCH", help="e.g. linux/arm64 (one; default: the image's "
                            "first, or the host's)")
        sp.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="a template variable")

    render = actions.add_parser("render", help="print the rendered Dockerfile, with template markers")
    options(render)
    render.add_argument("--check", action="store_true", help="lint it: stages, latest tags, secrets in ARG/ENV")
    render.add_argument("-o", "--output", type=Path, metavar="FILE", help="write it to FILE")
    build = actions.add_parser("build", help="build an image (and the artifacts it holds)")
    options(build, many=True)
    build.add_argument("--tag", action="append", default=[], metavar="REF", help="tag (repeatable)")
    build.add_argument("--build-arg", action="append", default=[], metavar="NAME=VALUE", help="build argument")
    build.add_argument("--no-cache", action="store_true", help="rebuild every layer and skip polybuild's cache")
    build.add_argument("--push", action="store_true", help="push to the tags after building")
    build.add_argument("--insecure", action="store_true", help="plain HTTP to a registry that is not local")
    build.add_argument("-j", "--jobs", type=_jobs, metavar="N", help="parallel tasks (default: cores)")
    build.add_argument("--json", action="store_true", help="JSON lines on stdout instead of progress text")
    output_logs_option(build)
    push = actions.add_parser("push", help="push a built image (building it first if needed)")
    push.add_argument("image", metavar="IMAGE", help="the image's name in [images]")
    push.add_argument("--tag", action="append", default=[], metavar="REF", help="where to push (default: tags)")
    push.add_argument("--platform", metavar="OS/ARCH", help="the platform of a Dockerfile image")
    push.add_argument("--insecure", action="store_true", help="plain HTTP to a registry that is not local")
    promote = actions.add_parser("promote", help="copy an image by digest, all platforms, to another reference")
    promote.add_argument("src", metavar="SRC", help="registry reference, or oci:DIR")
    promote.add_argument("dst", metavar="DST", help="registry reference")
    promote.add_argument("--insecure", action="store_true", help="plain HTTP to registries that are not local")


def _version_parser(sub) -> None:
    version = sub.add_parser("version", help="show, stamp or check the workspace version in every manifest")
    version.add_argument("--json", action="store_true", help="machine-readable output")
    actions = version.add_subparsers(dest="version_command", metavar="ACTION", parser_class=_Parser)
    json_option = {"action": "store_true", "default": argparse.SUPPRESS,  # keeps a `version --json` given before
                   "help": "machine-readable output"}
    stamp = actions.add_parser("set", help="stamp a version (PEP 440 or SemVer) into every place")
    stamp.add_argument("value", metavar="VERSION", nargs="?", help="e.g. 1.2.0rc1 or 1.2.0-rc.1")
    stamp.add_argument("--from-git", action="store_true",
                       help="the latest vX.Y.Z tag, plus the distance as a dev release (1.2.1.dev3)")
    stamp.add_argument("--group", metavar="NAME",
                       help="stamp this version group ([versions] in the config; an independent package by its "
                       "id) instead of the workspace's lockstep group")
    check = actions.add_parser("check", help="exit 1 listing every place that disagrees with its version group's "
                               "version")
    check.add_argument("--json", **json_option)
    git = actions.add_parser("git", help="print the version git describes (latest vX.Y.Z tag plus distance)")
    git.add_argument("--json", **json_option)


_started = time.monotonic()  # reset by main(): the summary line gives this run's wall time


def _wall_time() -> str:
    """This run's wall time so far, as the summary line shows it (`in 41.2s`, `in 0.04s`)."""
    seconds = time.monotonic() - _started
    return f"{seconds:.1f}s" if seconds >= 10 else f"{seconds:.2f}s"


def main(argv: list[str] | None = None) -> int:
    global _started
    _started = time.monotonic()
    stop_on_signals()
    parser = _parser()
    args = parser.parse_args(argv)
    terminal.set_choice(args.color)
    if args.command is None:  # bare `polybuild`: what it can do
        parser.print_help()
        return 0
    try:
        handler = getattr(args, "handler", None) or _COMMANDS[args.command]
        return handler(args)
    except PolybuildError as exc:
        print(f"polybuild: {paint('error:', sys.stderr)} {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        why = f"terminated ({exc})" if isinstance(exc, Terminated) else "interrupted"
        print(f"\npolybuild: {why}; running tasks were stopped", file=sys.stderr)
        return exc.exit_code if isinstance(exc, Terminated) else EXIT_INTERRUPTED
    except BrokenPipeError:  # `polybuild build | head -1`: the reader left; stop quietly, as `cat` does
        devnull = os.open(os.devnull, os.O_WRONLY)
        for stream in (sys.stdout, sys.stderr):  # nothing more can be said, not even at exit
            os.dup2(devnull, stream.fileno())
        return EXIT_BROKEN_PIPE


def _load(args: argparse.Namespace) -> Loaded:
    from polybuild import api

    return api.load(Path(args.directory), args.config)


def _fast_path(args: argparse.Namespace, command: list[str]) -> tuple[int | None, bool]:
    """(exit code, _) when the last identical run still holds; (None, whether to remember this run) otherwise.

    It reads no config: the summary says where the report goes, and config files are among what it watches."""
    if (getattr(args, "affected", None) is not None or getattr(args, "ci_job", None) or args.no_cache
            or args.remote_upload):
        return None, False
    if os.environ.get("POLYBUILD_FAST_PATH") == "0" or os.environ.get("GITHUB_STEP_SUMMARY"):
        return None, False  # a CI job's summary lists every task
    from polybuild.cache import fastpath

    summary = fastpath.replay(command)
    if summary is None:
        return None, True
    for target_id, reason in summary["skipped"]:
        print(f"{paint('note:', sys.stderr)} skipped {target_id}: {reason}", file=sys.stderr)
    if args.json:  # the same events as a run in which every task was cached
        from polybuild.execute.progress import finish_event

        _json_events(len(summary["task_artifacts"]), summary["skipped"],
                     [finish_event(task, target, "cached", 0.0, paths, None, log)
                      for task, target, paths, log in summary["task_artifacts"]],
                     artifacts=len(summary["artifacts"]),
                     report=str(Path(summary["root"], summary["report_path"])) if summary["report"] else None)
    else:
        print(f"polybuild: {len(summary['task_artifacts'])} {paint('cached', sys.stderr)} (nothing changed since "
              f"the last run) in {_wall_time()}", file=sys.stderr)
        _print_artifacts([(path, size, sha) for path, size, sha in summary["artifacts"]])
    if summary["report"] and not args.json:
        print(f"  report: {summary['report_path']}", file=sys.stderr)
    return 0, False


def _json_events(tasks: int, skipped: list[list[str]], finished: list[dict], *, artifacts: int = 0,
                 report: str | None = None) -> None:
    """A whole event stream for a run that ran nothing: the plan, what left it, each task's `finish`, the summary."""
    from polybuild.execute.progress import emit, plan_event, skip_event, summary_event

    emit(plan_event(tasks))
    for skipped_id, reason in skipped:
        emit(skip_event(skipped_id, reason))
    for event in finished:
        emit(event)
    emit(summary_event((e["status"] for e in finished), len(skipped), artifacts, 0, time.monotonic() - _started,
                       report))


MAX_LISTED = 20


def _print_artifacts(artifacts: list[tuple[str, int, str]]) -> None:
    """One line per artifact; a long list is cut (the report has them all)."""
    shown = artifacts if len(artifacts) <= MAX_LISTED else artifacts[: MAX_LISTED // 2]
    for path, size, sha in shown:
        print(f"  {path}  {size:,} bytes  sha256:{sha[:16]}", file=sys.stderr)
    if len(shown) < len(artifacts):
        print(f"  ... and {len(artifacts) - len(shown)} more", file=sys.stderr)


def _command(args: argparse.Namespace) -> list[str]:
    """What makes two invocations the same run, for the fast path."""
    name = "run " + args.task if args.command == "run" else args.command
    return [name, str(Path(args.directory).resolve()), str(args.config), *args.targets,
            *(["--dependents"] if args.dependents else []), "--variant",
            *args.variant, "--platform", *args.platform, str(args.remote)]


def _with_fast_path(args: argparse.Namespace, execute: Callable[[Loaded, list[str] | None], Outcome | int],
                    done: str) -> int:
    """Answer from the last identical run when nothing changed; otherwise load and execute (`api` records the run
    for the fast path under the command it is given, when there is one)."""
    command = _command(args)
    code, remember = _fast_path(args, command)
    if code is not None:
        return code
    loaded = _load(args)
    outcome = execute(loaded, command if remember else None)
    if isinstance(outcome, int):
        return outcome
    return _finish(loaded, outcome, args.json, done=done)


def _cmd_build(args: argparse.Namespace) -> int:
    if args.dry_run:  # never answered by the fast path: it would say nothing of keys and reasons
        return _dry_run(args)

    def execute(loaded: Loaded, remember_as: list[str] | None) -> Outcome | int:
        from polybuild import api

        chosen = api.select_build(loaded, args.targets, variants=args.variant, platforms=args.platform,
                                  affected_since=args.affected, ci_job=args.ci_job, dependents=args.dependents)
        if chosen.nothing:
            print(f"polybuild: {chosen.nothing}", file=sys.stderr)
            if args.json:  # a stream that starts and ends as every other
                _json_events(0, [], [])
            return 0
        if chosen.since and not args.json:
            print(f"polybuild: building what is affected since {chosen.since}", file=sys.stderr)
        return api.build(loaded, chosen.targets, variants=chosen.variants, platforms=chosen.platforms,
                         jobs=args.jobs, keep_going=args.keep_going, json_mode=args.json,
                         cache=_cache_options(args), named=args.targets,  # affected harness crates are not asked for
                         remember_as=remember_as, output_logs=args.output_logs)

    return _with_fast_path(args, execute, done="built")


def _dry_run(args: argparse.Namespace) -> int:
    """`build --dry-run`: one line per task in plan order and a count, or one JSON document with --json."""
    from polybuild import api

    loaded = _load(args)
    chosen = api.select_build(loaded, args.targets, variants=args.variant, platforms=args.platform,
                              affected_since=args.affected, ci_job=args.ci_job, dependents=args.dependents)
    tasks = [] if chosen.nothing else api.dry_run(loaded, chosen.targets, variants=chosen.variants,
                                                  platforms=chosen.platforms, cache=_cache_options(args),
                                                  named=args.targets)
    if args.json:
        import json

        print(json.dumps({"schema": 1, "tasks": tasks}, indent=2))
        return 0
    for task in tasks:
        if task["cached"]:  # a cached task's dependencies are cached too, so its key is known
            print(f"cached  {task['id']}  key {task['key'][:16]}")
        else:
            print(f"run     {task['id']}  {'; '.join(task['reasons'])}")
    to_run = sum(not task["cached"] for task in tasks)
    print(f"polybuild: dry run: {to_run} to run, {len(tasks) - to_run} cached", file=sys.stderr)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    if args.task is None:  # argparse would say TASK and TARGET are required; only TASK is
        raise UserError("run needs the name of a TASK (e.g. `polybuild run test`), then optionally the TARGETs "
                        "to run it for (default: every target that has it)")

    def execute(loaded: Loaded, remember_as: list[str] | None) -> Outcome:
        from polybuild import api

        return api.run(loaded, args.task, args.targets, variants=args.variant, platforms=args.platform,
                       jobs=args.jobs, keep_going=args.keep_going, json_mode=args.json, cache=_cache_options(args),
                       remember_as=remember_as, dependents=args.dependents, output_logs=args.output_logs)

    return _with_fast_path(args, execute, done="done")


def _cache_options(args: argparse.Namespace):
    from polybuild.api import CacheOptions

    return CacheOptions(enabled=not args.no_cache, remote_url=args.remote, remote_upload=args.remote_upload,
                        remote_jobs=args.remote_jobs)


def _finish(loaded: Loaded, outcome: Outcome, json_mode: bool, done: str) -> int:
    from polybuild.execute.report import LOG_TAIL_LINES, failure_details

    root = loaded.ws.root
    out = sys.stderr
    for target_id, reason in outcome.plan.skipped:
        print(f"{paint('note:', out)} skipped {target_id}: {reason}", file=out)
    for exc in outcome.refused.values():  # as a refusal that stopped the whole run was said
        print(f"polybuild: {paint('error:', out)} {exc}", file=out)
    # The job log: each task's log folded, failures expanded below them; with `full` the logs were shown as they
    # came, with `none` nothing of them is
    if os.environ.get("GITHUB_ACTIONS") == "true" and outcome.output_logs == "errors-only":
        from polybuild.ci.github import log_groups

        for line in log_groups(outcome.results):
            print(line, file=out)
    failed = [r for r in outcome.results if r.status == "failed" and r.task.id not in outcome.refused]
    tail = 0 if outcome.output_logs == "none" else LOG_TAIL_LINES
    for r in failed:
        print(paint_first(failure_details(r, root, tail), out), file=out)
    if os.environ.get("GITHUB_STEP_SUMMARY") or os.environ.get("GITHUB_ACTIONS") == "true":
        from polybuild.ci.github import report_build

        report_build(loaded.ws, outcome)
    artifacts = [a for r in outcome.results for a in r.artifacts]
    if not json_mode:
        counts = {s: sum(r.status == s for r in outcome.results)
                  for s in ("built", "cached", "failed", "cancelled", "skipped")}
        parts = [f"{n} {paint(done if s == 'built' else s, out)}" for s, n in counts.items() if n]
        print(f"polybuild: {', '.join(parts) or 'nothing to do'} in {_wall_time()}", file=out)
        _print_artifacts([(str(a.path.relative_to(root)), a.size, a.sha256) for a in artifacts])
        if outcome.report_path:
            print(f"  report: {outcome.report_path.relative_to(root)}", file=out)
    # a refusal is a config or usage problem to fix, even when other tasks failed too
    code = EXIT_USAGE if outcome.refused else 0 if outcome.ok else 1
    if json_mode:
        from polybuild.execute.progress import emit, summary_event

        emit(summary_event((r.status for r in outcome.results), len(outcome.plan.skipped), len(artifacts), code,
                           time.monotonic() - _started, str(outcome.report_path) if outcome.report_path else None))
    return code


def _cmd_graph(args: argparse.Namespace) -> int:
    from polybuild import api
    from polybuild.graph import render

    loaded = _load(args)
    for note in loaded.ws.notes:
        print(f"note: {note}", file=sys.stderr)
    print(render(loaded.ws, loaded.dag, api.select(loaded, args.targets, dependents=args.dependents), args.format))
    return 0


def _cmd_affected(args: argparse.Namespace) -> int:
    import json

    from polybuild.cache.affected import affected

    loaded = _load(args)
    found = affected(loaded.ws, loaded.dag, args.since)
    if args.json:
        print(json.dumps({"since": found.since, "base": found.base, "changed_files": found.changed_files,
                          "targets": found.targets}, indent=2))
    else:
        print(f"affected since {found.described}", file=sys.stderr)
        print("\n".join(found.targets))
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from polybuild import api

    loaded = _load(args)
    print(api.explain(loaded, args.target, variants=args.variant, platforms=args.platform))
    return 0


def _cmd_cache(args: argparse.Namespace) -> int:
    from polybuild import api

    store = api.local_store(_load(args))
    if args.cache_command == "stats":
        stats = store.stats()
        if args.json:
            import json

            print(json.dumps({"root": str(store.root), "entries": stats.entries, "blobs": stats.blobs,
                              "bytes": stats.bytes}, indent=2))
            return 0
        print(f"cache: {store.root}\n  entries: {stats.entries}\n  blobs: {stats.blobs}\n"
              f"  size: {stats.bytes:,} bytes")
        return 0
    entries, blobs = store.gc(args.max_size)
    print(f"removed {entries} entries and {blobs} blobs; {store.stats().bytes:,} bytes remain in {store.root}")
    return 0


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name:
            raise UserError(f"{flag} {value!r} is not NAME=VALUE")
        pairs[name] = rest
    return pairs


def _cmd_container(args: argparse.Namespace) -> int:
    import json

    from polybuild import api

    if args.container_command == "promote":
        print(json.dumps(api.promote(args.src, args.dst, args.insecure)))
        return 0
    loaded = _load(args)
    image_id = api.image_target(loaded, args.image).id
    loaded = api.with_image_options(
        loaded, image_id, vars=_pairs(getattr(args, "var", []), "--var"), target=getattr(args, "target", None),
        platforms=args.platform if isinstance(args.platform, list) else [args.platform] if args.platform else [],
        tags=getattr(args, "tag", []),
        build_args=_pairs(getattr(args, "build_arg", []), "--build-arg"), no_cache=getattr(args, "no_cache", False))
    if args.container_command == "render":
        return _render(loaded, args)
    json_mode = getattr(args, "json", False)
    outcome = api.build(loaded, [image_id], jobs=getattr(args, "jobs", None), json_mode=json_mode,
                        cache=api.CacheOptions(enabled=not getattr(args, "no_cache", False)),
                        output_logs=getattr(args, "output_logs", None))
    code = _finish(loaded, outcome, json_mode, done="built")
    if code == 0 and (args.container_command == "push" or args.push):
        for pushed in api.push_image(loaded, outcome, [] if args.container_command == "build" else args.tag,
                                     args.insecure):
            print(f"pushed {pushed['ref']}@{pushed['digest']}", file=sys.stderr)
    return code


def _render(loaded, args: argparse.Namespace) -> int:
    from polybuild import api

    rendered = api.render_image(loaded, args.image, args.platform)
    if args.output:
        from polybuild.support.fs import write_atomic

        write_atomic(args.output, rendered.text)
    else:
        print(rendered.text, end="")
    if not args.check:
        return 0
    from polybuild.container.lint import check

    problems = check(rendered, api.image_target(loaded, args.image).info.spec["allow-latest"])
    for problem in problems:
        print(f"{problem}", file=sys.stderr)
    return 1 if problems else 0


def _cmd_deny(args: argparse.Namespace) -> int:
    import json

    found = _license_scan(_load(args).ws, fetch=args.fetch).violations()
    denied = [v for v in found if v.severity == "deny"]
    if args.json:
        print(json.dumps([{"check": v.check, "severity": v.severity, "message": v.message,
                           "expression": v.expression, "package": v.package and {
                               "ecosystem": v.package.ecosystem, "name": v.package.name,
                               "version": v.package.version, "purl": v.package.purl,
                               "pulled_in_by": [list(c) for c in v.package.dependents]}} for v in found], indent=2))
    else:
        for v in found:
            print(v.describe(), file=sys.stderr)
        warned = len(found) - len(denied)
        print(f"polybuild: deny: {len(denied)} errors, {warned} warnings", file=sys.stderr)
    return 1 if denied else 0


def _license_scan(ws: Workspace, *, fetch: str | None) -> Scan:
    """The license pass. The policy is read first, so that a bad deny.toml stops it before the inventory, and its
    notes (an empty policy, keys polybuild does not act on) come first, one line each."""
    from polybuild.licenses.exclusions import exclusions
    from polybuild.licenses.policy import load_policy
    from polybuild.licenses.scan import scan

    conf = ws.config["licenses"]
    policy = load_policy(ws.root / conf["policy"], display=conf["policy"])
    for note in [*policy.notes, *exclusions(ws).notes()]:
        print(f"note: {note}", file=sys.stderr)
    return scan(ws, fetch=fetch, policy=policy)


def _cmd_attributions(args: argparse.Namespace) -> int:
    from polybuild.licenses.scan import attribution_files, stale
    from polybuild.support.fs import write_atomic

    loaded = _load(args)
    ws = loaded.ws
    target = ws.resolve(args.target) if args.target else None
    directory = args.dir or ws.root / ws.config["licenses"]["attributions-dir"]
    writing = not args.check and not args.force
    if writing:  # ATTRIBUTIONS.md is always written: refuse before a long scan
        _refuse_hand_written(["ATTRIBUTIONS.md"], directory)
    files = attribution_files(_license_scan(ws, fetch=args.fetch), target)
    if writing:
        _refuse_hand_written(files, directory)
    if args.check:
        from polybuild.licenses.attributions import hand_written

        foreign = hand_written(files, directory)
        outdated = stale(files, directory)
        for name in outdated:
            why = "was not written by polybuild" if name in foreign else "is out of date"
            print(f"polybuild: {name} {why}", file=sys.stderr)
        if outdated:
            print("  hint: run `polybuild attributions` and commit the result", file=sys.stderr)
        return 1 if outdated else 0
    for name, content in sorted(files.items()):
        write_atomic(directory / name, content)
        print(f"wrote {directory / name}", file=sys.stderr)
    return 0


def _refuse_hand_written(names: Iterable[str], directory: Path) -> None:
    """Attribution files polybuild did not write (it knows its own header) are replaced only with --force."""
    from polybuild.licenses.attributions import hand_written

    foreign = hand_written(names, directory)
    if foreign:
        raise UserError(f"not overwriting {', '.join(foreign)} in {directory}: polybuild did not write "
                        f"{'them' if len(foreign) > 1 else 'it'} (hand-written attributions?)",
                        hint="pass --force to replace them, or --dir to write polybuild's files elsewhere")


def _cmd_sbom(args: argparse.Namespace) -> int:
    import json

    from polybuild.licenses.scan import sbom

    ws = _load(args).ws
    target = ws.resolve(args.target) if args.target else None
    text = json.dumps(sbom(_license_scan(ws, fetch=args.fetch), args.format, target), indent=2) + "\n"
    if args.output:
        from polybuild.support.fs import write_atomic

        write_atomic(args.output, text)
    else:
        print(text, end="")
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    import json

    from polybuild.cli import doctor

    loaded = _load(args)
    found = doctor.checks(loaded)
    print(json.dumps(doctor.as_json(loaded, found), indent=2) if args.json else doctor.render(loaded, found))
    return 1 if doctor.missing(found) else 0


def _cmd_config_reference(args: argparse.Namespace) -> int:
    if args.json_schema:
        import json

        from polybuild.config.model import SCHEMA, config_prefix
        from polybuild.support.schema import json_schema

        prefix = config_prefix(Path(args.json_schema))
        title = f"polybuild config ({'[' + '.'.join(prefix) + '] in ' if prefix else ''}{args.json_schema})"
        print(json.dumps(json_schema(SCHEMA, title, prefix), indent=2))
        return 0
    if args.deny:
        from polybuild.licenses.policy import CLARIFY, EXCEPTION, SCHEMA
        from polybuild.support.schema import document

        print(document(SCHEMA, "deny.toml").replace("[deny.toml.", "[") + document(EXCEPTION, "licenses.exceptions")
              + document(CLARIFY, "licenses.clarify"), end="")
        return 0
    from polybuild.config.model import reference

    print(reference(), end="")
    return 0


def _cmd_version(args: argparse.Namespace) -> int:
    from polybuild.versioning import groups, stamp
    from polybuild.versioning.convert import parse_version

    if args.version_command == "git" or (args.version_command == "set" and args.from_git):
        from polybuild.config.model import find_root
        from polybuild.versioning.gitversion import from_git

        derived = from_git(find_root(Path(args.directory)))
        if args.version_command == "git":
            print(_json({"pep440": derived.pep440, "semver": derived.semver}) if args.json
                  else f"{derived.pep440} (PEP 440), {derived.semver} (SemVer)")
            return 0
        args.value = derived.pep440
    if args.version_command == "set" and not args.value:
        raise UserError("version set needs a VERSION or --from-git")
    new = parse_version(args.value) if args.version_command == "set" else None  # bad input fails before loading
    ws = _load(args).ws
    if new is not None:
        changed = stamp.stamp(ws, new, args.group)
        for p in changed:
            print(f"{ws.rel(p.file)}:{p.line}: {p.label}: {p.found} -> {p.expected(new)}")
        print(f"polybuild: stamped {len(changed)} place(s)", file=sys.stderr)
        return 0
    if args.version_command == "check":
        mismatches = stamp.check(ws)
        if args.json:
            print(_json({"ok": not mismatches, "mismatches": [
                {**_place(ws, m.place), "expected": m.expected, "group": m.group} for m in mismatches]}))
            return 1 if mismatches else 0
        for m in mismatches:
            print(m.describe(ws))
        if not mismatches:
            print(f"polybuild: version check: {_agreement(groups.resolve(ws))}", file=sys.stderr)
        return 1 if mismatches else 0
    if args.json:
        print(_json(_versions_json(ws, groups.resolve(ws))))
        return 0
    _show_versions(ws, groups.resolve(ws))
    return 0


def _json(data: object) -> str:
    import json

    return json.dumps(data, indent=2)


def _place(ws: Workspace, place: Place) -> dict[str, object]:
    return {"file": ws.rel(place.file), "line": place.line, "label": place.label, "found": place.found}


def _versions_json(ws: Workspace, found: Groups) -> dict[str, object]:
    """`version --json`: each version group's version and places, the Go stamps and the excluded packages."""
    from polybuild import builders

    out = []
    for group in found.groups.values():
        version = found.version(group)
        out.append({"name": group.name, "lockstep": group.lockstep,
                    "version": {"pep440": version.pep440, "semver": version.semver} if version else None,
                    "places": [_place(ws, p) for p in group.places]})
    go_stamps = {t.id: found.go_stamp(t.id) for t in sorted(ws.targets.values(), key=lambda t: t.id)
                 if t.kind == "go" and t.builder and builders.get(t.builder).stamps_version}
    return {"groups": out, "go_stamps": go_stamps, "excluded": sorted(found.excluded)}


def _agreement(found: Groups) -> str:
    """What a passing `version check` checked: how many places agree on each group's version."""
    said = []
    for group in found.groups.values():
        version = found.version(group)
        if version is not None and group.places:
            n = len(group.places)
            spelled = version.pep440 if version.pep440 == version.semver else f"{version.pep440} ({version.semver})"
            said.append(f"{n} place{'s' if n > 1 else ''} agree{'' if n > 1 else 's'} on {spelled}"
                        + ("" if group.lockstep else f" (version group {group.name})"))
    return "; ".join(said) or "no version is declared, nothing to check"


def _show_versions(ws, found) -> None:
    """The workspace version, every place of each version group, the Go stamps and the excluded packages."""
    variable = ws.config["go"]["version-variable"]
    from polybuild import builders

    go_modules = sorted(t.id for t in ws.targets.values()
                        if t.kind == "go" and t.builder and builders.get(t.builder).stamps_version)
    for group in found.groups.values():
        version = found.version(group)
        spelled = f"{version.pep440} (PEP 440), {version.semver} (SemVer)" if version else "no version declared"
        if group.lockstep:
            print(f"workspace version: {spelled}")
        elif group.places:
            print(f"version group {group.name}: {spelled}")
        for p in group.places:
            print(f"  {ws.rel(p.file)}:{p.line}: {p.label}: {p.found}")
        if version or group.lockstep:
            for target_id in (m for m in go_modules if found.of(m) is group):
                print(f"  {target_id}: -ldflags -X {variable}={found.go_stamp(target_id)} (derived from the "
                      f"{'workspace' if group.lockstep else 'group'} version)")
    if found.excluded:
        print(f"excluded from versioning: {', '.join(sorted(found.excluded))}")


_COMMANDS = {
    "build": _cmd_build,
    "run": _cmd_run,
    "graph": _cmd_graph,
    "explain": _cmd_explain,
    "affected": _cmd_affected,
    "cache": _cmd_cache,
    "container": _cmd_container,
    "deny": _cmd_deny,
    "attributions": _cmd_attributions,
    "sbom": _cmd_sbom,
    "doctor": _cmd_doctor,
    "config-reference": _cmd_config_reference,
    "version": _cmd_version,
}
