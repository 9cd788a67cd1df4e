"""Command-line entry (registered in `polybuild.cli.main.FEATURE_COMMANDS`): `polybuild init [DIR]`.

It discovers the repository as every command does (config/ and workspace/, with the defaults), and writes only the
config that discovery cannot infer from the manifests, or none:

* `name`, when no package sits at the root (attributions and SBOMs would otherwise be named after whatever the
  checkout's directory is called);
* `[targets.<t>] dist-subdir`, for targets that would publish the same dist path (two Go modules that each build
  `server`, a crate and a module with a binary of one name): the build would refuse to start;
* `[targets.<t>] cgo-stage = true`, for a cgo preamble that links a workspace crate's `.a` by a path (dynamo's
  inference gateway): the build would refuse it.

The config goes into the root pyproject.toml as `[tool.polybuild]` when that file is the repository's tool config
(it has `[project]` or `[tool]`) and appending the table keeps it valid and otherwise unchanged (text appended, so
comments and formatting stay); else into a new polybuild.toml. `dist/` is added to .gitignore; the state
directory ignores itself (support/statedir).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from polybuild.support.errors import ConfigError, UserError

if TYPE_CHECKING:
    from polybuild.config.model import Config
    from polybuild.graph import TargetGraph
    from polybuild.workspace import Target, Workspace

HEADER = ("# Written by `polybuild init`: only what discovery cannot read from the manifests.\n"
          "# Every key: `polybuild config-reference` (docs/config-reference.md).\n")


def register(sub, parser_class: type[argparse.ArgumentParser]) -> None:
    """Add `polybuild init` to the `polybuild` parser."""
    init = sub.add_parser(
        "init", help="set up polybuild in a repository: the smallest config it needs (often none), dist/ ignored",
        description="Discovers the repository's targets from its manifests and writes only the config they do not "
        "tell (a workspace name when no package sits at the root, a dist-subdir for targets that would publish "
        "the same file, cgo-stage for a cgo preamble linking a Rust library by path): into [tool.polybuild] of "
        "the root pyproject.toml when that is the repository's tool config, else polybuild.toml. Adds dist/ to "
        ".gitignore, then prints the graph and the next commands. An existing config is never overwritten.")
    init.add_argument("root", nargs="?", type=Path, metavar="DIR",
                      help="the repository's root (default: the current directory, or -C's)")
    init.add_argument("--check", action="store_true", help="say what would be written, and write nothing")
    init.set_defaults(handler=_run)


@dataclass
class Proposal:
    """The config a repository needs: top-level keys and per-target tables, each value with why it is needed."""

    top: dict[str, tuple[object, str]] = field(default_factory=dict)
    targets: dict[str, dict[str, tuple[object, str]]] = field(default_factory=dict)

    def set_target(self, key: str, name: str, value: object, why: str) -> None:
        self.targets.setdefault(key, {})[name] = (value, why)

    def render(self, prefix: str) -> str:
        """The TOML text, each key commented with its reason; `prefix` is "tool.polybuild" in a pyproject.toml."""
        head = f"[{prefix}]\n" if prefix else ""
        lines = [HEADER + head]
        lines += [f"{_key(k)} = {_value(v)}  # {why}\n" for k, (v, why) in self.top.items()]
        for target, keys in self.targets.items():
            lines.append(f"\n[{prefix + '.' if prefix else ''}targets.{_key(target)}]\n")
            lines += [f"{_key(k)} = {_value(v)}  # {why}\n" for k, (v, why) in keys.items()]
        return "".join(lines)

    def __bool__(self) -> bool:
        return bool(self.top or self.targets)


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def _value(value: object) -> str:
    """A TOML value: JSON's string escapes are TOML's, and booleans are spelled alike."""
    return json.dumps(value)


def _run(args: argparse.Namespace) -> int:
    from polybuild.config.model import load_config

    if args.config is not None:
        raise UserError("init decides where the config goes (pyproject.toml or polybuild.toml): --config is for "
                        "the other commands", hint="run `polybuild init` without --config")
    root = (args.root or Path(args.directory)).resolve()
    if not root.is_dir():
        raise UserError(f"not a directory: {args.root or args.directory}")
    _refuse_configured(root)
    ws, dag = _discover(load_config(root))
    if not [t for t in ws.targets.values() if t.kind != "image"]:
        raise UserError(f"no packages found in {root}: polybuild reads Cargo.toml, pyproject.toml, go.mod and go.work",
                        hint="run it at the root of a repository holding Rust crates, Python packages or Go modules")
    proposal = propose(ws)
    if proposal:
        destination, text = _config_text(root, proposal)
        ws, dag = _validated(root, ws, destination, text)  # the config must load before it is written
        in_pyproject = destination.name == "pyproject.toml"
        _say(f"{'would write' if args.check else 'wrote'} {destination.name}"
             f"{' ([tool.polybuild] appended)' if in_pyproject else ''}:")
        print(proposal.render("tool.polybuild" if in_pyproject else ""), end="", file=sys.stderr)
        if not args.check:
            _write_keeping_mode(destination, text)
    else:
        _say("no config needed: discovery reads everything from the manifests (zero-config); nothing written")
    _ignore_outputs(ws, check=args.check)
    _print_graph(ws, dag)
    _print_next(ws)
    return 0


def _say(message: str) -> None:
    print(f"polybuild: init: {message}", file=sys.stderr)


def _configured(directory: Path) -> Path | None:
    """The file holding polybuild config in `directory`, if any (config/'s own reader decides)."""
    from polybuild.config.model import config_file

    found = config_file(directory) if directory.is_dir() else None
    if found is None:
        return None
    doc, prefix = found
    if prefix and not isinstance(doc.data.get("tool", {}).get("polybuild"), dict):
        return None  # a pyproject.toml without [tool.polybuild]
    return doc.path


def _refuse_configured(root: Path) -> None:
    """An existing config is the user's: init neither overwrites nor merges into it. Nor does it start a workspace
    inside a configured one (that directory would leave the enclosing workspace's build)."""
    existing = _configured(root)
    if existing is not None:
        raise UserError(f"{existing} already configures polybuild here; init writes a first config only",
                        hint="edit it (`polybuild config-reference` lists every key; `polybuild graph` shows what "
                             "discovery finds), or remove polybuild's table from it and run `polybuild init` again")
    from polybuild.config.model import find_root

    enclosing = find_root(root)  # as every other command run here would find its workspace
    outer = _configured(enclosing) if enclosing != root else None
    if outer is not None:
        raise UserError(f"{root} is inside the workspace configured by {outer}: a config here would make it a "
                        "workspace of its own, left out of that one's builds",
                        hint=f"run `polybuild init` in {outer.parent} (or not at all: that workspace already has "
                             "its config)")


def _discover(config: Config) -> tuple[Workspace, TargetGraph]:
    from polybuild.graph import build_graph
    from polybuild.workspace import discover

    ws = discover(config)
    return ws, build_graph(ws)


def propose(ws: Workspace) -> Proposal:
    """What the zero-config discovery of `ws` leaves unsaid and a build or a license report needs."""
    from polybuild.builders.cgo import links_by_path
    from polybuild.licenses.scan import root_package

    proposal = Proposal()
    if root_package(ws) is None:
        proposal.top["name"] = (ws.root.name, "no package at the root to name attributions and SBOMs after")
    for subdir_of, path, first in _dist_clashes(ws):
        proposal.set_target(_table_key(ws, subdir_of), "dist-subdir", _subdir_name(ws, subdir_of),
                            f"{first.id} publishes dist/{path} too")
    for target in (t for t in ws.targets.values() if t.kind == "go"):
        links = links_by_path(target, ws.targets)
        if links:
            proposal.set_target(_table_key(ws, target), "cgo-stage", True,
                                f"{links[0].source} links lib{links[0].lib}.a by a path: build from a staged copy")
    return proposal


def _dist_clashes(ws: Workspace) -> list[tuple[Target, str, Target]]:
    """(target needing a dist-subdir, the path, the target keeping it) for targets that would publish one dist path:
    the first (by id) keeps the path, every other one gets a directory of its own."""
    from polybuild.plan import Task, dist_clashes
    from polybuild.support.platforms import host

    here = host()
    tasks = [Task(t.id, t, "build", t.builder, None, here) for t in ws.targets.values()
             if t.builder and t.kind != "image" and not t.left_out()]
    moved: dict[str, tuple[Target, str, Target]] = {}
    for path, first, task in dist_clashes(tasks):
        moved.setdefault(task.target.id, (task.target, path, first.target))
    return list(moved.values())


def _table_key(ws: Workspace, target: Target) -> str:
    """How `[targets.<key>]` names the target: its name when that names it alone, else its id (a crate and a
    Python package called alike, two Go modules named `prometheus`)."""
    from polybuild.workspace import BUILT_KINDS

    try:
        if ws.resolve(target.name, kinds=BUILT_KINDS) is target:
            return target.name
    except UserError:
        pass
    return target.id


def _subdir_name(ws: Workspace, target: Target) -> str:
    """The target's name when no other target has it, else its directory."""
    alike = [t for t in ws.targets.values() if t.name == target.name]
    return target.name if len(alike) == 1 else ws.rel(target.dir)


def _config_text(root: Path, proposal: Proposal) -> tuple[Path, str]:
    """Where the config goes, and that file's new content: the root pyproject.toml with [tool.polybuild] appended
    when it is the repository's Python or tool config and the appended table leaves everything else as it was;
    else a polybuild.toml."""
    from polybuild.support.tomlfile import load

    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        before = load(pyproject, "pyproject.toml").data
        if "project" in before or "tool" in before:
            text = _appended(pyproject, before, proposal)
            if text is not None:
                return pyproject, text
    return root / "polybuild.toml", proposal.render("")


def _appended(pyproject: Path, before: dict, proposal: Proposal) -> str | None:
    """The pyproject.toml's text (byte for byte, in its line endings) with the table after it, or None when the
    result would not parse or would change another key (a `tool` written as an inline table, ...)."""
    from polybuild.support.tomlfile import parse

    old = pyproject.read_bytes().decode("utf-8")
    newline = "\r\n" if "\r\n" in old else "\n"
    separator = "" if old.endswith(newline * 2) else newline if old.endswith(newline) else newline * 2
    text = old + separator + proposal.render("tool.polybuild").replace("\n", newline)
    try:
        after = parse(text, pyproject, "pyproject.toml").data
    except ConfigError:
        return None
    tool = after.get("tool", {})
    if tool.pop("polybuild", None) is None:
        return None
    if not tool and "tool" not in before:
        del after["tool"]
    return text if after == before else None


def _validated(root: Path, ws: Workspace, destination: Path, text: str) -> tuple[Workspace, TargetGraph]:
    """The workspace as the new config makes it, loaded from a copy in the state directory before the real file is
    written: a config that would not load is never written."""
    import tempfile

    from polybuild.config.model import load_config
    from polybuild.support.fs import write_atomic

    with tempfile.TemporaryDirectory(prefix="init-", dir=ws.config.state_dir) as tmp:
        candidate = Path(tmp) / destination.name
        write_atomic(candidate, text, durable=False)
        return _discover(load_config(root, candidate))


def _write_keeping_mode(path: Path, text: str) -> None:
    from polybuild.support.fs import write_atomic

    mode = os.stat(path).st_mode & 0o7777 if path.exists() else None
    write_atomic(path, text, mode=mode)


def _ignore_outputs(ws: Workspace, *, check: bool) -> None:
    """`/<dist-dir>/` in .gitignore unless git already ignores it; the state directory ignores itself (an older
    polybuild made it without its .gitignore: that is added here)."""
    from polybuild.support.statedir import ignore_itself

    dist = ws.config["dist-dir"].strip("/")
    if not _ignored(ws.root, dist):
        _add_line(ws.root / ".gitignore", f"/{dist}/", check)
    state = ws.config.state_dir
    if not (state / ".gitignore").exists() and not _ignored(ws.root, ws.rel(state)):
        _say(f"{'would write' if check else 'wrote'} {ws.rel(state)}/.gitignore (the state directory ignores itself)")
        if not check:
            ignore_itself(state)


def _ignored(root: Path, directory: str) -> bool:
    """Whether git ignores `directory` (outside git: whether .gitignore has a line for it)."""
    from polybuild.support.process import git

    try:
        answer = git(root, "check-ignore", "-q", "--no-index", "--", f"{directory}/", check=False).returncode
    except UserError:  # no git
        answer = 128
    if answer in (0, 1):  # ignored, not ignored; 128: not a git repository
        return answer == 0
    gitignore = root / ".gitignore"
    lines = gitignore.read_text(encoding="utf-8").splitlines() if gitignore.is_file() else []
    return any(line.strip().strip("/") == directory for line in lines)


def _add_line(gitignore: Path, line: str, check: bool) -> None:
    """Append `line` to .gitignore (created when missing), keeping its content and line endings."""
    old = gitignore.read_bytes().decode("utf-8") if gitignore.is_file() else ""
    newline = "\r\n" if "\r\n" in old else "\n"
    if any(existing.strip() == line for existing in old.splitlines()):
        return
    _say(f"{'would add' if check else 'added'} {line} to .gitignore")
    if not check:
        separator = newline if old and not old.endswith(("\n", "\r")) else ""
        _write_keeping_mode(gitignore, old + separator + line + newline)


def _print_graph(ws: Workspace, dag: TargetGraph) -> None:
    from polybuild.graph import render

    for note in ws.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"\n{len(ws.targets)} targets (`polybuild graph`):")
    print(render(ws, dag, set(ws.targets), "text"))


def _print_next(ws: Workspace) -> None:
    policy = ws.config["licenses"]["policy"]
    steps = [
        ("polybuild doctor", "the tools these targets need, found or how to install them"),
        ("polybuild build", f"build every target into {ws.config['dist-dir'].strip('/')}/"),
        ("polybuild run test", "each target's tests, against the artifacts just built"),
        ("polybuild ci matrix", "the GitHub Actions matrix of the targets a change affects (docs/ci.md)"),
        ("polybuild deny", f"dependencies against {policy}'s license policy" if (ws.root / policy).is_file()
         else f"dependencies' licenses (write a cargo-deny style {policy} first: docs/licenses.md)"),
        ("polybuild attributions", "ATTRIBUTIONS.md for what the artifacts ship"),
    ]
    width = max(len(command) for command, _ in steps)
    print("\nnext:")
    for command, what in steps:
        print(f"  {command:<{width}}  {what}")
