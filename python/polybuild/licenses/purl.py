"""Package URLs (purls) for cargo, PyPI and Go packages, spelled the way the purl specification (ECMA-427) and its
type definitions want them: SBOM consumers match components with vulnerability databases and with other tools' SBOMs
by purl, so one spelling per package matters more than how readable it is.

- cargo: `pkg:cargo/<name>@<version>`, the crate name as published (case kept).
- pypi: `pkg:pypi/<name>@<version>`, the name lowercased with `_` replaced by `-` (the pypi type's rule).
- golang: `pkg:golang/<namespace>/<name>@<version>`, the module path split at its last `/`, lowercased as the golang
  type definition requires (Go refuses module paths that differ only in case within one build, so nothing collides;
  the exact module path stays in the SBOM component's name). A module path of one element (`go.opencensus.io`,
  `gotest.tools`, or a local `module demo`) is a name without a namespace: `pkg:golang/go.opencensus.io`. The type
  definition calls the namespace required, but it predates modules (purl-spec issue #63); the core specification
  makes the namespace optional, and Syft, Trivy, OSV and packageurl-python write and read these purls so.

Every segment is percent-encoded on its own (`/` separates namespace segments and is never encoded), so a Go
`+incompatible` version becomes `%2Bincompatible`. A tiny implementation instead of packageurl-python: polybuild does
not depend on that package at run time, and three ecosystems need only these few rules.
"""

from __future__ import annotations

from urllib.parse import quote


class PurlError(ValueError):
    """A package that cannot be written as a purl (the message says why)."""


def purl(ecosystem: str, name: str, version: str | None = None) -> str:
    """The purl of one package version (`version=None` for the package as a whole)."""
    if not name:
        raise PurlError(f"empty {ecosystem} package name")
    if ecosystem == "cargo":
        path = _encode(name)
    elif ecosystem == "pypi":
        path = _encode(pypi_name(name))
    elif ecosystem == "golang":
        path = _golang_path(name)
    else:
        raise PurlError(f"no purl type for ecosystem '{ecosystem}' (known: cargo, pypi, golang)")
    suffix = f"@{_encode(version)}" if version else ""
    return f"pkg:{ecosystem}/{path}{suffix}"


def pypi_name(name: str) -> str:
    """The pypi purl spelling of a distribution name: lowercase, `_` as `-`."""
    return name.lower().replace("_", "-")


def _golang_path(module: str) -> str:
    segments = module.lower().split("/")
    if not all(segments):
        raise PurlError(f"Go module path '{module}' has an empty element")
    return "/".join(_encode(segment) for segment in segments)


def _encode(segment: str) -> str:
    """Percent-encode everything but the unreserved characters and `:` (which the spec leaves as is)."""
    return quote(segment, safe=":")
