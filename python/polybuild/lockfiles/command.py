"""Command-line entry (registered in `polybuild.cli.FEATURE_COMMANDS`)."""

from __future__ import annotations

import argparse


def register(sub, parser_class: type[argparse.ArgumentParser]) -> None:
    """Add this feature's command to the `polybuild` parser."""
