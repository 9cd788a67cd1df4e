"""The dependency policy: cargo-deny's `deny.toml`, read as it is, extended to Python and Go.

Accepted as cargo-deny writes it: `[graph]`, `[output]`, `[licenses]` (allow, exceptions, clarify,
confidence-threshold, private, unused-allowed-license), `[bans]` (multiple-versions, deny, skip, skip-tree, allow,
wildcards, ...), `[sources]` and `[advisories]`, so an existing Rust config keeps working. Extensions:
- a package spec anywhere cargo-deny takes a crate may be a purl (`pkg:pypi/requests`, `pkg:golang/golang.org/x/net`)
  or `name@version`;
- `[licenses.python]` / `[licenses.go]` / `[licenses.rust]` `allow` lists add licenses for one ecosystem only;
- `[sources.python] allow-indexes` and `[sources.go] allow-prefixes` / `allow-replace`;
- `[advisories] db-path` may hold OSV-format JSON files (read offline) for all three ecosystems.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polybuild.errors import UserError
from polybuild.schema import FreeTable, Key, Table, Validator
from polybuild.tomlfile import TomlFile, load

_LEVEL = ("allow", "warn", "deny")
ANY = (str, int, float, bool, list, dict)

SCHEMA = Table({
    "graph": Table({
        "targets": Key(list, "Target triples (cargo-deny); accepted.", []),
        "exclude": Key(list, "Packages left out of the graph.", [], item=str),
        "all-features": Key(bool, "Resolve Cargo dependencies with every feature enabled.", False),
        "no-default-features": Key(bool, "Resolve without default features.", False),
        "features": Key(list, "Features to enable.", [], item=str),
        "exclude-dev": Key(bool, "Leave dev-dependencies out (they never ship; polybuild always does).", True),
        "exclude-unpublished": Key(bool, "Leave unpublished workspace crates out.", False),
    }, doc="Which dependency graph is checked."),
    "output": FreeTable("Output settings of cargo-deny (accepted, not used).", value_types=ANY),
    "licenses": Table({
        "version": Key(int, "Schema version (cargo-deny).", 2),
        "allow": Key(list, "Licenses (SPDX ids, or `X WITH Y`) every ecosystem may use.", [], item=str),
        "exceptions": Key(list, "Extra licenses for one package: `{ allow = [...], crate = \"spec\" }`.", [],
                          item=dict),
        "clarify": Key(list, "The license of a package whose metadata is wrong or missing: `{ crate = \"spec\", "
                       "expression = \"MIT\", license-files = [{ path = \"LICENSE\", hash = 0x... }] }`; used only "
                       "while the files' CRC32 hashes still match.", [], item=dict),
        "confidence-threshold": Key((float, int), "Minimum score for a license detected from its text.", 0.8),
        "private": FreeTable("`ignore = true`: the workspace's own unpublished packages are not checked.",
                             value_types=ANY),
        "unused-allowed-license": Key(str, "What to do with an allowed license nothing uses.", "allow",
                                      choices=_LEVEL),
        "include-dev": Key(bool, "cargo-deny: check dev-dependencies too (accepted).", False),
        "rust": FreeTable("`allow = [...]`: licenses only Rust crates may use.", value_types=(list,)),
        "python": FreeTable("`allow = [...]`: licenses only Python packages may use.", value_types=(list,)),
        "go": FreeTable("`allow = [...]`: licenses only Go modules may use.", value_types=(list,)),
    }, doc="License policy."),
    "bans": Table({
        "multiple-versions": Key(str, "Two versions of one package in one ecosystem.", "warn", choices=_LEVEL),
        "wildcards": Key(str, "Wildcard version requirements (cargo-deny; accepted).", "allow", choices=_LEVEL),
        "highlight": Key(str, "cargo-deny output (accepted).", "all"),
        "deny": Key(list, "Packages that must not be used (spec or `{ crate = \"spec\", reason = \"...\" }`).", []),
        "allow": Key(list, "When set, only these packages may be used.", []),
        "skip": Key(list, "Packages exempt from the multiple-versions check.", []),
        "skip-tree": Key(list, "Packages whose whole subtree is exempt from the multiple-versions check.", []),
        "features": Key(list, "cargo-deny feature bans (accepted).", []),
        "external-default-features": Key(str, "cargo-deny (accepted).", "allow", choices=_LEVEL),
        "workspace-default-features": Key(str, "cargo-deny (accepted).", "allow", choices=_LEVEL),
        "build": FreeTable("cargo-deny build-script checks (accepted).", value_types=ANY),
        "workspace-dependencies": FreeTable("cargo-deny (accepted).", value_types=ANY),
        "allow-wildcard-paths": Key(bool, "cargo-deny (accepted).", False),
    }, doc="Banned and duplicated packages."),
    "sources": Table({
        "unknown-registry": Key(str, "A crate from a registry not in allow-registry.", "warn", choices=_LEVEL),
        "unknown-git": Key(str, "A crate from a git repository not in allow-git.", "warn", choices=_LEVEL),
        "allow-registry": Key(list, "Registries crates may come from.", ["https://github.com/rust-lang/crates.io-index"],
                              item=str),
        "allow-git": Key(list, "Git repositories crates may come from.", [], item=str),
        "allow-org": FreeTable("`github = [...]`, `gitlab = [...]`: organisations git sources may belong to.",
                               value_types=(list,)),
        "private": Key(list, "Private registries (cargo-deny; accepted).", [], item=str),
        "required-git-spec": Key(str, "cargo-deny (accepted)."),
        "python": Table({
            "allow-indexes": Key(list, "Index URLs Python packages may come from (from uv.lock).", [], item=str),
            "unknown-index": Key(str, "A package from another index.", "deny", choices=_LEVEL),
        }, doc="Where Python packages may come from."),
        "go": Table({
            "allow-prefixes": Key(list, "Module path prefixes Go modules may have; empty means any.", [], item=str),
            "allow-replace": Key(bool, "Allow `replace` directives pointing outside the workspace.", True),
        }, doc="Which Go modules may be used."),
    }, doc="Where packages may come from."),
    "advisories": Table({
        "version": Key(int, "Schema version (cargo-deny).", 2),
        "db-path": Key(str, "A local directory of advisories in OSV JSON format (read offline).", ""),
        "db-urls": Key(list, "cargo-deny's advisory databases (not fetched: polybuild reads db-path only).", [],
                       item=str),
        "ignore": Key(list, "Advisory ids (or `{ id = \"...\", reason = \"...\" }`) not reported.", []),
        "yanked": Key(str, "cargo-deny (accepted).", "warn", choices=_LEVEL),
        "unmaintained": Key(str, "cargo-deny (accepted).", "all"),
        "unsound": Key(str, "cargo-deny (accepted).", "all"),
        "git-fetch-with-cli": Key(bool, "cargo-deny (accepted).", False),
    }, doc="Security advisories."),
}, doc="The dependency policy: cargo-deny's schema as it is, extended to Python and Go. Every key is checked; an "
    "unknown one is an error naming file and line.")

EXCEPTION = Table({
    "allow": Key(list, "Licenses this package may use.", item=str),
    "crate": Key(str, "The package: a name, name@version or a purl."),
    "name": Key(str, "The package (older cargo-deny spelling)."),
    "version": Key(str, "Only this version."),
}, doc="An entry of `[licenses] exceptions`: licenses one package may use beyond `allow`.")
CLARIFY = Table({
    "crate": Key(str, "The package: a name, name@version or a purl."),
    "name": Key(str, "The package (older cargo-deny spelling)."),
    "version": Key(str, "Only this version."),
    "expression": Key(str, "Its license, as an SPDX expression."),
    "license-files": Key(list, "Files whose CRC32 must still match: `{ path = \"LICENSE\", hash = 0x... }`.", [],
                         item=dict),
}, doc="A `[[licenses.clarify]]` entry: the license of a package whose metadata is wrong or missing.")

_PURL = re.compile(r"^pkg:(cargo|pypi|golang)/(.+?)(?:@([^@]+))?$")


@dataclass(frozen=True)
class Spec:
    """A package selector: ecosystem (None = any), name, and optionally one version."""

    ecosystem: str | None
    name: str
    version: str | None = None

    def matches(self, ecosystem: str, name: str, version: str) -> bool:
        if self.ecosystem not in (None, ecosystem):
            return False
        same = (self.name.lower().replace("_", "-") == name.lower().replace("_", "-")) if ecosystem == "pypi" else (
            self.name == name)
        return same and self.version in (None, version, version.lstrip("v"))

    @classmethod
    def parse(cls, text: str, version: str | None = None) -> Spec:
        m = _PURL.match(text)
        if m:
            from urllib.parse import unquote

            return cls(m[1], unquote(m[2]), m[3] or version)
        name, _, at_version = text.partition("@")
        return cls(None, name, at_version or version)


@dataclass(frozen=True)
class Clarification:
    spec: Spec
    expression: str
    files: tuple[tuple[str, int], ...]  # (path, crc32)


@dataclass(frozen=True)
class Policy:
    """The validated deny.toml."""

    file: TomlFile | None
    data: dict[str, Any]
    exceptions: tuple[tuple[Spec, frozenset[str]], ...]
    clarifications: tuple[Clarification, ...]

    def allowed_licenses(self, ecosystem: str) -> set[str]:
        extra = {"cargo": "rust", "pypi": "python", "golang": "go"}[ecosystem]
        return {*self.data["licenses"]["allow"], *self.data["licenses"][extra].get("allow", [])}

    def exception_for(self, ecosystem: str, name: str, version: str) -> frozenset[str]:
        found: set[str] = set()
        for spec, allow in self.exceptions:
            if spec.matches(ecosystem, name, version):
                found |= allow
        return frozenset(found)

    def clarification_for(self, ecosystem: str, name: str, version: str) -> Clarification | None:
        return next((c for c in self.clarifications if c.spec.matches(ecosystem, name, version)), None)

    @property
    def threshold(self) -> float:
        return float(self.data["licenses"]["confidence-threshold"])

    def where(self, *keypath: str) -> str:
        if self.file is None:
            return "deny.toml"
        line = self.file.line_of(keypath)
        return f"{self.file.display}:{line}" if line else self.file.display


def load_policy(path: Path, display: str = "deny.toml") -> Policy:
    """Read and validate a deny.toml; a missing file is the empty policy (which allows no license)."""
    if not path.is_file():
        validator = Validator(TomlFile(path, {}, "", display))
        return Policy(None, validator.check(SCHEMA, {}, ()), (), ())
    doc = load(path, display=display)
    validator = Validator(doc)
    data = validator.check(SCHEMA, doc.data, ())
    exceptions = []
    for i, raw in enumerate(data["licenses"]["exceptions"]):
        item = validator.check(EXCEPTION, raw, ("licenses", "exceptions", str(i)))
        exceptions.append((_spec(validator, item, ("licenses", "exceptions")), frozenset(item["allow"] or [])))
    clarifications = []
    for i, raw in enumerate(data["licenses"]["clarify"]):
        item = validator.check(CLARIFY, raw, ("licenses", "clarify", str(i)))
        if not item["expression"]:
            raise validator.error(("licenses", "clarify"), "a clarify entry needs an 'expression'")
        files = []
        for f in item["license-files"]:
            if not isinstance(f.get("path"), str) or not isinstance(f.get("hash"), int):
                raise validator.error(("licenses", "clarify"), "license-files entries are { path = \"...\", hash = "
                                      "0x... } (the CRC32 of the file)")
            files.append((f["path"], f["hash"]))
        clarifications.append(Clarification(_spec(validator, item, ("licenses", "clarify")), item["expression"],
                                            tuple(files)))
    return Policy(doc, data, tuple(exceptions), tuple(clarifications))


def _spec(validator: Validator, item: dict[str, Any], where: tuple[str, ...]) -> Spec:
    name = item.get("crate") or item.get("name")
    if not name:
        raise validator.error(where, "each entry needs 'crate' (a name, name@version or purl)")
    return Spec.parse(name, item.get("version"))


def spec_of(entry: Any, policy: Policy, where: str) -> Spec:
    """A bans/skip entry: a string spec, or a table with `crate`/`name` (and `version`)."""
    if isinstance(entry, str):
        return Spec.parse(entry)
    if isinstance(entry, dict) and isinstance(entry.get("crate") or entry.get("name"), str):
        return Spec.parse(entry.get("crate") or entry.get("name"), entry.get("version"))
    raise UserError(f"{policy.where(*where.split('.'))}: entries of {where} are a package spec or "
                    "{{ crate = \"spec\" }}")
