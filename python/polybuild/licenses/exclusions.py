"""What the license scan leaves out on purpose: `[licenses] exclude-targets` (whole workspace targets) and
`[licenses] exclude-extras` (one Python extra: `"trtllm"` in every project, `"ai-dynamo[trtllm]"` in one), for
parts that cannot be scanned here (an extra whose wheels only a vendor index holds) or do not ship.

cargo-deny's pruning rule applies: what only an excluded root reaches is left out, what anything else reaches stays.
Development dependencies and dependency groups never ship, so they are never scanned (cargo-deny's `exclude-dev`,
always on) and need no key. Every exclusion is said in a note on each license command: the attributions and the SBOM
do not cover it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from polybuild.support.errors import UserError
from polybuild.workspace.targetinfo import CrateInfo

if TYPE_CHECKING:
    from polybuild.licenses.model import Package
    from polybuild.workspace import Target, Workspace

_EXTRA = re.compile(r"(?:(?P<project>[^\[\]]+)\[(?P<qualified>[^\[\]]+)\]|(?P<bare>[^\[\]:]+))")


@dataclass(frozen=True)
class Exclusions:
    targets: frozenset[str] = frozenset()  # target ids
    extras: dict[str, frozenset[str]] = field(default_factory=dict)  # py target id -> normalized extras
    own: frozenset[tuple[str, str]] = frozenset()  # (ecosystem, name) of the excluded targets' own packages

    def excludes(self, target_id: str, extra: str | None = None) -> bool:
        """Is this scan root (a target's base, or one of its extras) left out?"""
        if target_id in self.targets:
            return True
        return extra is not None and canonicalize_name(extra) in self.extras.get(target_id, ())

    def roots(self) -> list[str]:
        """The excluded roots as the reports name them: target ids, and `target[extra]`."""
        return sorted(self.targets) + sorted(f"{t}[{e}]" for t, extras in self.extras.items() for e in extras
                                             if t not in self.targets)

    def notes(self) -> list[str]:
        """One line per exclusion, for every license command (a cached scan included)."""
        roots = self.roots()
        if not roots:
            return []
        return [f"the license scan leaves out {', '.join(roots)} ([licenses] exclude-targets / exclude-extras): "
                "deny, attributions and the SBOM do not cover what only they ship"]

    def prune(self, packages: list[Package]) -> list[Package]:
        """Drop the chains that start at an excluded root, the third-party packages only those chains reached, and
        the excluded targets' own packages that no other target ships (the workspace's other packages stay: each is
        a root of its own)."""
        if not self.targets and not self.extras:
            return packages
        kept = []
        for package in packages:
            chains = [c for c in package.dependents if not self.excludes(*_root(c[0]))]
            if chains:
                pass
            elif package.workspace:
                if (package.ecosystem, package.name) in self.own:
                    continue
            elif package.dependents:
                continue
            package.dependents = chains
            kept.append(package)
        return kept


def _root(label: str) -> tuple[str, str | None]:
    """`py:x[extra]` -> (`py:x`, `extra`)."""
    target, _, extra = label.partition("[")
    return target, extra.rstrip("]") or None


def exclusions(ws: Workspace) -> Exclusions:
    """The config's exclusions, checked against the workspace: a name that matches nothing is a located error (a
    typo would otherwise leave out nothing while the note says it does)."""
    conf = ws.config["licenses"]
    targets = frozenset(_target(ws, name, ("licenses", "exclude-targets"), None).id for name in conf["exclude-targets"])
    extras: dict[str, set[str]] = {}
    projects = sorted((t for t in ws.targets.values() if t.kind == "py"), key=lambda t: t.id)
    for entry in conf["exclude-extras"]:
        match = _EXTRA.fullmatch(entry.strip())
        if not match:
            raise ws.config.error(("licenses", "exclude-extras"), f"[licenses] exclude-extras: '{entry}' is not an "
                                  "extra", hint="write the extra's name (`\"trtllm\"`, every project) or "
                                  "`\"<project>[<extra>]\"` (one project)")
        extra = canonicalize_name(match["qualified"] or match["bare"])
        chosen = [_target(ws, match["project"].strip(), ("licenses", "exclude-extras"), frozenset({"py"}))] \
            if match["project"] else projects
        having = [t for t in chosen if extra in _declared_extras(t)]
        if not having:
            known = sorted({e for t in chosen for e in _declared_extras(t)})
            raise ws.config.error(("licenses", "exclude-extras"),
                                  f"[licenses] exclude-extras: no Python project of the workspace declares the extra "
                                  f"'{entry}'", hint=f"declared extras: {', '.join(known) or 'none'} (dependency "
                                  "groups are never scanned: they do not ship)")
        for target in having:
            extras.setdefault(target.id, set()).add(extra)
    own = frozenset(_own_package(ws.targets[t]) for t in targets if ws.targets[t].kind != "image")
    return Exclusions(targets, {t: frozenset(e) for t, e in extras.items()}, own)


def _own_package(target: Target) -> tuple[str, str]:
    """The inventory's key for a target's own package (ecosystem, name)."""
    if target.kind == "py":
        return "pypi", target.info.dist_name
    if target.kind == "go":
        return "golang", target.info.module
    return "cargo", target.info.crate if isinstance(target.info, CrateInfo) else target.name


def _target(ws: Workspace, name: str, keypath: tuple[str, ...], kinds: frozenset[str] | None) -> Target:
    try:
        return ws.resolve(name, source=f"[licenses] {keypath[-1]}", kinds=kinds)
    except UserError as exc:
        raise ws.config.error(keypath, exc.message, exc.hint) from None


def _declared_extras(target: Target) -> set[str]:
    """The extras a project's pyproject declares (`[project] optional-dependencies`)."""
    from polybuild.support import tomlfile

    project = tomlfile.load(target.manifest, target.manifest.name).data.get("project", {})
    return {canonicalize_name(e) for e in project.get("optional-dependencies", {})}
