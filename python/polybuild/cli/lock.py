"""Command-line entry (registered in `polybuild.cli.main.FEATURE_COMMANDS`): `polybuild lock ACTION`.

Each action is one `_<action>_parser` function adding its subparser and handler; `register` lists them.
"""

from __future__ import annotations

import argparse


def register(sub, parser_class: type[argparse.ArgumentParser]) -> None:
    """Add this feature's command to the `polybuild` parser."""
    lock = sub.add_parser("lock", help="check and upgrade the workspace's lockfiles (Cargo.lock, go.sum, uv.lock, "
                          "polybuild.lock)")
    actions = lock.add_subparsers(dest="lock_command", metavar="ACTION", parser_class=parser_class, required=True)
    _check_parser(actions)
    _upgrade_parser(actions)


def _check_parser(actions) -> None:
    check = actions.add_parser(
        "check", help="exit 1 listing every stale lockfile and every locked package with no wheel or sdist for a "
        "target platform",
        description="Every Cargo.lock is up to date (cargo update --workspace --locked), every go.sum tidy and "
        "verified, every uv.lock fresh with the pinned uv (uv lock --check), and every package a uv.lock installs "
        "on each platform and Python has a compatible wheel or an sdist; the build tools pinned in polybuild.lock "
        "cover every requirement set the workspace provisions. Checks that passed before on the same files, tools "
        "and platform are not run again.")
    check.add_argument("--platform", action="append", default=[], metavar="OS/ARCH", dest="platforms",
                       help="a target platform (repeatable); default: the config's platforms, else the host")
    check.add_argument("--python", action="append", default=[], metavar="X.Y", dest="pythons",
                       help="a target Python version (repeatable); default: lockfiles.python, else the interpreter's")
    check.add_argument("--json", action="store_true", help="print the report as JSON (problems, notes, digests)")
    check.add_argument("--no-cache", action="store_true",
                       help="re-run every check, even those that passed before on the same files, tools and platform")
    check.set_defaults(handler=_run_check)


def _run_check(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from polybuild.api import load
    from polybuild.lockfiles import preflight

    report = preflight(load(Path(args.directory), args.config), args.platforms, args.pythons,
                       use_cache=not args.no_cache)
    if args.json:
        print(json.dumps({"ok": report.ok, "checked": report.checked, "problems": report.problems,
                          "notes": report.notes, "digests": report.digests, "remembered": report.remembered},
                         indent=2, sort_keys=True))
        return 0 if report.ok else 1
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    for problem in report.problems:
        print(problem)
    unchanged = f" ({len(report.remembered)} unchanged since they passed)" if report.remembered else ""
    summary = (f"{len(report.digests)} lockfile(s){unchanged}, wheels checked for "
               f"{'; '.join(report.checked) or 'no platform'}")
    if report.problems:
        print(f"lock check: {len(report.problems)} problem(s) in {summary}", file=sys.stderr)
        return 1
    print(f"lock check: ok: {summary}")
    return 0


def _upgrade_parser(actions) -> None:
    upgrade = actions.add_parser(
        "upgrade", help="re-pin in polybuild.lock: changed config includes, or the provisioned build tools (--tools)",
        description="Re-read the named `include`s of polybuild's config (with everything they include; git "
        "includes at their `rev` now) and record their new content in polybuild.lock (see "
        "docs/config-composition.md); with --tools, re-resolve the build tools polybuild provisions (the newest "
        "versions [build-system] requires, maturin and pytest allow) and pin them there (see docs/lockfiles.md).")
    upgrade.add_argument("names", nargs="*", metavar="NAME", help="an include's name (see polybuild.lock)")
    upgrade.add_argument("--all", action="store_true", help="every include, and the build tools")
    upgrade.add_argument("--tools", action="store_true", help="the build tools polybuild provisions")
    upgrade.set_defaults(handler=_run_upgrade)


def _run_upgrade(args: argparse.Namespace) -> int:
    from pathlib import Path

    from polybuild.config.model import find_root, load_config
    from polybuild.support.errors import UserError

    if not (args.names or args.all or args.tools) or (args.names and args.all):
        raise UserError("name the includes to upgrade, or pass --all or --tools",
                        hint="e.g. `polybuild lock upgrade base`, `polybuild lock upgrade --tools`")
    root = args.config.resolve().parent if args.config else find_root(Path(args.directory))
    if args.names or args.all:
        config = load_config(root, args.config, upgrade=frozenset(args.names))
        if not config["include"] and not args.all:
            raise UserError(f"{config.display} has no `include`: there is nothing to upgrade")
        if config["include"] and not config.lock_changes:
            print(f"{config.display}: every include is already locked as it is now")
    if args.tools or args.all:
        from polybuild.api import load
        from polybuild.lockfiles import tools

        for line in tools.upgrade(load(root, args.config)) or ["no build tools to pin"]:
            print(line)
    return 0
