"""One license pass over a workspace: inventory, resolution and policy, and the files written from them
(ATTRIBUTIONS*.md, SBOMs), for the whole workspace or for one target (an artifact or an image)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polybuild.licenses.model import ECOSYSTEMS, Resolved
from polybuild.support.errors import UserError

if TYPE_CHECKING:
    from polybuild.licenses.check import Violation
    from polybuild.licenses.inventory import Inventory
    from polybuild.licenses.policy import Policy
    from polybuild.licenses.sbom import Subject
    from polybuild.workspace import Target, Workspace


@dataclass
class Scan:
    ws: Workspace
    inventory: Inventory
    policy: Policy
    resolved: list[Resolved]

    def violations(self) -> list[Violation]:
        from polybuild.licenses.check import check

        return check(self.resolved, self.policy, self.ws.root)

    @property
    def name(self) -> str:
        """The workspace's name: from config, else its root package's, else its directory's."""
        return self.ws.config["name"] or root_package(self.ws) or self.ws.root.name

    def subset(self, target: Target | None) -> tuple[Subject, list[Resolved]]:
        """What a report covers: the workspace, or the packages one target ships."""
        from polybuild.licenses.sbom import Subject

        if target is None:
            return Subject(self.name, self.ws.release_version), self.resolved
        keys = self.inventory.by_target.get(target.id, set())
        built = self._built_go_modules(target)
        kind = {"image": "image", "go": "binary", "rust": "binary", "py": "wheel"}[target.kind]
        shipping = {target.id, *(self._closure(target) if target.kind == "image" else ())}
        return (Subject(target.name, target.version or self.ws.release_version, kind),
                [_narrowed(r, shipping) for r in self.resolved if r.package.key in keys
                 and (built is None or (r.package.name, r.package.version) in built)])

    def _closure(self, target: Target) -> set[str]:
        from polybuild.licenses.inventory import closure

        return closure(self.ws, target.id)

    def _built_go_modules(self, target: Target) -> set[tuple[str, str]] | None:
        """For a Go target whose binaries are built, the modules `go version -m` says they hold (the ground
        truth, checked against the inventory); None when nothing is built yet."""
        if target.kind != "go":
            return None
        from polybuild.licenses.go import binary_modules, check_binary

        dist = self.ws.config.dist_dir
        binaries = [dist / name for name in target.info.binaries if (dist / name).is_file()]
        if not binaries:
            return None
        own = {t.info.module for t in self.ws.targets.values() if t.kind == "go"}
        packages = [r.package for r in self.resolved]
        for binary in binaries:
            check_binary(binary, packages, own)
        return {module for binary in binaries for module in binary_modules(binary)}


def _narrowed(r: Resolved, shipping: set[str]) -> Resolved:
    """A package as one artifact ships it: only the chains from the targets it holds, so a report for one target
    never names the workspace's other targets."""
    from dataclasses import replace

    chains = [c for c in r.package.dependents if c[0].partition("[")[0] in shipping]
    return replace(r, package=replace(r.package, dependents=chains))


def scan(ws: Workspace, *, fetch: bool | str | None = False, policy: Policy | None = None) -> Scan:
    """Inventory (offline unless `fetch`), the deny.toml policy (read here unless the caller already has it), and
    every package's license; a scan of the same manifests, lockfiles and policy is read back from the cache
    instead."""
    from polybuild.licenses import scancache
    from polybuild.licenses.detect import detect_many
    from polybuild.licenses.inventory import Inventory, inventory
    from polybuild.licenses.policy import load_policy
    from polybuild.licenses.resolve import resolve_all

    conf = ws.config["licenses"]
    policy = policy or load_policy(ws.root / conf["policy"], display=conf["policy"])
    all_features = policy.data["graph"]["all-features"]
    entry = scancache.path(ws, ws.root / conf["policy"], all_features=all_features)
    cached = scancache.load(entry)
    if cached is not None:
        resolved, by_target = cached
        return Scan(ws, Inventory([r.package for r in resolved], by_target), policy, resolved)
    found = inventory(ws, all_features=all_features, fetch=fetch)
    resolved = resolve_all(found.packages, policy, detect_many)
    scancache.save(entry, found, resolved)
    return Scan(ws, found, policy, resolved)


def attribution_files(result: Scan, target: Target | None = None) -> dict[str, str]:
    """File name -> content: ATTRIBUTIONS.md and one file per ecosystem that has packages."""
    from polybuild.licenses.attributions import ecosystem_file, ecosystem_markdown, summary_markdown
    from polybuild.licenses.detect import canonical_text
    from polybuild.licenses.exclusions import exclusions

    subject, resolved = result.subset(target)
    files = {"ATTRIBUTIONS.md": summary_markdown(subject, resolved, result.ws.config["licenses"]["system-libraries"],
                                                 exclusions(result.ws).roots())}
    for ecosystem in ECOSYSTEMS:
        if any(r.package.ecosystem == ecosystem and not r.package.workspace for r in resolved):
            files[ecosystem_file(ecosystem)] = ecosystem_markdown(subject, ecosystem, resolved, canonical_text)
    return files


def sbom(result: Scan, fmt: str, target: Target | None = None) -> dict[str, Any]:
    from polybuild.licenses import sbom as writers

    subject, resolved = result.subset(target)
    if fmt == "cyclonedx":
        return writers.cyclonedx(subject, resolved)
    if fmt == "spdx":
        return writers.spdx(subject, resolved)
    raise UserError(f"unknown SBOM format '{fmt}'", hint="cyclonedx or spdx")


def stale(files: dict[str, str], directory: Path) -> list[str]:
    """The files whose committed content differs from what would be written now."""
    out = []
    for name, content in sorted(files.items()):
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            out.append(name)
    return out


def root_package(ws: Workspace) -> str | None:
    """The name of the package at the workspace root (a pyproject.toml or Cargo.toml package there), if any: the
    workspace's name unless config gives one."""
    root = [t.name for t in ws.targets.values() if t.dir == ws.root and t.kind in ("py", "rust")]
    return sorted(root)[0] if root else None
