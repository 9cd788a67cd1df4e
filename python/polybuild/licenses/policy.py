"""The dependency policy: cargo-deny's `deny.toml`, read as it is, extended to Python and Go.

Every key of cargo-deny 0.20's schema is accepted (and the deprecated or removed keys older configs carry), so an
existing Rust config keeps working. What polybuild acts on: `[graph] all-features`; `[licenses]` allow, exceptions,
clarify, confidence-threshold, `private.ignore`, unused-allowed-license, unused-license-exception; `[bans]`
multiple-versions, deny, allow, skip, skip-tree; `[sources]` unknown-registry, unknown-git, allow-registry, allow-git,
allow-org; `[advisories]` db-path, ignore. Every other cargo-deny key is documented with the `NOT_USED` or
`DEPRECATED` prefix, and the keys a file sets of those are named in one note line each (`Policy.notes`); a key
cargo-deny does not have either is an error with a "did you mean". Package specs take cargo-deny's forms (`name`,
`name@1.2.3`, `name:<req>`, `{ name, version = "<req>" }` with Cargo's version requirements). Extensions:
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

from packaging.utils import canonicalize_name

from polybuild.support.errors import UserError
from polybuild.support.schema import FreeTable, Key, Table, Validator
from polybuild.support.tomlfile import TomlFile, load

_LEVEL = ("allow", "warn", "deny")
_SCOPE = ("all", "workspace", "transitive", "none")
# Documentation prefixes that also drive the notes: a key documented with one of them is accepted and reported in
# one line per kind (see `Policy.notes`), never an error.
NOT_USED = "cargo-deny's; accepted, not acted on by polybuild."
DEPRECATED = "Deprecated or removed by cargo-deny; accepted."


def _unused(type_: type | tuple[type, ...], doc: str, default: Any = None, choices: tuple[str, ...] = (),
            item: type | None = None) -> Key:
    """A key polybuild accepts without acting on it: its values are cargo-deny's to check (older cargo-deny versions
    took other values), so they are documented, not enforced."""
    values = f" cargo-deny takes: {', '.join(choices)}." if choices else ""
    return Key(type_, f"{NOT_USED} {doc}{values}", default, item=item)


def _deprecated(type_: type | tuple[type, ...], doc: str) -> Key:
    return Key(type_, f"{DEPRECATED} {doc}")


def _entry(doc: str, **extra: Key) -> Table:
    """A package entry written as a table: cargo-deny's `crate` spec (or the older `name` + `version`)."""
    return Table({
        "crate": Key(str, "The package: a name, name@version or a purl."),
        "name": Key(str, "The package (older cargo-deny spelling)."),
        "version": Key(str, "Only these versions."),
        "reason": Key(str, "Why (shown in the report)."),
        **extra,
    }, doc=doc)


GRAPH = Table({
    "targets": _unused(list, "Target triples (strings or `{ triple, features }`) the graph is resolved for.", []),
    "exclude": _unused(list, "Packages pruned from the graph.", [], item=str),
    "all-features": Key(bool, "Resolve Cargo dependencies with every feature enabled.", False),
    "no-default-features": _unused(bool, "Resolve without default features.", False),
    "features": _unused(list, "Features to enable.", [], item=str),
    "exclude-dev": _unused(bool, "Leave dev-dependencies out (polybuild always does: they never ship).", False),
    "exclude-unpublished": _unused(bool, "Leave unpublished workspace crates out.", False),
}, doc="Which dependency graph is checked.")

# cargo-deny still reads these at the top level, as their `[graph]` / `[output]` spelling.
_TOP_LEVEL_GRAPH = ("targets", "exclude", "features", "all-features", "no-default-features", "exclude-dev")

SCHEMA = Table({
    "graph": GRAPH,
    "output": Table({
        "feature-depth": _unused(int, "How deep feature edges are shown in cargo-deny's graphs.", 1),
    }, doc="cargo-deny's output settings."),
    **{key: _deprecated(GRAPH.keys[key].type, f"Read as `[graph] {key}` when `[graph]` does not set it.")
       for key in _TOP_LEVEL_GRAPH},
    "feature-depth": _deprecated(int, "Ignored (`[output] feature-depth` is cargo-deny's only)."),
    "licenses": Table({
        "version": Key(int, "Schema version (cargo-deny).", 2),
        "allow": Key(list, "Licenses (SPDX ids, or `X WITH Y`) every ecosystem may use.", [], item=str),
        "exceptions": Key(list, "Extra licenses for one package: `{ allow = [...], crate = \"spec\" }`.", [],
                          item=dict),
        "clarify": Key(list, "The license of a package whose metadata is wrong or missing: `{ crate = \"spec\", "
                       "expression = \"MIT\", license-files = [{ path = \"LICENSE\", hash = 0x... }] }`; used only "
                       "while the files' CRC32 hashes still match.", [], item=dict),
        "confidence-threshold": Key((float, int), "Minimum score for a license detected from its text.", 0.8),
        "private": Table({
            "ignore": Key(bool, "The workspace's own packages are not checked (polybuild's default; cargo-deny's "
                          "is false): they are reported with their own license, never as third parties.", True),
            "ignore-sources": _unused(list, "Registries whose crates are not checked.", [], item=str),
            "registries": _unused(list, "Private registries the workspace publishes to.", [], item=str),
        }, doc="The workspace's own packages."),
        "unused-allowed-license": Key(str, "What to do with an allowed license nothing uses.", "allow",
                                      choices=_LEVEL),
        "unused-license-exception": Key(str, "What to do with an exception that matches no package.", "allow",
                                        choices=_LEVEL),
        "include-dev": _unused(bool, "Check dev-dependencies too (polybuild never does: they never ship).", False),
        "include-build": _unused(bool, "Check build-dependencies (polybuild always does).", True),
        "unlicensed": _deprecated(str, "Ignored: unlicensed packages are always denied."),
        "allow-osi-fsf-free": _deprecated(str, "Ignored: list the licenses in `allow`."),
        "copyleft": _deprecated(str, "Ignored: list the licenses in `allow`."),
        "default": _deprecated(str, "Ignored: licenses not in `allow` are always denied."),
        "deny": _deprecated(list, "Ignored: licenses not in `allow` are always denied."),
        "rust": FreeTable("`allow = [...]`: licenses only Rust crates may use.", value_types=(list,)),
        "python": FreeTable("`allow = [...]`: licenses only Python packages may use.", value_types=(list,)),
        "go": FreeTable("`allow = [...]`: licenses only Go modules may use.", value_types=(list,)),
    }, doc="License policy."),
    "bans": Table({
        "multiple-versions": Key(str, "Two versions of one package in one ecosystem.", "warn", choices=_LEVEL),
        "multiple-versions-include-dev": _unused(bool, "Count dev-dependencies as duplicates.", False),
        "wildcards": _unused(str, "Wildcard version requirements.", "allow", choices=_LEVEL),
        "allow-wildcard-paths": _unused(bool, "Allow wildcards on path dependencies.", False),
        "highlight": _unused(str, "Which duplicate paths cargo-deny's graphs highlight.", "all",
                             choices=("lowest-version", "simplest-path", "all")),
        "deny": Key(list, "Packages that must not be used (spec or `{ crate = \"spec\", reason = \"...\" }`).", []),
        "allow": Key(list, "When set, only these packages may be used.", []),
        "allow-workspace": _unused(bool, "Workspace crates pass `allow` without being listed.", False),
        "skip": Key(list, "Packages exempt from the multiple-versions check.", []),
        "skip-tree": Key(list, "Packages whose whole subtree is exempt from the multiple-versions check.", []),
        "features": _unused(list, "Feature bans per crate.", []),
        "external-default-features": _unused(str, "Default features of external crates.", "allow", choices=_LEVEL),
        "workspace-default-features": _unused(str, "Default features of workspace crates.", "allow",
                                              choices=_LEVEL),
        "allow-build-scripts": _unused(list, "Crates allowed to have build scripts.", []),
        "build": Table({
            "allow-build-scripts": _unused(list, "Crates allowed to have build scripts.", []),
            "executables": _unused(str, "Executables shipped in crates.", "deny", choices=_LEVEL),
            "interpreted": _unused(str, "Interpreted scripts shipped in crates.", "allow", choices=_LEVEL),
            "script-extensions": _unused(list, "Extensions counted as scripts.", [], item=str),
            "bypass": _unused(list, "Per-crate exemptions.", [], item=dict),
            "enable-builtin-globs": _unused(bool, "cargo-deny's built-in script globs.", False),
            "include-dependencies": _unused(bool, "Check dependencies too.", False),
            "include-workspace": _unused(bool, "Check workspace crates too.", False),
            "include-archives": _unused(bool, "Check archives too.", False),
        }, doc=f"{NOT_USED} Build-script and executable checks."),
        "workspace-dependencies": Table({
            "duplicates": _unused(str, "A dependency declared in the workspace and in a member.", "deny",
                                  choices=_LEVEL),
            "include-path-dependencies": _unused(bool, "Count path dependencies.", True),
            "unused": _unused(str, "Workspace dependencies no member uses.", "deny", choices=_LEVEL),
        }, doc=f"{NOT_USED} Checks of `[workspace.dependencies]`."),
        "std-replacements": Table({
            "scope": _unused(str, "Which crates are considered.", "workspace", choices=_SCOPE),
            "level": _unused(str, "The lint level.", "deny", choices=_LEVEL),
            "rust-version": _unused(str, "The Rust version for crates that declare none."),
            "ignore": _unused(list, "Crates not reported.", []),
            "ignore-rust-version": _unused(str, "Where `rust-version` is ignored.", "none", choices=_SCOPE),
        }, doc=f"{NOT_USED} Crates that `std` or `core` replace."),
        "workspace-duplicates": _deprecated(str, "Ignored (now `[bans.workspace-dependencies] duplicates`)."),
        "unused-workspace-dependencies": _deprecated(str, "Ignored (now `[bans.workspace-dependencies] unused`)."),
    }, doc="Banned and duplicated packages."),
    "sources": Table({
        "unknown-registry": Key(str, "A crate from a registry not in allow-registry.", "warn", choices=_LEVEL),
        "unknown-git": Key(str, "A crate from a git repository not in allow-git.", "warn", choices=_LEVEL),
        "allow-registry": Key(list, "Registries crates may come from.", ["https://github.com/rust-lang/crates.io-index"],
                              item=str),
        "allow-git": Key(list, "Git repositories crates may come from.", [], item=str),
        "allow-org": Table({
            "github": Key(list, "github.com organisations.", [], item=str),
            "gitlab": Key(list, "gitlab.com organisations.", [], item=str),
            "bitbucket": Key(list, "bitbucket.org organisations.", [], item=str),
        }, doc="Organisations git sources may belong to."),
        "private": _unused(list, "Private git hosts.", [], item=str),
        "required-git-spec": _unused(str, "The least specific git reference allowed.",
                                     choices=("any", "branch", "tag", "rev")),
        "unused-allowed-source": _unused(str, "An allowed source nothing uses.", "warn", choices=_LEVEL),
        "unused-allowed-org": _unused(str, "An allowed organisation nothing uses.", "warn", choices=_LEVEL),
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
        "db-urls": _unused(list, "Advisory databases to fetch (polybuild reads `db-path` only).", [], item=str),
        "ignore": Key(list, "Advisory ids (or `{ id = \"...\", reason = \"...\" }`) not reported.", []),
        "yanked": _unused(str, "Yanked crate versions.", "warn", choices=_LEVEL),
        "disable-yank-checking": _unused(bool, "Skip the yank check.", False),
        "unmaintained": _unused(str, "Which crates unmaintained advisories apply to.", "all", choices=_SCOPE),
        "unsound": _unused(str, "Which crates unsound advisories apply to.", "workspace", choices=_SCOPE),
        "git-fetch-with-cli": _unused(bool, "Fetch databases with the git command.", False),
        "maximum-db-staleness": _unused(str, "How old a database may be (RFC 3339 duration).", "P90D"),
        "unused-ignored-advisory": _unused(str, "An ignored advisory that matches nothing.", "warn", choices=_LEVEL),
        "vulnerability": _deprecated(str, "Ignored: advisories in `db-path` are always errors."),
        "notice": _deprecated(str, "Ignored."),
        "severity-threshold": _deprecated((str, float, int), "Ignored: ignore advisories by id instead."),
        "db-url": _deprecated(str, "Ignored (now `db-urls`, a list)."),
    }, doc="Security advisories."),
}, doc="The dependency policy: cargo-deny's schema as it is (every key of cargo-deny 0.20, and the deprecated ones "
    "it still reads), extended to Python and Go. Keys polybuild does not act on are accepted with a one-line note; "
    "a key cargo-deny does not have either is an error naming file and line.")

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
# Package lists whose entries may be tables, and the keys such a table may have.
ENTRIES = {
    ("bans", "deny"): _entry("An entry of `[bans] deny` written as a table.",
                             **{"wrappers": _unused(list, "Crates that may still depend on it directly.", []),
                                "deny-multiple-versions": _unused(bool, "Also deny duplicates of it.", False),
                                "use-instead": _unused(str, "What to use instead (shown in cargo-deny's report).")}),
    ("bans", "allow"): _entry("An entry of `[bans] allow` written as a table."),
    ("bans", "skip"): _entry("An entry of `[bans] skip` written as a table."),
    ("bans", "skip-tree"): _entry("An entry of `[bans] skip-tree` written as a table.",
                                  depth=_unused(int, "How deep the skipped tree goes.")),
    ("bans", "features"): _entry(f"{NOT_USED} An entry of `[bans] features`.",
                                 allow=_unused(list, "Features allowed."), deny=_unused(list, "Features denied."),
                                 exact=_unused(bool, "The enabled features must be exactly `allow`.")),
}

_PURL = re.compile(r"^pkg:(cargo|pypi|golang)/(.+?)(?:@([^@]+))?$")


@dataclass(frozen=True)
class Spec:
    """A package selector: ecosystem (None = any), name, and optionally one exact version or a version requirement
    as cargo-deny takes them (`name@1.2.3` is exact; `name:<0.3,>=0.1` and the older `version` key are
    requirements, with Cargo's semver rules)."""

    ecosystem: str | None
    name: str
    version: str | None = None
    requirement: str | None = None

    def matches(self, ecosystem: str, name: str, version: str) -> bool:
        if self.ecosystem not in (None, ecosystem):
            return False
        if ecosystem == "pypi":
            same = canonicalize_name(self.name) == canonicalize_name(name)
        else:  # a golang purl spells the module path in lowercase
            same = self.name == name or (ecosystem == "golang" and self.name == name.lower())
        if not same or self.version not in (None, version, version.lstrip("v")):
            return False
        return self.requirement is None or satisfies(version, self.requirement)

    @classmethod
    def parse(cls, text: str, version: str | None = None) -> Spec:
        """A string spec; `version` is the older table format's `version` key."""
        m = _PURL.match(text)
        if m:
            from urllib.parse import unquote

            if m[1] in ("pypi", "golang"):  # no semver requirements outside Cargo: a version is exact
                return cls(m[1], unquote(m[2]), m[3] or version)
            return cls(m[1], unquote(m[2]), m[3], None if m[3] else version)
        name, at, at_version = text.partition("@")
        if at:
            return cls(None, name, at_version)
        name, colon, requirement = text.partition(":")
        return cls(None, name, None, requirement if colon else version)


_COMPARATOR = re.compile(r"^\s*(=|>=|<=|>|<|~|\^)?\s*v?(\*|\d+)(?:\.(\*|\d+))?(?:\.(\*|\d+))?"
                         r"(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?\s*$")
_VERSION = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?")


def satisfies(version: str, requirement: str) -> bool:
    """Cargo's version requirements: comparators separated by commas, each an operator (`^` when none) and a
    version that may be partial (`1.2`) or a wildcard (`1.*`, `*`). A version that is not semver-like matches only
    a requirement spelled exactly like it."""
    found = _VERSION.match(version)
    if found is None:
        return requirement.strip() in (version, f"={version}")
    key = (*(int(n or 0) for n in found.groups()[:3]), _pre_key(found[4]))
    return all(_compare(part, key) for part in requirement.split(","))


def valid_requirement(requirement: str) -> bool:
    return all(_COMPARATOR.match(part) for part in requirement.split(","))


def _compare(comparator: str, key: tuple) -> bool:
    m = _COMPARATOR.match(comparator)
    if m is None:
        return False
    op = m[1] or "^"
    nums: list[int] = []
    for part in (m[2], m[3], m[4]):
        if part is None or part == "*":
            if part == "*" and op == "^":
                op = "="  # `1.*` is `=1`
            break
        nums.append(int(part))
    if not nums:
        return True
    lower = (*nums, *[0] * (3 - len(nums)), _pre_key(m[5]))

    def bump(i: int) -> tuple:
        return (*nums[:i], nums[i] + 1, *[0] * (2 - i), (0, ()))

    partial = len(nums) < 3
    if op == "=":
        return lower <= key < bump(len(nums) - 1) if partial else key == lower
    if op == "^":
        upper = bump(0) if nums[0] > 0 or len(nums) == 1 else bump(1) if nums[1] > 0 or len(nums) == 2 else bump(2)
        return lower <= key < upper
    if op == "~":
        return lower <= key < (bump(1) if len(nums) >= 2 else bump(0))
    if op == ">":
        return key >= bump(len(nums) - 1) if partial else key > lower
    if op == ">=":
        return key >= lower
    if op == "<":
        return key < lower
    return key < bump(len(nums) - 1) if partial else key <= lower  # "<="


def _pre_key(pre: str | None) -> tuple:
    """A release sorts after its pre-releases; pre-release identifiers compare numerically where they are numbers."""
    if pre is None:
        return (1,)
    return (0, tuple((0, int(x), "") if x.isdigit() else (1, 0, x) for x in pre.split(".")))


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
    notes: tuple[str, ...] = ()  # one line each: an empty policy, keys accepted but not acted on, deprecated keys

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
        empty = (f"{display} not found: the policy is empty, so no license is allowed (every third-party package "
                 "fails `polybuild deny`), nothing is clarified and license texts are detected at the default "
                 "confidence 0.8; create it (`cargo deny init` writes a template) or set [licenses] policy")
        return Policy(None, validator.check(SCHEMA, {}, ()), (), (), (empty,))
    doc = load(path, display=display)
    validator = Validator(doc)
    data = validator.check(SCHEMA, doc.data, ())
    for key in _TOP_LEVEL_GRAPH:  # cargo-deny's older spelling, read as [graph] unless that sets the key
        if key in doc.data and key not in doc.data.get("graph", {}):
            data["graph"][key] = doc.data[key]
    for keypath, entry in ENTRIES.items():
        for i, item in enumerate(data[keypath[0]][keypath[1]]):
            if isinstance(item, dict):
                validator.check(entry, item, (*keypath, str(i)))
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
    return Policy(doc, data, tuple(exceptions), tuple(clarifications), _notes(doc.data, display))


def _notes(raw: dict[str, Any], display: str) -> tuple[str, ...]:
    """One line for the keys polybuild accepts without acting on them, one for cargo-deny's deprecated keys."""
    unused: list[str] = []
    deprecated: list[str] = []
    _marked_keys(raw, SCHEMA, (), unused, deprecated)
    notes = []
    if unused:
        notes.append(f"{display}: accepted, but polybuild does not act on: {', '.join(unused)}")
    if deprecated:
        notes.append(f"{display}: deprecated or removed by cargo-deny (see `polybuild config-reference --deny`): "
                     f"{', '.join(deprecated)}")
    return tuple(notes)


def _marked_keys(raw: dict[str, Any], node: Table, path: tuple[str, ...], unused: list[str],
                 deprecated: list[str]) -> None:
    for key, value in raw.items():
        child = node.keys[key]
        name = ".".join((*path, key))
        if child.doc.startswith(NOT_USED):
            unused.append(name)
        elif child.doc.startswith(DEPRECATED):
            deprecated.append(name)
        elif isinstance(child, Table):
            _marked_keys(value, child, (*path, key), unused, deprecated)
        elif (*path, key) in ENTRIES:
            entry = ENTRIES[(*path, key)]
            used = {k for item in value if isinstance(item, dict) for k in item}
            unused += [f"{name}[].{k}" for k in entry.keys if k in used and entry.keys[k].doc.startswith(NOT_USED)]


def _spec(validator: Validator, item: dict[str, Any], where: tuple[str, ...]) -> Spec:
    name = item.get("crate") or item.get("name")
    if not name:
        raise validator.error(where, "each entry needs 'crate' (a name, name@version or purl)")
    spec = Spec.parse(name, item.get("version"))
    if spec.requirement is not None and not valid_requirement(spec.requirement):
        raise validator.error(where, f"'{spec.requirement}' is not a version requirement (for {spec.name})",
                              hint="Cargo's syntax: `*`, `1.2`, `^1.2.3`, `=0.6.5`, `>=0.1, <0.3`")
    return spec


def spec_of(entry: Any, policy: Policy, where: str) -> Spec:
    """A bans/skip entry: a string spec, or a table with `crate`/`name` (and `version`)."""
    spec = None
    if isinstance(entry, str):
        spec = Spec.parse(entry)
    elif isinstance(entry, dict) and isinstance(entry.get("crate") or entry.get("name"), str):
        spec = Spec.parse(entry.get("crate") or entry.get("name"), entry.get("version"))
    if spec is not None:
        if spec.requirement is not None and not valid_requirement(spec.requirement):
            raise UserError(f"{policy.where(*where.split('.'))}: '{spec.requirement}' is not a version requirement "
                            f"(in an entry of {where} for {spec.name})",
                            hint="Cargo's syntax: `*`, `1.2`, `^1.2.3`, `=0.6.5`, `>=0.1, <0.3`")
        return spec
    raise UserError(f"{policy.where(*where.split('.'))}: entries of {where} are a package spec or "
                    "{{ crate = \"spec\" }}")
