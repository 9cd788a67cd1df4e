"""`polybuild release VERSION [--dry-run]` (registered in `polybuild.cli.main.FEATURE_COMMANDS`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub, parser_class: type[argparse.ArgumentParser]) -> None:
    """Add `release` to the `polybuild` parser."""
    release = sub.add_parser(
        "release", help="check, build, verify, checksum and tag a release of the checked-out commit",
        description="Cut a release of HEAD, which must already carry VERSION in every manifest (`polybuild version "
        "set VERSION`, then commit). Stops at the first failing step: clean tree, version, lockfiles, licenses, "
        "build (SOURCE_DATE_EPOCH from the commit), wheel checks, extras isolation, SHA256SUMS and "
        "release-manifest.json, annotated tag vVERSION.")
    release.add_argument("version", metavar="VERSION", help="e.g. 1.2.0 or 1.2.0rc1 (PEP 440 or SemVer)")
    release.add_argument("--dry-run", action="store_true", help="every step but the tag")
    release.add_argument("--variant", action="append", default=[], metavar="NAME",
                         help="build only these variants (repeatable; default: every declared variant)")
    release.add_argument("--platform", action="append", default=[], metavar="OS/ARCH",
                         help="target platform (repeatable; default: the host)")
    release.add_argument("-j", "--jobs", type=int, metavar="N", help="parallel tasks (default: cores)")
    from polybuild.cli.main import output_logs_option

    output_logs_option(release)
    release.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from polybuild import api
    from polybuild.release.pipeline import Options, parse_release_version, release

    version = parse_release_version(args.version)  # a bad version fails before anything is loaded
    loaded = api.load(Path(args.directory), args.config)
    state = release(loaded, Options(version, args.dry_run, args.variant, args.platform, args.jobs,
                                     args.output_logs))
    what = "checked (dry run)" if args.dry_run else "released"
    print(f"polybuild: {version.pep440} {what}: {state.loaded.ws.config['dist-dir']}/SHA256SUMS, "
          f"{state.loaded.ws.config['dist-dir']}/release-manifest.json")
    return 0
