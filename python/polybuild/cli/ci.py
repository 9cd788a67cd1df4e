"""Command-line entry (registered in `polybuild.cli.main.FEATURE_COMMANDS`): `polybuild ci matrix`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub, parser_class: type[argparse.ArgumentParser]) -> None:
    """Add this feature's command to the `polybuild` parser."""
    ci = sub.add_parser("ci", help="CI integration: the GitHub Actions matrix of affected targets")
    actions = ci.add_subparsers(dest="ci_command", metavar="ACTION", parser_class=parser_class, required=True)
    matrix = actions.add_parser("matrix", help="print the matrix `include` JSON (and write it to $GITHUB_OUTPUT)")
    matrix.add_argument("--since", metavar="REF", help="only the targets affected by changes since REF")
    matrix.add_argument("--platform", "--platforms", dest="platforms", nargs="+", action="extend", default=[],
                        metavar="OS/ARCH", help="platforms, repeatable like every command's --platform (default: "
                        "[ci] platforms, else the workspace's)")
    matrix.add_argument("--variant", "--variants", dest="variants", nargs="+", action="extend", default=[],
                        metavar="NAME", help="variants (default: [ci] variants, else the default variant)")
    matrix.add_argument("--shard-size", type=int, metavar="N", help="at most N targets per job (default: [ci])")
    matrix.add_argument("--json", action="store_true",
                        help="accepted as on every command with machine output: the matrix is always JSON")
    matrix.set_defaults(handler=run_matrix)


def run_matrix(args: argparse.Namespace) -> int:
    import json

    from polybuild import api
    from polybuild.ci import github
    from polybuild.ci.matrix import compute

    loaded = api.load(Path(args.directory), args.config)
    found = compute(loaded, since=args.since, platforms=_split(args.platforms), variants=_split(args.variants),
                    shard_size=args.shard_size)
    text = json.dumps(found.as_json(), sort_keys=False, separators=(",", ":"))
    print(text)
    github.set_outputs({"matrix": text, "empty": "true" if found.empty else "false",
                        "jobs": str(len(found.include)), "targets": " ".join(found.targets)})
    since = f" affected since {found.since}" if found.since else ""
    print(f"polybuild: {len(found.include)} jobs for {len(found.targets)} targets{since}", file=sys.stderr)
    return 0


def _split(values: list[str]) -> list[str]:
    """`--platforms linux/amd64,linux/arm64` and `--platforms linux/amd64 linux/arm64` mean the same."""
    return [v for value in values for v in value.split(",") if v]
