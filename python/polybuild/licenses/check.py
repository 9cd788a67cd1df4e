"""The policy check: licenses, bans, sources and advisories over every ecosystem, each violation naming the
package, version, ecosystem, license expression and the workspace targets that pull it in."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from polybuild.licenses.expression import License, parse, satisfied
from polybuild.licenses.model import Package, Resolved
from polybuild.licenses.policy import Policy, Spec, spec_of

_OSV_ECOSYSTEM = {"crates.io": "cargo", "PyPI": "pypi", "Go": "golang"}


@dataclass(frozen=True)
class Violation:
    check: str  # "licenses", "bans", "sources" or "advisories"
    severity: str  # "deny" or "warn"
    package: Package | None
    message: str
    expression: str | None = None

    def describe(self) -> str:
        p = self.package
        if p is None:
            return f"{self.severity}[{self.check}]: {self.message}"
        lines = [f"{self.severity}[{self.check}]: {p.ecosystem} {p.name} {p.version}: {self.message}"]
        if self.expression is not None:
            lines.append(f"    license: {self.expression}")
        for chain in p.dependents[:3]:
            lines.append(f"    pulled in by: {' -> '.join(chain)}")
        return "\n".join(lines)


def check(resolved: list[Resolved], policy: Policy, root: Path) -> list[Violation]:
    """Every violation, errors and warnings, in a stable order."""
    third_party = [r for r in resolved if not (r.package.workspace and _private_ignored(policy))]
    found = _licenses(third_party, policy) + _bans([r.package for r in third_party], policy)
    found += _sources([r.package for r in third_party], policy)
    found += _advisories([r.package for r in third_party], policy, root)
    return found


def _private_ignored(policy: Policy) -> bool:
    """The workspace's own packages are private (cargo-deny's `[licenses.private] ignore`) unless the policy says
    `ignore = false`: they are reported with their own license, never checked as third parties."""
    return bool(policy.data["licenses"]["private"]["ignore"])


def _licenses(resolved: list[Resolved], policy: Policy) -> list[Violation]:
    found = []
    used: set[str] = set()
    for r in resolved:
        p = r.package
        for warning in r.warnings:
            found.append(Violation("licenses", "warn", p, warning, r.expression))
        if r.expression is None:
            files = ", ".join(f.path for f in p.files) or "none"
            found.append(Violation("licenses", "deny", p, f"unlicensed: no declared license and no license text "
                                   f"recognised (license files: {files}); add a [[licenses.clarify]] entry", None))
            continue
        allowed = {a.lower() for a in policy.allowed_licenses(p.ecosystem) | policy.exception_for(
            p.ecosystem, p.name, p.version)}

        def ok(lic: License, allowed: set[str] = allowed) -> bool:
            if str(lic).lower() in allowed:
                used.add(str(lic).lower())
                return True
            return False

        if not satisfied(parse(r.expression), ok):
            how = f" ({r.how}{f', {r.confidence:.2f}' if r.confidence else ''})" if r.how != "declared" else ""
            found.append(Violation("licenses", "deny", p, f"license not allowed{how}; allow it in "
                                   "[licenses].allow or add an exception for this package", r.expression))
    level = policy.data["licenses"]["unused-allowed-license"]
    if level != "allow":
        for lic in sorted(set(policy.data["licenses"]["allow"]) - {u for u in used}):
            if lic.lower() not in used:
                found.append(Violation("licenses", level, None, f"allowed license {lic} is not used by any package"))
    return found + _unused_exceptions(resolved, policy)


def _unused_exceptions(resolved: list[Resolved], policy: Policy) -> list[Violation]:
    """cargo-deny's `unused-license-exception`: an exception whose package is not in the graph."""
    level = policy.data["licenses"]["unused-license-exception"]
    if level == "allow":
        return []
    packages = [r.package for r in resolved]
    return [Violation("licenses", level, None, f"the license exception for {_spec_text(spec)} matches no package")
            for spec, _ in policy.exceptions
            if not any(spec.matches(p.ecosystem, p.name, p.version) for p in packages)]


def _spec_text(spec: Spec) -> str:
    text = f"{spec.name}@{spec.version}" if spec.version else spec.name
    return f"{spec.ecosystem} {text}" if spec.ecosystem else text


def _bans(packages: list[Package], policy: Policy) -> list[Violation]:
    bans = policy.data["bans"]
    deny = [(spec_of(e, policy, "bans.deny"), e) for e in bans["deny"]]
    allow = [spec_of(e, policy, "bans.allow") for e in bans["allow"]]
    skip = [spec_of(e, policy, "bans.skip") for e in bans["skip"] + bans["skip-tree"]]
    found = []
    for p in packages:
        for spec, entry in deny:
            if spec.matches(p.ecosystem, p.name, p.version):
                reason = entry.get("reason") if isinstance(entry, dict) else None
                found.append(Violation("bans", "deny", p, f"banned by [bans].deny{f': {reason}' if reason else ''}"))
        if allow and not any(s.matches(p.ecosystem, p.name, p.version) for s in allow):
            found.append(Violation("bans", "deny", p, "not in [bans].allow"))
    level = bans["multiple-versions"]
    if level != "allow":
        versions: dict[tuple[str, str], list[Package]] = defaultdict(list)
        for p in packages:
            if not any(s.matches(p.ecosystem, p.name, p.version) for s in skip):
                versions[(p.ecosystem, p.name)].append(p)
        for (_, name), same in sorted(versions.items()):
            if len(same) > 1:
                listed = ", ".join(sorted(q.version for q in same))
                found.append(Violation("bans", level, same[0], f"{len(same)} versions of {name} ({listed}); "
                                       "unify them or add one to [bans].skip"))
    return found


def _sources(packages: list[Package], policy: Policy) -> list[Violation]:
    src = policy.data["sources"]
    found = []
    for p in packages:
        if p.workspace:
            continue
        if p.ecosystem == "cargo":
            if p.source.startswith("git+"):
                repo = p.source[4:].split("?")[0].split("#")[0]
                if not _git_allowed(repo, src):
                    found.append(Violation("sources", src["unknown-git"], p, f"from git repository {repo}, which "
                                           "is not in [sources].allow-git"))
            elif p.source.startswith(("registry+", "sparse+")):
                registry = p.source.split("+", 1)[1]
                allowed = {r.removeprefix("sparse+") for r in src["allow-registry"]}
                crates_io = {"https://github.com/rust-lang/crates.io-index", "https://index.crates.io/"}
                if registry not in allowed and not (registry in crates_io and allowed & crates_io):
                    found.append(Violation("sources", src["unknown-registry"], p, f"from registry {registry}, "
                                           "which is not in [sources].allow-registry"))
        elif p.ecosystem == "pypi" and src["python"]["allow-indexes"] and p.source.startswith("index:"):
            index = p.source[len("index:"):]
            if index.rstrip("/") not in {i.rstrip("/") for i in src["python"]["allow-indexes"]}:
                found.append(Violation("sources", src["python"]["unknown-index"], p, f"from index {index}, which "
                                       "is not in [sources.python].allow-indexes"))
        elif p.ecosystem == "golang":
            prefixes = src["go"]["allow-prefixes"]
            if prefixes and not any(p.name == x or p.name.startswith(x.rstrip("/") + "/") for x in prefixes):
                found.append(Violation("sources", "deny", p, "module path not under [sources.go].allow-prefixes"))
            if p.source.startswith("replace:") and not src["go"]["allow-replace"]:
                found.append(Violation("sources", "deny", p, f"replaced ({p.source}), and [sources.go] "
                                       "allow-replace is false"))
    return found


def _git_allowed(repo: str, src: dict) -> bool:
    if repo in src["allow-git"]:
        return True
    for host, orgs in src["allow-org"].items():
        for org in orgs:
            if repo.startswith((f"https://{host}.com/{org}/", f"https://{host}.org/{org}/")):
                return True
    return False


def _advisories(packages: list[Package], policy: Policy, root: Path) -> list[Violation]:
    conf = policy.data["advisories"]
    if not conf["db-path"]:
        return []
    db = Path(conf["db-path"]).expanduser()
    db = db if db.is_absolute() else root / db
    files = sorted(db.rglob("*.json")) if db.is_dir() else []
    if not files:  # cargo-deny clones its databases into db-path (RustSec's format): not for polybuild to read
        state = "has no OSV JSON files" if db.is_dir() else "does not exist"
        return [Violation("advisories", "warn", None, f"advisories not checked: db-path {db} "
                          f"({policy.where('advisories', 'db-path')}) {state}; polybuild reads OSV JSON files "
                          "there, while cargo-deny clones its databases into it")]
    ignored = {e if isinstance(e, str) else e.get("id") for e in conf["ignore"]}
    index: dict[tuple[str, str], list[Package]] = defaultdict(list)
    for p in packages:
        index[(p.ecosystem, _norm(p.ecosystem, p.name))].append(p)
    found = []
    for path in files:
        advisory = json.loads(path.read_text(encoding="utf-8"))
        if advisory.get("id") in ignored or advisory.get("withdrawn"):
            continue
        for affected in advisory.get("affected", []):
            pkg = affected.get("package", {})
            eco = _OSV_ECOSYSTEM.get(pkg.get("ecosystem", ""))
            for p in index.get((eco, _norm(eco or "", pkg.get("name", ""))), []):
                if _affects(affected, p.version):
                    summary = advisory.get("summary") or advisory.get("details", "")[:100]
                    found.append(Violation("advisories", "deny", p, f"{advisory['id']}: {summary}"))
    return found


def _norm(ecosystem: str, name: str) -> str:
    return canonicalize_name(name) if ecosystem == "pypi" else name


def _affects(affected: dict, version: str) -> bool:
    """OSV: listed versions, or SEMVER/ECOSYSTEM ranges of introduced/fixed events."""
    if version in affected.get("versions", []):
        return True
    key = _version_key(version)
    for rng in affected.get("ranges", []):
        if rng.get("type") not in ("SEMVER", "ECOSYSTEM"):
            continue
        inside = False
        for event in rng.get("events", []):
            if "introduced" in event and (event["introduced"] == "0" or _version_key(event["introduced"]) <= key):
                inside = True
            if "fixed" in event and _version_key(event["fixed"]) <= key:
                inside = False
            if "last_affected" in event and _version_key(event["last_affected"]) < key:
                inside = False
        if inside:
            return True
    return False


def _version_key(version: str) -> tuple:
    from packaging.version import InvalidVersion, Version

    try:
        return (Version(version.lstrip("v")),)
    except InvalidVersion:
        return (Version("0"),)

