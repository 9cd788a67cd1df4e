"""Go inventory: the modules whose packages a Go target compiles, from `go list -deps -json ./...` (test-only
imports excluded) with the proxy off, so only the module cache or `vendor/` is read. Replacements are attributed to
what replaces them. `binary_modules` reads what a built binary really contains (`go version -m`), the cross-check."""

from __future__ import annotations

import json
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polybuild.licenses.inventory import license_files, merge
from polybuild.licenses.model import Package
from polybuild.support.errors import UserError

if TYPE_CHECKING:
    from polybuild.workspace import Target, Workspace


@dataclass(frozen=True)
class Module:
    """A module as it ships: the replacement when one is given with a version, else the required module."""

    name: str
    version: str
    source: str
    dir: str
    published: bool = True  # from a module proxy (else a local directory)
    target: str | None = None  # the target id of a workspace module

    @property
    def label(self) -> str:
        return self.target or f"{self.name}@{self.version}"


def packages(ws: Workspace) -> list[Package]:
    """Every module the workspace's Go modules compile, and the workspace modules themselves."""
    from concurrent.futures import ThreadPoolExecutor

    targets = sorted((t for t in ws.targets.values() if t.kind == "go"), key=lambda t: t.id)
    own = {os.path.realpath(t.dir): t for t in targets}
    found = [_own_package(t, ws.release_version) for t in targets]
    with ThreadPoolExecutor(max_workers=min(8, len(targets) or 1)) as pool:  # each waits for its `go list`
        for listed in pool.map(lambda t: module_packages(t, ws, own), targets):
            found += listed
    return merge(found)


def module_packages(target: Target, ws: Workspace, own: dict[str, Target]) -> list[Package]:
    """The modules one Go module compiles (other workspace modules too), each with its shortest import chain."""
    modules, edges = _module_graph(list_packages(target, ws), target, own)
    found = []
    for path, chain in sorted(_chains(target.info.module, edges, modules, target.id).items()):
        module = modules[path]
        package = _own_package(ws.targets[module.target], ws.release_version) if module.target else _package(module)
        package.dependents = [chain]
        found.append(package)
    return found


def _module_graph(listed: list[dict[str, Any]], target: Target,
                  own: dict[str, Target]) -> tuple[dict[str, Module], dict[str, set[str]]]:
    """The modules of the compiled packages (by required path) and which module's packages import which."""
    vendored = (target.dir / "vendor" / "modules.txt").is_file()
    modules: dict[str, Module] = {}
    module_of: dict[str, str] = {}  # package import path -> required module path
    for pkg in listed:
        if pkg.get("Standard") or not pkg.get("Module"):
            continue
        required = pkg["Module"]
        module_of[pkg["ImportPath"]] = required["Path"]
        if required["Path"] not in modules:
            modules[required["Path"]] = _module(required, target, own, vendored)
    edges: dict[str, set[str]] = {}
    for pkg in listed:
        importer = module_of.get(pkg.get("ImportPath", ""))
        for imported in pkg.get("Imports", ()):
            dep = module_of.get(imported)
            if importer and dep and dep != importer:
                edges.setdefault(importer, set()).add(dep)
    return modules, edges


def list_packages(target: Target, ws: Workspace) -> list[dict[str, Any]]:
    """`go list -deps -json ./...` of one module, offline, with the tags and cgo setting its build uses; errors name
    the module and the fix."""
    from polybuild.builders.cgo import cgo_enabled
    from polybuild.support.toolchains import require

    go = require("go", f"the license inventory of {target.id}")
    mode = "vendor" if (target.dir / "vendor" / "modules.txt").is_file() else "readonly"
    # Only the fields read here: go list then skips the costly rest (9.7 MB of JSON down to 0.7 MB per module).
    argv = [go, "list", "-deps", "-json=ImportPath,Module,Imports,Standard", f"-mod={mode}"]
    conf = ws.config["go"]
    if conf["tags"]:
        argv += ["-tags", ",".join(conf["tags"])]
    env = {**os.environ, "GOPROXY": "off", "GOTOOLCHAIN": "local",
           "CGO_ENABLED": "1" if cgo_enabled(target, ws.targets, conf) else "0"}
    return _decode_stream(_run([*argv, "./..."], target, env))


def _run(argv: list[str], target: Target, env: dict[str, str]) -> str:
    import subprocess

    proc = subprocess.run(argv, cwd=target.dir, capture_output=True, text=True, env=env)
    if proc.returncode == 0:
        return proc.stdout
    detail = proc.stderr.strip()
    if "GOPROXY=off" in detail or "not in GOMODCACHE" in detail or "missing go.sum entry" in detail:
        hint = f"modules are missing from the module cache: run `go mod download` in {target.dir}"
        if "missing go.sum entry" in detail:
            hint = f"go.sum is incomplete: run `go mod tidy` in {target.dir}"
    elif "updates to go.mod needed" in detail or "inconsistent vendoring" in detail:
        hint = f"go.mod (or vendor/) is out of date: run `go mod tidy` (and `go mod vendor`) in {target.dir}"
    else:
        hint = None
    raise UserError(f"go list for {target.manifest} failed:\n{detail}", hint=hint)


def _decode_stream(text: str) -> list[dict[str, Any]]:
    """`go list -json` prints one JSON object after another, not an array."""
    decoder = json.JSONDecoder()
    found, index = [], 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index == len(text):
            return found
        value, index = decoder.raw_decode(text, index)
        found.append(value)


def _module(required: dict[str, Any], target: Target, own: dict[str, Target], vendored: bool) -> Module:
    """Who a module really is: a workspace module, a replacement (module or local directory), or itself."""
    replace = required.get("Replace")
    vendor_dir = str(target.dir / "vendor" / required["Path"]) if vendored else ""
    if required.get("Main"):
        workspace = own.get(os.path.realpath(required.get("Dir", "")))
        return Module(required["Path"], "", "path", "", False, workspace.id if workspace else target.id)
    if replace and replace.get("Version"):
        return Module(replace["Path"], replace["Version"], f"replace:{required['Path']}",
                      vendor_dir or replace.get("Dir", ""))
    if replace:  # a local directory: discovery made it a workspace module
        local = os.path.realpath(replace.get("Dir") or target.dir / replace["Path"])
        workspace = own.get(local)
        return Module(required["Path"], required.get("Version", ""), "path", vendor_dir or local, False,
                      workspace.id if workspace else None)
    return Module(required["Path"], required["Version"], "proxy.golang.org", vendor_dir or required.get("Dir", ""))


def _chains(main: str, edges: dict[str, set[str]], modules: dict[str, Module],
            target_id: str) -> dict[str, tuple[str, ...]]:
    """The shortest chain of modules from the target's own module to every module it compiles."""
    seen = {main: (target_id,)}
    queue = deque([main])
    while queue:
        node = queue.popleft()
        for dep in sorted(edges.get(node, ())):
            if dep not in seen:
                seen[dep] = seen[node] if node == main else seen[node] + (modules[node].label,)
                queue.append(dep)
    return {path: chain for path, chain in seen.items() if path != main and path in modules}


def _package(module: Module) -> Package:
    from polybuild.licenses.purl import purl

    return Package(
        ecosystem="golang", name=module.name, version=module.version,
        purl=purl("golang", module.name, module.version), declared=None,
        files=license_files(Path(module.dir)) if module.dir else [],
        source=module.source, url=f"https://pkg.go.dev/{module.name}@{module.version}" if module.published else None,
    )


def _own_package(target: Target, release_version: str) -> Package:
    from polybuild.licenses.purl import PurlError, purl

    module = target.info.module
    try:
        package_url = purl("golang", module, release_version)
    except PurlError:
        package_url = ""  # a main module may be called just "app"; it has no purl of its own
    return Package(ecosystem="golang", name=module, version=release_version, purl=package_url,
                   files=license_files(target.dir), source="path", workspace=True)


def binary_modules(binary: Path | str) -> list[tuple[str, str]]:
    """The (module, version) pairs a Go binary was built from, per `go version -m`: a replacement with a version
    counts as the replacement (as the inventory attributes it), a local one as the required module."""
    from polybuild.support.process import run_tool
    from polybuild.support.toolchains import require

    out = run_tool([require("go", f"reading {binary}"), "version", "-m", str(binary)], f"go version -m {binary}",
                   cwd=Path(binary).parent).stdout
    found: list[tuple[str, str]] = []
    for line in out.splitlines():
        fields = line.strip().split("\t")
        if fields[0] == "dep" and len(fields) >= 3:
            found.append((fields[1], fields[2]))
        elif fields[0] == "=>" and len(fields) >= 3 and fields[2] != "(devel)" and found:
            found[-1] = (fields[1], fields[2])
    return found


def check_binary(binary: Path | str, packages: list[Package], own_modules: set[str] = frozenset()) -> None:
    """Every module compiled into the binary is in the inventory (workspace modules aside), or a UserError."""
    inventoried = {(p.name, p.version) for p in packages if p.ecosystem == "golang"}
    missing = [f"{path}@{version}" for path, version in binary_modules(binary)
               if (path, version) not in inventoried and path not in own_modules]
    if missing:
        raise UserError(f"{binary} contains Go modules the license inventory does not list: {', '.join(missing)}",
                        hint="build with the same tags and cgo setting as the inventory, from the same go.mod")
