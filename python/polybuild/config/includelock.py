"""polybuild.lock: the includes a composed config is made of, pinned by sha256 with a snapshot of each, and the
build tools polybuild provisions for the workspace, pinned by `uv pip compile --universal --generate-hashes`.

The file is TOML, written by polybuild only (atomically, keys sorted, so the same pins give the same bytes):

    version = 1
    composer = "polybuild.toml"

    [include.base]
    source = { path = "../shared/polybuild-base.toml" }
    file = "../shared/polybuild-base.toml"
    sha256 = "..."
    content = '''...'''

    [[tool]]
    requirements = ["build", "hatchling>=1.26"]
    python = ">=3.11"
    pins = '''...'''

A nested include is keyed `parent/child`; a git include also records the `commit` its `rev` resolved to. `composer`
is written when there are includes. A `[[tool]]` is one tool environment's requirement set with its pins, resolved
for every platform and for the Pythons `python` admits (config/toolpins.py reads and writes them).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from polybuild.support.errors import ConfigError

FORMAT = 1
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # what a literal string cannot hold (tab and newline it can)
_HEADER = ("# Written by polybuild: the includes {composer} is composed from, pinned. Do not edit it; accept a\n"
           "# changed include with `polybuild lock upgrade NAME`. Commit it next to {composer}.\n")
_TOOLS_HEADER = ("# Written by polybuild: the build tools it provisions, pinned for every machine. Do not edit it;\n"
                 "# re-resolve them with `polybuild lock upgrade --tools`. Commit it.\n")
_ALSO_TOOLS = ("# It pins the build tools polybuild provisions too: re-resolve them with\n"
               "# `polybuild lock upgrade --tools`.\n")


@dataclass(frozen=True)
class Descriptor:
    """An include as written in config: a file, or a file in a git repository at a revision."""

    path: str
    git: str | None = None
    rev: str | None = None

    def as_table(self) -> dict[str, str]:
        return {k: v for k, v in (("git", self.git), ("path", self.path), ("rev", self.rev)) if v is not None}

    def describe(self) -> str:
        return f"{self.path} from git {self.git} at {self.rev}" if self.git else self.path


@dataclass(frozen=True)
class Entry:
    """One locked include."""

    descriptor: Descriptor
    file: str  # where it was read, as messages show it
    sha256: str
    content: str
    commit: str | None = None  # git includes: the commit `rev` resolved to


@dataclass(frozen=True)
class ToolEntry:
    """The pins of one tool environment: its sorted requirements, the Pythons they were resolved for, and the
    universal `uv pip compile --generate-hashes` output."""

    requirements: tuple[str, ...]
    python: str  # a requires-python specifier (">=3.11")
    pins: str


@dataclass
class LockFile:
    composer: str | None
    entries: dict[str, Entry]
    tools: dict[tuple[str, ...], ToolEntry] = field(default_factory=dict)


def lock_path(config: Path) -> Path:
    """The lock of a config file: polybuild.lock next to a polybuild.toml or pyproject.toml, else `<stem>.lock`."""
    if config.name in ("polybuild.toml", "pyproject.toml"):
        return config.with_name("polybuild.lock")
    return config.with_suffix(".lock")


def read(path: Path, display: str) -> LockFile | None:
    """The lock at `path`, or None when there is none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the lock: {exc}", file=display) from None
    return parse(text, display)


def parse(text: str, display: str) -> LockFile:
    """Parse lock text; anything not written by a polybuild that understands it is a located error."""
    fix = "restore it from version control, or delete it to lock the includes as they are now"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not a valid lock file: {exc}", file=display, hint=fix) from None
    version = data.get("version")
    if version != FORMAT:
        hint = "upgrade polybuild" if isinstance(version, int) and version > FORMAT else fix
        raise ConfigError(f"lock format version {version!r} is not {FORMAT}", file=display, hint=hint)
    entries: dict[str, Entry] = {}
    tools: dict[tuple[str, ...], ToolEntry] = {}
    try:
        for name, e in data.get("include", {}).items():
            source = e["source"]
            entries[name] = Entry(Descriptor(source["path"], source.get("git"), source.get("rev")), e["file"],
                                  e["sha256"], e["content"], e.get("commit"))
        for t in data.get("tool", []):
            entry = ToolEntry(tuple(str(r) for r in t["requirements"]), str(t["python"]), str(t["pins"]))
            tools[entry.requirements] = entry
        composer = data["composer"] if entries or "composer" in data else None
        return LockFile(None if composer is None else str(composer), entries, tools)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"malformed lock file (missing or wrong {exc})", file=display, hint=fix) from None


def render(lock: LockFile) -> str:
    """The lock's text: deterministic, one table per include, sorted by name, then one per tool requirement set."""
    if lock.composer:
        header = _HEADER.format(composer=lock.composer) + (_ALSO_TOOLS if lock.tools else "")
    else:
        header = _TOOLS_HEADER
    out = [header, f"version = {FORMAT}"]
    if lock.composer:
        out.append(f"composer = {_string(lock.composer)}")
    for name in sorted(lock.entries):
        e = lock.entries[name]
        source = ", ".join(f"{k} = {_string(v)}" for k, v in e.descriptor.as_table().items())
        out += ["", f"[include.{_string(name)}]", f"source = {{ {source} }}", f"file = {_string(e.file)}"]
        if e.commit:
            out.append(f"commit = {_string(e.commit)}")
        out += [f"sha256 = {_string(e.sha256)}", f"content = {_string(e.content, multiline=True)}"]
    for key in sorted(lock.tools):
        t = lock.tools[key]
        out += ["", "[[tool]]", f"requirements = [{', '.join(_string(r) for r in t.requirements)}]",
                f"python = {_string(t.python)}", f"pins = {_string(t.pins, multiline=True)}"]
    return "\n".join(out) + "\n"


def write(path: Path, lock: LockFile) -> None:
    from polybuild.support.fs import write_atomic

    write_atomic(path, render(lock))


def _string(value: str, multiline: bool = False) -> str:
    """A TOML string that reads back as exactly `value`: a snapshot as written when a literal string can hold it,
    else a basic string with quotes, backslashes and control characters escaped."""
    if multiline and "'''" not in value and not value.endswith("'") and not _CONTROL.search(value):
        return f"'''\n{value}'''"
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif (ch == "\n" and multiline) or ch == "\t":
            out.append(ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    text = "".join(out)
    return f'"""\n{text}"""' if multiline else f'"{text}"'
