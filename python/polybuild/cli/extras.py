"""Command-line entry (registered in `polybuild.cli.main.FEATURE_COMMANDS`)."""

from __future__ import annotations

import argparse


def register(sub, parser_class: type[argparse.ArgumentParser]) -> None:
    """Add this feature's command to the `polybuild` parser."""
    parser = sub.add_parser("check-extras", help="install each built wheel per extras set in fresh environments and "
                            "check the base install, extra-only packages and commands that need an extra")
    parser.add_argument("packages", nargs="*", metavar="PACKAGE",
                        help="Python packages (target or distribution names; default: all)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    parser.add_argument("--installer", choices=("uv", "pip"),
                        help="how environments are made (default: uv when on PATH, else pip)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Build the packages' wheels (a cache hit when built), then check them; 0 ok, 1 problems, 2 bad input."""
    import json
    import sys
    from pathlib import Path

    from polybuild import api
    from polybuild.execute.report import failure_details
    from polybuild.extras import check_extras
    from polybuild.extras.check import python_target
    from polybuild.support.errors import UserError

    loaded = api.load(Path(args.directory), args.config)
    targets = [python_target(loaded, n) for n in args.packages]
    if not targets and not any(t.kind == "py" for t in loaded.ws.targets.values()):
        raise UserError(f"no Python packages under {loaded.ws.root}", hint="check-extras checks built wheels")
    names = [t.id for t in targets] or sorted(t.id for t in loaded.ws.targets.values() if t.kind == "py")
    outcome = api.build(loaded, names)
    if not outcome.ok:
        for result in outcome.results:
            if result.status == "failed":
                print(failure_details(result, loaded.ws.root), file=sys.stderr)
        print("polybuild: check-extras: the build failed; nothing was checked", file=sys.stderr)
        return 1
    wheels = [a.path for r in outcome.results for a in r.artifacts if a.path.suffix == ".whl"]
    report = check_extras(loaded, wheels, [t.id for t in targets], installer=args.installer)
    if args.json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))
    else:
        for line in report.checked:
            print(f"  checked: {line}", file=sys.stderr)
        for problem in report.problems:
            print(f"error: {problem}", file=sys.stderr)
        envs = len(report.durations)
        total = sum(report.durations.values())
        print(f"polybuild: check-extras: {envs} environments ({total:.1f}s of work), "
              f"{len(report.problems)} problem{'' if len(report.problems) == 1 else 's'}", file=sys.stderr)
    return 1 if report.problems else 0
