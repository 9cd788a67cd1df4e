"""Colour on a terminal, for the status words only (built, cached, failed, skipped, error:, warning:, note:) and the
task prefix of a child's line (`--output-logs full`, one colour per task, as turbo does): the rest of a line stays
plain, so logs read and grep the same either way.

`--color auto` (the default) colours a terminal unless `NO_COLOR` is set (https://no-color.org); `FORCE_COLOR`
colours a pipe too (CI logs render ANSI colours), and `--color always|never` overrides both."""

from __future__ import annotations

import os
from typing import TextIO

CHOICES = ("auto", "always", "never")
OUTPUT_LOGS = ("full", "errors-only", "none")  # what a run shows of its children's output: --output-logs
_SGR = {"done": "32", "built": "32", "cached": "36", "failed": "1;31", "FAILED": "1;31", "error:": "1;31",
        "stopped": "33", "cancelled": "33", "skipped": "33", "warning:": "1;33", "note:": "1;36"}
_PREFIXES = ("36", "35", "34", "33", "32", "96", "95", "94")  # cyan, magenta, blue, yellow, green, bright ones
_choice = "auto"


def set_choice(choice: str) -> None:
    """The `--color` option, given once at start-up."""
    global _choice
    _choice = choice


def colours(stream: TextIO) -> bool:
    """Whether what is written to `stream` gets colour."""
    if _choice != "auto":
        return _choice == "always"
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return stream.isatty() and os.environ.get("TERM") != "dumb"


def paint(word: str, stream: TextIO) -> str:
    """`word` in its colour when `stream` gets colour; a word without a colour stays as it is."""
    code = _SGR.get(word)
    return f"\x1b[{code}m{word}\x1b[0m" if code and colours(stream) else word


def paint_first(line: str, stream: TextIO) -> str:
    """A line whose first word is a status word (`error: ...`, `note: ...`) with that word painted."""
    word, space, rest = line.partition(" ")
    return paint(word, stream) + space + rest


def tint(text: str, key: str, stream: TextIO) -> str:
    """`text` in the colour `key` always gets (the same task, the same colour) when `stream` gets colour."""
    if not colours(stream):
        return text
    import zlib

    return f"\x1b[{_PREFIXES[zlib.crc32(key.encode()) % len(_PREFIXES)]}m{text}\x1b[0m"
