"""TOML reading with source locations, so every config error can name `file:line`.

`tomllib` gives values but no positions; `locate` recovers the line of a key path by scanning table headers and
key lines, which is exact for the way people write manifests (one key per line, inline tables on one line).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polybuild.support.errors import ConfigError

_BARE_OR_QUOTED = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_DOTTED = rf"{_BARE_OR_QUOTED}(?:\s*\.\s*{_BARE_OR_QUOTED})*"
_HEADER = re.compile(rf"^\s*\[\[?\s*({_DOTTED})\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(rf"^\s*({_DOTTED})\s*=")
_PART = re.compile(_BARE_OR_QUOTED)
_DECODE_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


def _split_dotted(dotted: str) -> list[str]:
    return [p.strip("\"'") for p in _PART.findall(dotted)]


@dataclass
class TomlFile:
    """A parsed TOML document plus what is needed to point at its keys."""

    path: Path
    data: dict[str, Any]
    text: str = field(repr=False)
    display: str = ""

    def line_of(self, keypath: tuple[str, ...] | list[str]) -> int | None:
        """The line defining `keypath`, or of its closest defined ancestor."""
        return locate(self.text, list(keypath))

    def error(self, keypath: tuple[str, ...] | list[str], message: str, hint: str | None = None) -> ConfigError:
        return ConfigError(message, file=self.display or str(self.path), line=self.line_of(keypath), hint=hint)


def load(path: Path, display: str | None = None) -> TomlFile:
    """Parse `path`; malformed TOML becomes a ConfigError naming file:line:col."""
    shown = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=shown) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason})", file=shown) from None
    return parse(text, path, shown)


def parse(text: str, path: Path, display: str) -> TomlFile:
    """Parse TOML text read from somewhere other than a plain file (a git revision, a lock snapshot)."""
    text = text.removeprefix("\ufeff")  # a UTF-8 byte order mark, as some Windows editors write: not content
    try:
        data = tomllib.loads(text)
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise ConfigError("invalid TOML: arrays or inline tables nested too deeply", file=display) from None
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        pos = _DECODE_POS.search(msg)
        where = f"{display}:{pos[1]}:{pos[2]}" if pos else display
        reason = _DECODE_POS.sub("", msg).strip()
        raise ConfigError(f"invalid TOML: {reason}", file=where) from None
    return TomlFile(path=path, data=data, text=text, display=display)


def locate(text: str, keypath: list[str]) -> int | None:
    """Line number (1-based) where `keypath` is defined; falls back to the deepest defined ancestor."""
    best_line, best_depth = None, 0
    table: list[str] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line)
        if header:
            table = _split_dotted(header[1])
            full = table
        else:
            key = _KEY.match(line)
            if not key:
                continue
            full = table + _split_dotted(key[1])
            full = full + _inline_keys(line[key.end():], keypath[len(full):])
        depth = _common_prefix(full, keypath)
        if depth == len(keypath) < len(full):  # `[a.b.c]` (or `a.b.c = 1`) is where `a.b` is first defined
            return lineno
        if depth == len(full) and depth > best_depth:
            best_line, best_depth = lineno, depth
            if depth == len(keypath):
                return lineno
    return best_line


def _inline_keys(rest: str, wanted: list[str]) -> list[str]:
    """Follow `wanted` into inline tables written on the same line (`x = { a = { b = 1 } }`)."""
    found: list[str] = []
    for key in wanted:
        m = re.search(rf"""[{{,]\s*(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')\s*=""", rest)
        if not m:
            break
        found.append(key)
        rest = rest[m.end():]
    return found


def _common_prefix(a: list[str], b: list[str]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
