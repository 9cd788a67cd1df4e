"""Go discovery: modules from go.work or every go.mod; `main` packages are the module's binaries.

Package clauses are read from the files directly (no `go list`), so discovery costs no toolchain start-up.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from polybuild.config.model import Config
from polybuild.support.errors import ConfigError
from polybuild.workspace import Ref, Target
from polybuild.workspace.files import under_dir
from polybuild.workspace.targetinfo import CgoLink, GoInfo

_PACKAGE = re.compile(rb"^package\s+([A-Za-z_][A-Za-z0-9_]*)", re.M)
_MAJOR = re.compile(r"^v\d+$")
_CGO_LDFLAGS = re.compile(rb"^[ \t]*#cgo\b[^:\n]*\bLDFLAGS:(.*)$", re.M)
_LIB_FILE = re.compile(r"(?:^|/)lib([A-Za-z0-9_]+)\.a$")
CGO_HEAD = 65536  # a cgo preamble sits above `import "C"`, near the top of its file


def discover(root: Path, listing: list[str], config: Config, staticlibs: frozenset[str] = frozenset()
             ) -> list[Target]:
    """Go modules; cgo preambles are read only when the workspace has Rust static libraries they could link."""
    module_dirs = _module_dirs(root, listing, config)
    go_files = _go_files_by_module(listing, set(module_dirs))
    return [_target(root, d, go_files.get(d, []), staticlibs) for d in module_dirs]


def _go_files_by_module(listing: list[str], module_dirs: set[str]) -> dict[str, list[str]]:
    """Non-test .go files grouped by the innermost module containing them, in one pass over the listing."""
    grouped: dict[str, list[str]] = {}
    for rel in listing:
        if not rel.endswith(".go") or rel.endswith("_test.go"):
            continue
        d = rel
        while d:
            d = d.rpartition("/")[0]
            if (d or ".") in module_dirs:
                grouped.setdefault(d or ".", []).append(rel)
                break
    return grouped


def _module_dirs(root: Path, listing: list[str], config: Config) -> list[str]:
    if "go.work" in listing:
        uses = sorted(_work_uses(root / "go.work"))
        missing = next((d for d in uses if not (root / d / "go.mod").is_file()), None)
        if missing is not None:
            raise ConfigError(f"'use {missing}': there is no go.mod in {missing}", file="go.work",
                              hint="fix or remove the `use` line (or create the module with `go mod init`)")
        return uses
    dirs: set[str] = set()
    for go_root in config["go-roots"]:
        for rel in under_dir(listing, go_root):
            if rel == "go.mod" or rel.endswith("/go.mod"):
                dirs.add(rel.rpartition("/")[0] or ".")
    return sorted(dirs)


def _work_uses(go_work: Path) -> list[str]:
    uses: list[str] = []
    in_block = False
    for line in go_work.read_text(encoding="utf-8").splitlines():
        line = line.split("//", 1)[0].strip()
        if in_block:
            if line == ")":
                in_block = False
            elif line:
                uses.append(_clean_dir(line))
        elif line.startswith("use"):
            rest = line[3:].strip()
            if rest == "(":
                in_block = True
            elif rest:
                uses.append(_clean_dir(rest))
    return uses


def _clean_dir(d: str) -> str:
    d = d.strip('"').removeprefix("./").rstrip("/")
    return d or "."


def parse_go_mod(path: Path, display: str) -> tuple[str, list[tuple[str, str, int]]]:
    """The module path and the local `replace` directives as (module, directory, line)."""
    module = None
    replaces: list[tuple[str, str, int]] = []
    in_replace = False
    lines = path.read_text(encoding="utf-8").splitlines()
    _check_syntax(lines, display)
    for lineno, raw in enumerate(lines, 1):
        line = raw.split("//", 1)[0].strip()
        if line.startswith("module "):
            module = line.split(None, 1)[1].strip('"')
        elif line == "replace (":
            in_replace = True
        elif in_replace and line == ")":
            in_replace = False
        elif in_replace or line.startswith("replace "):
            spec = line.removeprefix("replace ").strip() if not in_replace else line
            if "=>" in spec:
                old, new = (s.split() for s in spec.split("=>", 1))
                if new and new[0].startswith((".", "/")):
                    replaces.append((old[0], new[0], lineno))
    if module is None:
        raise ConfigError("go.mod has no 'module' line", file=display, line=1)
    return module, replaces


# go.mod directives and their arguments (None: not checked here), so a malformed go.mod is a located config error
# instead of a task that fails with go's "errors parsing go.mod".
_DIRECTIVES = {"module": "PATH", "go": "VERSION", "toolchain": "NAME", "require": "PATH VERSION",
               "exclude": "PATH VERSION", "replace": "OLD [VERSION] => NEW [VERSION]", "retract": None,
               "godebug": None, "tool": "PATH", "ignore": "PATH"}


def _check_syntax(lines: list[str], display: str) -> None:
    """The structure of go.mod (known directives, argument counts, closed blocks), as a located ConfigError."""
    block, opened = None, 0
    for lineno, raw in enumerate(lines, 1):
        if "\0" in raw:
            raise ConfigError("a NUL byte in go.mod", file=display, line=lineno)
        words = raw.split("//", 1)[0].split()
        if not words:
            continue
        if block is not None and words == [")"]:
            block = None
            continue
        verb, args = (block, words) if block is not None else (words[0], words[1:])
        if verb not in _DIRECTIVES:
            raise ConfigError(f"unknown go.mod directive '{verb}'", file=display, line=lineno,
                              hint=f"directives are {', '.join(_DIRECTIVES)}")
        if block is None and args == ["("]:
            block, opened = verb, lineno
            continue
        usage = _DIRECTIVES[verb]
        if usage and ("=>" not in args if verb == "replace" else len(args) != len(usage.split())):
            raise ConfigError(f"malformed '{verb}' line: expected {verb} {usage}", file=display, line=lineno)
    if block is not None:
        raise ConfigError(f"'{block} (' block is never closed with ')'", file=display, line=opened)


def _binary_name(import_path: str) -> str:
    parts = import_path.split("/")
    if len(parts) > 1 and _MAJOR.match(parts[-1]):
        return parts[-2]
    return parts[-1]


def _target(root: Path, rel_dir: str, go_files: list[str], staticlibs: frozenset[str]) -> Target:
    directory = root if rel_dir == "." else root / rel_dir
    display = "go.mod" if rel_dir == "." else f"{rel_dir}/go.mod"
    module, replaces = parse_go_mod(directory / "go.mod", display)
    refs = [Ref("path", os.path.normpath(directory / d), f"{display}:{line}: replace {old}")
            for old, d, line in replaces]
    mains = _main_packages(root, rel_dir, go_files)
    by_name: dict[str, list[str]] = {}
    for pkg in mains:
        by_name.setdefault(_binary_name(module if pkg == "." else f"{module}/{pkg}"), []).append(pkg)
    binaries = {name: pkgs[-1] for name, pkgs in by_name.items()}
    clashes = {name: pkgs for name, pkgs in by_name.items() if len(pkgs) > 1}  # the build refuses these
    cgo_links = _cgo_links(root, go_files, staticlibs) if staticlibs else []
    refs += [Ref("staticlib", link.lib, link.source, required=False) for link in cgo_links]
    return Target(
        id=f"go:{_binary_name(module)}",
        name=_binary_name(module),
        kind="go",
        builder="go" if binaries else None,
        dir=directory,
        manifest=directory / "go.mod",
        info=GoInfo(module=module, binaries=dict(sorted(binaries.items())), binary_clashes=clashes,
                    cgo_links=cgo_links),
        refs=refs,
    )


def _cgo_links(root: Path, go_files: list[str], staticlibs: frozenset[str]) -> list[CgoLink]:
    """The workspace's Rust static libraries that the module's cgo preambles link: by `-l<name>`, or as a
    `lib<name>.a` named by path (`by_path`, the `path` as written), each with the `file:line` that names it; each
    becomes an edge."""
    links: list[CgoLink] = []
    for rel in go_files:
        with open(root / rel, "rb") as f:
            head = f.read(CGO_HEAD)
        if b"#cgo" not in head:
            continue
        for m in _CGO_LDFLAGS.finditer(head):
            line = head.count(b"\n", 0, m.start()) + 1
            for token in m[1].decode("utf-8", "replace").split():
                by_path = not token.startswith("-l")
                lib_file = _LIB_FILE.search(token) if by_path else None
                lib = token[2:] if not by_path else lib_file[1] if lib_file else None
                if lib in staticlibs:
                    links.append(CgoLink(lib, f"{rel}:{line}", by_path, token if by_path else None))
    return links


def _main_packages(root: Path, rel_dir: str, go_files: list[str]) -> list[str]:
    """Package directories (relative to the module) whose package clause is `main`."""
    prefix = "" if rel_dir == "." else rel_dir + "/"
    packages: set[str] = set()
    checked: set[str] = set()
    for rel in go_files:
        pkg_dir = rel[len(prefix):].rpartition("/")[0] or "."
        if pkg_dir in checked or _ignored_go_dir(pkg_dir):
            continue
        checked.add(pkg_dir)
        with open(root / rel, "rb") as f:
            m = _PACKAGE.search(f.read(8192))
        if m and m[1] == b"main":
            packages.add(pkg_dir)
    return sorted(packages)


def _ignored_go_dir(pkg_dir: str) -> bool:
    return any(p in ("testdata", "vendor") or p.startswith(("_", ".")) for p in pkg_dir.split("/") if p != ".")
