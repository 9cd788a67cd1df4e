"""SBOMs of resolved packages: CycloneDX 1.6 and SPDX 2.3 JSON, as pure functions from data to dicts.

Both are reproducible: lists are sorted, identifiers (serial number, document namespace, SPDX ids) are derived from the
content, and the only time written is SOURCE_DATE_EPOCH. A package's chains in `Package.dependents` give the
dependency edges: each chain goes from a workspace target (its id, `[extra]` allowed) through the packages in between
(`name@version` labels, or purls) down to the package. A workspace target that is not itself a package in the document
becomes a component of its own, marked as the workspace's.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression

from polybuild import __version__
from polybuild.licenses.model import LicenseFile, Resolved
from polybuild.licenses.purl import pypi_name

NOASSERTION = "NOASSERTION"
SUBJECT = "polybuild:subject"
_TARGET = "polybuild:target:"
_OPERATORS = ("AND", "OR", "WITH")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")
_EXTRA = re.compile(r"\[[^\]]*\]$")  # `polybuild[server]`: the target or package, reached through an extra
_CYCLONEDX_TYPES = {"workspace": "application", "binary": "application", "image": "container",
                    "wheel": "library", "crate": "library", "library": "library"}
_SPDX_PURPOSES = {"application": "APPLICATION", "container": "CONTAINER", "library": "LIBRARY"}


@dataclass(frozen=True)
class Subject:
    """What a report documents: the whole workspace, or one artifact (wheel, binary, image) built from it."""

    name: str
    version: str
    kind: str = "workspace"  # "workspace", "wheel", "crate", "binary" or "image"
    sha256: str | None = None  # of the artifact, when there is one
    purl: str | None = None  # of the artifact, when it has one (pkg:pypi/..., pkg:oci/...)

    def describe(self) -> str:
        return f"the {self.kind} {self.name} {self.version}"


def source_date() -> str | None:
    """SOURCE_DATE_EPOCH as an ISO 8601 UTC time, or None when unset: the only clock a reproducible report reads."""
    raw = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not raw:
        return None
    try:
        seconds = int(raw)
    except ValueError:
        raise ValueError(f"SOURCE_DATE_EPOCH must be a whole number of seconds since 1970, not '{raw}'") from None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ordered(resolved: Iterable[Resolved]) -> list[Resolved]:
    """Packages in one stable order (ecosystem, name, version), refusing two entries for the same purl."""
    result = sorted(resolved, key=lambda r: (r.package.ecosystem, r.package.name, r.package.version, r.package.purl))
    for before, after in itertools.pairwise(result):
        if before.package.purl == after.package.purl:
            raise ValueError(f"package {after.package.purl} is listed twice")
    return result


# --- SPDX license expressions --------------------------------------------------------------------------------------


def spdx_expression(text: str | None) -> str | None:
    """`text` as a valid SPDX expression, or None when it is not one (unknown ids, bad syntax, nothing)."""
    if not text:
        return None
    try:
        return canonicalize_license_expression(text)
    except InvalidLicenseExpression:
        return None


def concluded_expression(text: str | None) -> str | None:
    """A resolved license as a valid SPDX expression: ids off the SPDX list become `LicenseRef-<id>` so the
    structure survives; what still does not parse becomes one LicenseRef for the whole text."""
    if not text:
        return None
    valid = spdx_expression(text)
    if valid:
        return valid
    tokens = re.findall(r"[()]|[^\s()]+", text)
    rewritten = " ".join(_rewrite_token(token, tokens[i - 1] if i else "") for i, token in enumerate(tokens))
    return spdx_expression(rewritten) or license_ref(text)


def license_ref(text: str) -> str:
    """The LicenseRef id standing for a license that the SPDX list does not have."""
    readable = _ID_UNSAFE.sub("-", text.removeprefix("LicenseRef-")).strip("-.")
    return f"LicenseRef-{readable or 'unknown'}"


def license_refs(expression: str | None) -> list[str]:
    """The LicenseRef ids an expression mentions, sorted."""
    return sorted(set(re.findall(r"LicenseRef-[A-Za-z0-9.-]+", expression or "")))


def _rewrite_token(token: str, previous: str) -> str:
    if token in ("(", ")") or token.upper() in _OPERATORS:
        return token.upper()
    if previous.upper() == "WITH" or spdx_expression(token):
        return token
    return license_ref(token)


def _ref_texts(resolved: list[Resolved], expressions: dict[str, list[str | None]]) -> dict[str, str]:
    """For every LicenseRef: the license texts of the packages that use it, each headed by where it comes from."""
    users: dict[str, list[Resolved]] = {}
    for r in resolved:
        for ref in sorted({ref for expr in expressions[r.package.purl] for ref in license_refs(expr)}):
            users.setdefault(ref, []).append(r)
    return {ref: _texts_of(ref, rs) for ref, rs in sorted(users.items())}


def _texts_of(ref: str, users: list[Resolved]) -> str:
    texts = [f"{r.package.purl} {f.path}:\n\n{f.text}" for r in users for f in sorted(r.package.files, key=_file_key)
             if f.kind == "license"]
    if texts:
        return "\n\n".join(texts)
    names = ", ".join(r.package.purl for r in users)
    return f"{ref}: no license text was found in the package ({names}); see the package's own terms."


def _file_key(f: LicenseFile) -> tuple[str, str, str]:
    return (f.kind, f.path, f.sha256)


# --- the dependency graph ------------------------------------------------------------------------------------------


@dataclass
class SbomGraph:
    """Components and edges shared by both formats. Node ids: a package's purl, `polybuild:target:<name>` for a
    workspace target that is not a package in the document, and SUBJECT for what the document describes."""

    packages: list[Resolved]
    targets: list[str] = field(default_factory=list)  # node ids of the workspace targets
    edges: dict[str, list[str]] = field(default_factory=dict)  # node id -> the node ids it depends on, sorted


def graph(subject: Subject, resolved: Iterable[Resolved]) -> SbomGraph:
    """Edges from the dependents chains; the subject depends on every chain's head and on anything no chain reaches
    (so that nothing in the document floats free of what it describes)."""
    packages = [r for r in ordered(resolved) if r.package.purl != subject.purl]
    nodes_of = {r.package.purl: r.package.purl for r in packages}
    nodes_of |= {_label_key(r.package.ecosystem, r.package.name, r.package.version): r.package.purl for r in packages}
    if subject.purl:
        nodes_of[subject.purl] = SUBJECT
    edges: dict[str, set[str]] = {SUBJECT: set()}
    for r in packages:
        for chain in r.package.dependents:
            nodes = [_node(element, r.package.ecosystem, nodes_of) for element in _full_chain(chain, r.package.purl)]
            for parent, child in itertools.pairwise([SUBJECT, *nodes]):
                if parent and child and parent != child:
                    edges.setdefault(parent, set()).add(child)
    edges[SUBJECT] |= {r.package.purl for r in packages} - _reachable(edges)
    targets = sorted({n for n in (*edges, *(d for deps in edges.values() for d in deps)) if n.startswith(_TARGET)})
    return SbomGraph(packages, targets, {node: sorted(deps) for node, deps in sorted(edges.items())})


def _full_chain(chain: tuple[str, ...], purl: str) -> list[str]:
    return list(chain) if chain and chain[-1] == purl else [*chain, purl]


def _node(element: str, ecosystem: str, nodes_of: dict[str, str]) -> str | None:
    """A chain element (a purl, a `name[extra]@version` label, or a workspace target id) as a node id; None for a
    package outside this document (its edges are left out)."""
    if element in nodes_of:
        return nodes_of[element]
    name, at, version = element.rpartition("@")
    if at:
        return nodes_of.get(_label_key(ecosystem, _EXTRA.sub("", name), version))
    return None if element.startswith("pkg:") else f"{_TARGET}{_EXTRA.sub('', element)}"


def _label_key(ecosystem: str, name: str, version: str) -> str:
    """How the inventories label a package in a chain (`name@version`), spelled the same for any name casing."""
    return f"label:{ecosystem}:{pypi_name(name) if ecosystem == 'pypi' else name}@{version}"


def _reachable(edges: dict[str, set[str]]) -> set[str]:
    seen, stack = set(), [SUBJECT]
    while stack:
        node = stack.pop()
        for child in edges.get(node, ()):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


def target_name(node: str) -> str:
    return node.removeprefix(_TARGET)


# --- CycloneDX 1.6 -------------------------------------------------------------------------------------------------


def cyclonedx(subject: Subject, resolved: Iterable[Resolved]) -> dict[str, Any]:
    """A CycloneDX 1.6 BOM: the subject as metadata.component, one library component per package (bom-ref = purl),
    the workspace targets as components marked `polybuild:workspace`, and the dependency edges."""
    g = graph(subject, resolved)
    subject_ref = subject.purl or f"{SUBJECT}:{subject.kind}:{subject.name}@{subject.version}"
    concluded = {r.package.purl: [concluded_expression(r.expression)] for r in g.packages}
    ref_texts = _ref_texts(g.packages, concluded)
    metadata: dict[str, Any] = {}
    if timestamp := source_date():
        metadata["timestamp"] = timestamp
    metadata["tools"] = {"components": [{"type": "application", "name": "polybuild", "version": __version__}]}
    metadata["component"] = _cdx_subject(subject, subject_ref)
    components = [_cdx_component(r, concluded[r.package.purl][0], ref_texts) for r in g.packages]
    components += [_cdx_target(node) for node in g.targets]
    bom: dict[str, Any] = {
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "metadata": metadata,
        "components": sorted(components, key=lambda c: c["bom-ref"]),
        "dependencies": [{"ref": subject_ref if node == SUBJECT else node,
                          "dependsOn": deps} for node, deps in g.edges.items()],
    }
    bom["dependencies"].sort(key=lambda d: d["ref"])
    return {"serialNumber": f"urn:uuid:{_content_uuid(bom)}", **bom}


def _cdx_subject(subject: Subject, ref: str) -> dict[str, Any]:
    component: dict[str, Any] = {"type": _CYCLONEDX_TYPES.get(subject.kind, "application"), "bom-ref": ref,
                                 "name": subject.name, "version": subject.version}
    if subject.purl:
        component["purl"] = subject.purl
    if subject.sha256:
        component["hashes"] = [{"alg": "SHA-256", "content": subject.sha256}]
    return component


def _cdx_component(r: Resolved, expression: str | None, ref_texts: dict[str, str]) -> dict[str, Any]:
    p = r.package
    component: dict[str, Any] = {"type": "library", "bom-ref": p.purl, "name": p.name, "version": p.version,
                                 "purl": p.purl}
    if expression:
        component["licenses"] = [_cdx_license(expression, ref_texts)]
    if p.url:
        component["externalReferences"] = [{"type": "distribution", "url": p.url}]
    component["properties"] = _cdx_properties(r)
    return component


def _cdx_license(expression: str, ref_texts: dict[str, str]) -> dict[str, Any]:
    """One id as `license.id` (a LicenseRef as `license.name` with its text); anything compound as `expression`."""
    if " " in expression:
        return {"expression": expression, "acknowledgement": "concluded"}
    if expression.startswith("LicenseRef-"):
        text = {"contentType": "text/plain", "content": ref_texts[expression]}
        return {"license": {"name": expression, "acknowledgement": "concluded", "text": text}}
    return {"license": {"id": expression, "acknowledgement": "concluded"}}


def _cdx_properties(r: Resolved) -> list[dict[str, str]]:
    """How the license was chosen, and where the package comes from: what an auditor asks next."""
    props = {"polybuild:license:how": r.how, "polybuild:source": r.package.source}
    if r.package.declared:
        props["polybuild:license:declared"] = r.package.declared
    if r.confidence is not None:
        props["polybuild:license:confidence"] = f"{r.confidence:.2f}"
    if r.package.workspace:
        props["polybuild:workspace"] = "true"
    return [{"name": k, "value": v} for k, v in sorted(props.items()) if v]


def _cdx_target(node: str) -> dict[str, Any]:
    return {"type": "library", "bom-ref": node, "name": target_name(node),
            "properties": [{"name": "polybuild:workspace", "value": "true"}]}


# --- SPDX 2.3 ------------------------------------------------------------------------------------------------------


def spdx(subject: Subject, resolved: Iterable[Resolved]) -> dict[str, Any]:
    """An SPDX 2.3 document: DESCRIBES the subject, which DEPENDS_ON the packages along the dependents chains.
    Non-SPDX licenses appear as LicenseRefs with the package's own texts in hasExtractedLicensingInfos."""
    g = graph(subject, resolved)
    expressions = {r.package.purl: [concluded_expression(r.expression), spdx_expression(r.package.declared)]
                   for r in g.packages}
    ids = {SUBJECT: "SPDXRef-Subject", **{node: spdx_id("Target", node) for node in g.targets},
           **{r.package.purl: spdx_id("Package", r.package.purl) for r in g.packages}}
    packages = [_spdx_subject(subject), *(_spdx_target(node, ids[node]) for node in g.targets),
                *(_spdx_package(r, ids[r.package.purl], *expressions[r.package.purl]) for r in g.packages)]
    relationships = [_relationship("SPDXRef-DOCUMENT", "DESCRIBES", ids[SUBJECT])]
    relationships += [_relationship(ids[node], "DEPENDS_ON", ids[dep])
                      for node, deps in g.edges.items() for dep in deps]
    doc: dict[str, Any] = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{subject.name}-{subject.version}",
        "creationInfo": {"created": source_date() or "1980-01-01T00:00:00Z",
                         "creators": [f"Tool: polybuild-{__version__}"]},
        "packages": sorted(packages, key=lambda p: p["SPDXID"]),
        "relationships": sorted(relationships, key=lambda r: tuple(r.values())),
    }
    extracted = [{"licenseId": ref, "name": ref.removeprefix("LicenseRef-"), "extractedText": text}
                 for ref, text in _ref_texts(g.packages, expressions).items()]
    if extracted:
        doc["hasExtractedLicensingInfos"] = extracted
    namespace = f"https://spdx.org/spdxdocs/polybuild/{_ID_UNSAFE.sub('-', doc['name'])}-{_content_uuid(doc)}"
    return {**doc, "documentNamespace": namespace}


def spdx_id(kind: str, key: str) -> str:
    """A readable SPDX id (letters, digits, `.` and `-` only) with a digest of the key, so that two keys that read
    the same once sanitized (`a_b` and `a.b`) never share an id."""
    readable = _ID_UNSAFE.sub("-", key.removeprefix("pkg:").removeprefix(_TARGET)).strip("-")
    return f"SPDXRef-{kind}-{readable}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def _spdx_subject(subject: Subject) -> dict[str, Any]:
    package: dict[str, Any] = {"SPDXID": "SPDXRef-Subject", "name": subject.name, "versionInfo": subject.version,
                               "downloadLocation": NOASSERTION, "filesAnalyzed": False,
                               "primaryPackagePurpose": _SPDX_PURPOSES[_CYCLONEDX_TYPES.get(subject.kind,
                                                                                            "application")]}
    if subject.sha256:
        package["checksums"] = [{"algorithm": "SHA256", "checksumValue": subject.sha256}]
    if subject.purl:
        package["externalRefs"] = [_purl_ref(subject.purl)]
    return package


def _spdx_target(node: str, spdxid: str) -> dict[str, Any]:
    return {"SPDXID": spdxid, "name": target_name(node), "downloadLocation": NOASSERTION, "filesAnalyzed": False,
            "comment": "a target of the workspace"}


def _spdx_package(r: Resolved, spdxid: str, concluded: str | None, declared: str | None) -> dict[str, Any]:
    p = r.package
    package: dict[str, Any] = {
        "SPDXID": spdxid, "name": p.name, "versionInfo": p.version, "downloadLocation": p.url or NOASSERTION,
        "filesAnalyzed": False, "licenseConcluded": concluded or NOASSERTION,
        "licenseDeclared": declared or NOASSERTION,
        "copyrightText": NOASSERTION, "externalRefs": [_purl_ref(p.purl)], "primaryPackagePurpose": "LIBRARY",
        "licenseComments": _how(r),
    }
    if p.workspace:
        package["comment"] = "a package of the workspace"
    return package


def _how(r: Resolved) -> str:
    confidence = f", confidence {r.confidence:.2f}" if r.confidence is not None else ""
    return f"chosen by polybuild: {r.how}{confidence}; resolved as {r.expression or 'nothing (unlicensed)'}"


def _purl_ref(purl: str) -> dict[str, str]:
    return {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl}


def _relationship(element: str, kind: str, related: str) -> dict[str, str]:
    return {"spdxElementId": element, "relationshipType": kind, "relatedSpdxElement": related}


# --- output --------------------------------------------------------------------------------------------------------


def _content_uuid(data: dict[str, Any]) -> uuid.UUID:
    """A UUID that changes exactly when the content does (uuid5 over a digest of the canonical JSON)."""
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return uuid.uuid5(uuid.NAMESPACE_URL, f"https://polybuild.invalid/sbom/{digest}")


def dumps(data: dict[str, Any]) -> str:
    """The file content: keys in the order they were built (format markers first), two-space indent, final newline."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def write_json(path: Path | str, data: dict[str, Any]) -> None:
    """Atomically and durably, mode 0644 whatever the umask: a published document, the same however it was made."""
    from polybuild.support.fs import write_atomic

    write_atomic(path, dumps(data), mode=0o644)
