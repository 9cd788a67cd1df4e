"""The inventory of everything a workspace ships: Cargo crates, Python distributions and Go modules, each with its
license evidence and the chains of workspace targets that pull it in. Every scanner reads lockfiles and local caches
offline (never what happens to be installed) and says how to fill them when something is missing; only `--fetch`
downloads, exactly what the lockfiles name.

Dependents chains start at a workspace target id (`py:serving[server]` when an extra pulls the package in) and go
through the intermediate packages down to the package's direct dependent; the package itself is not repeated."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from polybuild.licenses.model import LicenseFile, Package

if TYPE_CHECKING:
    from polybuild.workspace import Workspace

Key = tuple[str, str, str]

# Names of license and notice texts, any case and any extension ("LICENSE-MIT", "license.md", "COPYING.LESSER").
_LICENSE_NAME = re.compile(r"^(licen[cs]e|copying|unlicense)", re.I)
_NOTICE_NAME = re.compile(r"^(notice|copyright|patents)", re.I)  # Go's x/ modules grant patents in PATENTS
# A license of the documentation, not of the code: "LICENSE.docs" (go-digest's CC-BY-SA-4.0), "LICENSE-DOCUMENTATION".
_DOCUMENTATION_NAME = re.compile(r"(^|[-._ ])(docs?|documentation)([-._ ]|$)", re.I)
_CODE_SUFFIXES = frozenset({".go", ".rs", ".py", ".pyi", ".c", ".h", ".cc", ".cpp", ".js", ".ts", ".sh"})
_MAX_TEXT = 2 << 20


@dataclass
class Inventory:
    """Every package the workspace ships, and which of them each target ships (for per-artifact attributions)."""

    packages: list[Package]
    by_target: dict[str, set[Key]] = field(default_factory=dict)


def inventory(ws: Workspace, *, all_features: bool = True, fetch: bool | str | None = False) -> Inventory:
    """Scan all three ecosystems and merge them; offline unless `fetch`, which first downloads what the lockfiles
    name (`cargo fetch`, `go mod download`, the locked Python distributions)."""
    from concurrent.futures import ThreadPoolExecutor

    from polybuild.licenses import cargo, go, pypi
    from polybuild.licenses.exclusions import exclusions

    leave_out = exclusions(ws)
    if fetch:
        _fetch_crates_and_modules(ws)
    # Each scanner mostly waits for its tool (cargo, uv or downloads, go), so the three run side by side.
    with ThreadPoolExecutor(max_workers=3) as pool:
        scans = [pool.submit(cargo.packages, ws, all_features=all_features),
                 pool.submit(pypi.packages, ws, fetch=fetch, leave_out=leave_out),
                 pool.submit(go.packages, ws)]
        found = [package for scan in scans for package in scan.result()]
    packages = leave_out.prune(merge(found))
    _inherit_the_repository_license(ws.root, packages)
    return Inventory(packages, _by_target(ws, packages))


def _inherit_the_repository_license(root: Path, packages: list[Package]) -> None:
    """A workspace package that declares no license and ships no text of its own is under the repository's: it
    gets the license texts at the workspace root (a Go module in a subdirectory of an Apache-2.0 repository)."""
    bare = [p for p in packages if p.workspace and not (p.declared or p.legacy or p.classifiers or p.files)]
    if bare:
        texts = license_files(root)
        for package in bare:
            package.files = list(texts)


def _fetch_crates_and_modules(ws: Workspace) -> None:
    """`cargo fetch --locked` per Cargo workspace and `go mod download` per Go module: what the offline scanners
    read from the local caches."""
    from polybuild.support.process import run_tool
    from polybuild.support.toolchains import require
    from polybuild.workspace.targetinfo import CrateInfo

    roots = sorted({t.info.cargo_workspace for t in ws.targets.values() if isinstance(t.info, CrateInfo)})
    for root in roots:
        run_tool([require("cargo", "--fetch"), "fetch", "--locked", "--manifest-path", str(Path(root) / "Cargo.toml")],
                 f"cargo fetch in {root}", cwd=Path(root))
    for target in sorted((t for t in ws.targets.values() if t.kind == "go"), key=lambda t: t.id):
        if not (target.dir / "vendor" / "modules.txt").is_file():
            run_tool([require("go", "--fetch"), "mod", "download"], f"go mod download in {target.dir}", cwd=target.dir)


def merge(found: list[Package]) -> list[Package]:
    """One package per key (the first one's evidence), dependents of all merged, sorted by key."""
    by_key: dict[Key, Package] = {}
    for package in found:
        kept = by_key.setdefault(package.key, package)
        if kept is not package:
            kept.dependents.extend(c for c in package.dependents if c not in kept.dependents)
    return sorted(by_key.values(), key=lambda p: p.key)


def _by_target(ws: Workspace, packages: list[Package]) -> dict[str, set[Key]]:
    """Target id -> keys of the packages in its closure; an image ships everything of the targets it holds."""
    shipped: dict[str, set[Key]] = {t: set() for t in ws.targets}
    for package in packages:
        for chain in package.dependents:
            shipped.setdefault(chain[0].partition("[")[0], set()).add(package.key)
    for target in ws.targets.values():
        if target.kind == "image":
            for dep in closure(ws, target.id):
                shipped[target.id] |= shipped.get(dep, set())
    return shipped


def closure(ws: Workspace, start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for dep in ws.targets[todo.pop()].deps:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def license_files(directory: Path, extra: list[str] = ()) -> list[LicenseFile]:
    """The license and NOTICE texts at the top of a package's directory (and in a LICENSES/ directory, REUSE
    style), plus `extra` paths relative to it (a manifest's `license-file`)."""
    found: dict[str, LicenseFile] = {}
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return []
    for entry in entries:
        kind = license_kind(entry.name)
        if kind is None:
            continue
        children = sorted(entry.iterdir()) if entry.is_dir() else [entry]
        for path in children:
            _add(found, directory, path, kind if path is entry else license_kind(path.name) or kind)
    for rel in extra:
        _add(found, directory, directory / rel, license_kind(Path(rel).name) or "license")
    return sorted(found.values(), key=lambda f: f.path)


def license_kind(name: str) -> str | None:
    """"license" or "notice" when the file name says it holds one, "documentation" for a license that covers
    only the documentation (printed in attributions, not part of the package's license), else None."""
    if Path(name).suffix.lower() in _CODE_SUFFIXES:
        return None
    if _LICENSE_NAME.match(name):
        return "documentation" if _DOCUMENTATION_NAME.search(name) else "license"
    if _NOTICE_NAME.match(name):
        return "notice"
    return None


def _add(found: dict[str, LicenseFile], root: Path, path: Path, kind: str) -> None:
    rel = Path(_relative(path, root)).as_posix()
    if rel in found or not path.is_file():
        return
    text = read_text(path.read_bytes()[:_MAX_TEXT])
    if text is not None:
        found[rel] = LicenseFile(rel, kind, text)


def _relative(path: Path, root: Path) -> str:
    import os

    return os.path.normpath(os.path.relpath(path, root))


def read_text(data: bytes) -> str | None:
    """A license file's text; None for binary files."""
    if b"\0" in data:
        return None
    return data.decode("utf-8", errors="replace")
