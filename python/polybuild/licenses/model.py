"""The data every license stage shares: third-party (and workspace) packages with their license evidence, and the
license each one resolves to. Inventories produce `Package`s; resolution turns them into `Resolved`; the policy
check and the writers (attributions, SBOMs) read only these."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

ECOSYSTEMS = ("cargo", "pypi", "golang")


@dataclass(frozen=True)
class LicenseFile:
    """A license or NOTICE text shipped inside the package itself."""

    path: str  # relative to the package's root, e.g. "LICENSE-MIT" or "pkg.dist-info/licenses/LICENSE"
    kind: str  # "license", "notice" or "documentation" (a license of the documentation only: not the package's)
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


@dataclass
class Package:
    """One package version in the inventory, with everything that says what its license is."""

    ecosystem: str  # one of ECOSYSTEMS
    name: str  # as the ecosystem spells it (crate name, normalized distribution name, module path)
    version: str
    purl: str  # pkg:cargo/serde@1.0.1, pkg:pypi/jinja2@3.1.6, pkg:golang/github.com/x/y@v1.2.3
    declared: str | None = None  # the license as the manifest declares it, verbatim (SPDX for Cargo and PEP 639)
    legacy: str | None = None  # Python's legacy `License:` field, verbatim
    classifiers: tuple[str, ...] = ()  # Python's `License ::` trove classifiers
    files: list[LicenseFile] = field(default_factory=list)
    source: str = ""  # where it comes from: "crates.io", "pypi", "proxy.golang.org", "path", "git+<url>", ...
    url: str | None = None  # a link to this exact version (crates.io/crates/x/1.2.3, pypi.org/project/x/1.2.3/)
    workspace: bool = False  # one of the workspace's own packages
    dependents: list[tuple[str, ...]] = field(default_factory=list)  # chains from a workspace target to here

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.ecosystem, self.name, self.version)


@dataclass
class Resolved:
    """The license chosen for a package, and how it was chosen."""

    package: Package
    expression: str | None  # an SPDX expression; None means unlicensed
    how: str  # "clarify", "declared", "legacy", "detected" or "unlicensed"
    confidence: float | None = None  # for "detected"
    warnings: list[str] = field(default_factory=list)
