"""`polybuild completion SHELL`: print the completion script for bash, zsh or fish.

The scripts are generated from the parser when the wheel is built (hatch_build.py) and shipped in the package, so
neither a shell's start nor a TAB walks the parser: this command only reads a file. Run from a source tree, where
nothing was built, it generates the script instead.
"""

from __future__ import annotations

import argparse
from pathlib import Path

# The shipped script of each shell, named as each shell looks for it in its completion directory.
SCRIPTS = {"bash": "polybuild", "zsh": "_polybuild", "fish": "polybuild.fish"}
SHIPPED = Path(__file__).parent / "completions"


def register(sub, parser_class: type[argparse.ArgumentParser]) -> None:
    """Add `polybuild completion` to the `polybuild` parser."""
    completion = sub.add_parser(
        "completion", help="print the shell completion script for bash, zsh or fish",
        description="Print the completion script of a shell (commands, options and their values, target "
        "directories). Written once into the shell's completion directory (for zsh, one on $fpath before compinit "
        "runs), it costs nothing at the shell's start.")
    completion.add_argument("shell", choices=tuple(SCRIPTS), metavar="SHELL", help="bash, zsh or fish")
    completion.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    shipped = SHIPPED / SCRIPTS[args.shell]
    if shipped.is_file():
        print(shipped.read_text(encoding="utf-8"), end="")
        return 0
    from polybuild.cli.completion_scripts import script

    print(script(args.shell), end="")
    return 0
