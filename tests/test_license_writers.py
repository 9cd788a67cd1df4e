"""The license writers: purls, attribution Markdown, CycloneDX 1.6 and SPDX 2.3, validated by the real tools
(cyclonedx-python-lib's strict JSON schema validator, spdx-tools' full document validation)."""

from __future__ import annotations

import copy
import os
import re
import stat

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from polybuild.licenses.attributions import (
    FALLBACK_MARKER,
    NO_TEXT_MARKER,
    ecosystem_file,
    ecosystem_markdown,
    summary_markdown,
)
from polybuild.licenses.model import LicenseFile, Package, Resolved
from polybuild.licenses.purl import PurlError, purl
from polybuild.licenses.sbom import Subject, cyclonedx, dumps, spdx, write_json

APACHE = "\n                                 Apache License\n                           Version 2.0, January 2004\n" \
         "    TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION\n    ```not a fence end```\n"
MIT_CANONICAL = "MIT License\n\nPermission is hereby granted, free of charge, to any person obtaining a copy...\n"
CANONICAL = {"MIT": MIT_CANONICAL, "Apache-2.0": APACHE}
WORKSPACE = Subject("polybuild", "0.1.0")
SYSTEM_LIBRARIES = [{"name": "libcuda", "version": "12.4", "license": "LicenseRef-NVIDIA",
                     "note": "linked | not shipped"},
                    {"name": "glibc", "version": "2.36", "license": "LGPL-2.1-or-later"}]


def canonical_text(spdx_id: str) -> str | None:
    return CANONICAL.get(spdx_id)


def lic(path: str, text: str, kind: str = "license") -> LicenseFile:
    return LicenseFile(path, kind, text)


def package(ecosystem: str, name: str, version: str, expression: str | None, how: str = "declared", *,
            declared: str | None = "same", files: tuple[LicenseFile, ...] = (),
            chains: tuple[tuple[str, ...], ...] = (), confidence: float | None = None, **extra: object) -> Resolved:
    p = Package(ecosystem, name, version, purl(ecosystem, name, version),
                declared=expression if declared == "same" else declared, files=list(files),
                source={"cargo": "crates.io", "pypi": "pypi", "golang": "proxy.golang.org"}[ecosystem],
                url=f"https://example.invalid/{ecosystem}/{name}/{version}", dependents=list(chains), **extra)
    return Resolved(p, expression, how, confidence)


def fixtures() -> list[Resolved]:
    return [
        package("cargo", "serde", "1.0.210", "MIT OR Apache-2.0", chains=(("rust:polybuild-core",),),
                files=(lic("LICENSE-MIT", "Copyright (c) David Tolnay\n\nPermission is hereby granted (serde)\n"),
                       lic("LICENSE-APACHE", APACHE))),
        package("cargo", "serde", "1.0.9", "MIT OR Apache-2.0", chains=(("rust:polybuild-core", "serde@1.0.210"),),
                files=(lic("LICENSE-MIT", "Copyright (c) Erick Tryzelaar\n\nPermission is hereby granted (old)\n"),
                       lic("LICENSE-APACHE", APACHE))),
        package("cargo", "regalloc2", "0.9.3", "Apache-2.0 WITH LLVM-exception",
                chains=(("rust:polybuild-core", "serde@1.0.210", "missing@9.9.9"),),
                files=(lic("LICENSE", APACHE + "\n--- LLVM Exceptions to the Apache 2.0 License ----\n"),)),
        package("cargo", "oddcrate", "0.3.0", "BSD-3-Clause AND Unknown-1.0", declared="BSD-3-Clause/Unknown 1.0",
                files=(lic("COPYING", "Odd terms: redistribute with this notice.\n"),)),
        package("cargo", "polybuild-core", "0.1.0", "MIT", workspace=True,
                files=(lic("LICENSE", "polybuild's own license\n"),)),
        package("pypi", "apache-thing", "2.0.0", "Apache-2.0", "legacy", declared=None, legacy="Apache License 2.0",
                classifiers=("License :: OSI Approved :: Apache Software License",),
                chains=(("py:polybuild[server]",),),
                files=(lic("apache_thing-2.0.0.dist-info/licenses/LICENSE", APACHE),
                       lic("apache_thing-2.0.0.dist-info/licenses/NOTICE",
                           "Apache Thing\nThis product includes software developed at Example Corp.\n", "notice"))),
        package("pypi", "jinja2", "3.1.6", "BSD-3-Clause", chains=(("py:polybuild",),),
                files=(lic("jinja2-3.1.6.dist-info/licenses/LICENSE.txt", "Copyright 2007 Pallets (jinja2)\n"),)),
        package("pypi", "markupsafe", "2.1.5", "BSD-3-Clause", "detected", declared=None, confidence=0.97,
                chains=(("py:polybuild", "jinja2@3.1.6"), ("py:polybuild[server]", "Jinja2[i18n]@3.1.6")),
                files=(lic("markupsafe-2.1.5.dist-info/LICENSE.rst", "Copyright 2010 Pallets (markupsafe)\n"),)),
        package("pypi", "no-text", "1.0", "MIT", chains=(("py:polybuild",),)),
        package("pypi", "half-known", "0.1", "MIT AND LicenseRef-custom", "clarify", declared=None),
        package("golang", "github.com/BurntSushi/toml", "v1.4.0", "MIT", "detected", declared=None, confidence=0.99,
                chains=(("go:polybuild",),), files=(lic("LICENSE", "Copyright (c) 2013 TOML authors\n"),)),
        package("golang", "github.com/example/Proprietary", "v2.0.0+incompatible", "LicenseRef-proprietary", "clarify",
                declared=None, chains=(("go:polybuild", "github.com/BurntSushi/toml@v1.4.0"),),
                files=(lic("LICENSE", "Copyright Example Inc. All rights reserved. (proprietary terms)\n"),)),
        package("golang", "golang.org/x/mystery", "v0.1.0", None, "unlicensed", declared=None),
    ]


# --- purls ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("ecosystem", "name", "version", "expected"), [
    ("cargo", "serde_json", "1.0.0-rc.1+build.5", "pkg:cargo/serde_json@1.0.0-rc.1%2Bbuild.5"),
    ("pypi", "Jinja2", "3.1.6", "pkg:pypi/jinja2@3.1.6"),
    ("pypi", "typing_extensions", "4.12.2", "pkg:pypi/typing-extensions@4.12.2"),
    ("pypi", "zope.interface", "7.0+local.1", "pkg:pypi/zope.interface@7.0%2Blocal.1"),
    ("golang", "github.com/BurntSushi/toml", "v1.4.0", "pkg:golang/github.com/burntsushi/toml@v1.4.0"),
    ("golang", "github.com/Masterminds/semver/v3", "v3.2.1", "pkg:golang/github.com/masterminds/semver/v3@v3.2.1"),
    ("golang", "github.com/x/y", "v2.0.0+incompatible", "pkg:golang/github.com/x/y@v2.0.0%2Bincompatible"),
    ("golang", "gopkg.in/yaml.v3", None, "pkg:golang/gopkg.in/yaml.v3"),
    # Real module paths of odd shapes: one element (no namespace), gopkg.in, vanity hosts, +incompatible, a major
    # version suffix, a pseudo-version, and a workspace's own `module demo`.
    ("golang", "go.opencensus.io", "v0.24.0", "pkg:golang/go.opencensus.io@v0.24.0"),
    ("golang", "gotest.tools", "v2.2.0+incompatible", "pkg:golang/gotest.tools@v2.2.0%2Bincompatible"),
    ("golang", "gopkg.in/yaml.v3", "v3.0.1", "pkg:golang/gopkg.in/yaml.v3@v3.0.1"),
    ("golang", "go.uber.org/zap", "v1.27.0", "pkg:golang/go.uber.org/zap@v1.27.0"),
    ("golang", "k8s.io/api", "v0.31.0", "pkg:golang/k8s.io/api@v0.31.0"),
    ("golang", "github.com/docker/docker", "v28.0.0+incompatible",
     "pkg:golang/github.com/docker/docker@v28.0.0%2Bincompatible"),
    ("golang", "github.com/cespare/xxhash/v2", "v2.3.0", "pkg:golang/github.com/cespare/xxhash/v2@v2.3.0"),
    ("golang", "github.com/pmezard/go-difflib", "v1.0.1-0.20181226105442-5d4384ee4fb2",
     "pkg:golang/github.com/pmezard/go-difflib@v1.0.1-0.20181226105442-5d4384ee4fb2"),
    ("golang", "demo", "1.2.0", "pkg:golang/demo@1.2.0"),
])
def test_purl_spelling(ecosystem: str, name: str, version: str | None, expected: str) -> None:
    assert purl(ecosystem, name, version) == expected


@pytest.mark.parametrize(("ecosystem", "name", "version"), [
    ("cargo", "serde_json", "1.0.0-rc.1+build.5"), ("pypi", "Zope.Interface_X", "1!2.0.post1"),
    ("golang", "github.com/Azure/go-ansiterm", "v0.0.0-20230124172434-306776ec8161"),
    ("golang", "github.com/x/y~z/v2", "v2.0.0+incompatible"),
    ("golang", "go.opencensus.io", "v0.24.0"), ("golang", "k8s.io/api", "v0.31.0"),
])
def test_purl_agrees_with_packageurl_python(ecosystem: str, name: str, version: str) -> None:
    """The reference implementation parses ours back to the same parts, and writes the same string from them."""
    ours = purl(ecosystem, name, version)
    parsed = PackageURL.from_string(ours)
    namespace, _, last = name.lower().rpartition("/") if ecosystem == "golang" else ("", "", name)
    assert (parsed.type, parsed.namespace or "", parsed.version) == (ecosystem, namespace, version)
    assert parsed.name == (last if ecosystem == "golang" else PackageURL(type=ecosystem, name=name).name)
    assert parsed.to_string() == ours


@pytest.mark.parametrize(("ecosystem", "name"), [("npm", "left-pad"), ("golang", "a//b"), ("golang", "x/"),
                                                 ("cargo", "")])
def test_purl_refuses_what_it_cannot_spell(ecosystem: str, name: str) -> None:
    with pytest.raises(PurlError):
        purl(ecosystem, name, "1.0")


# --- CycloneDX -----------------------------------------------------------------------------------------------------


def test_cyclonedx_is_valid_1_6() -> None:
    bom = cyclonedx(WORKSPACE, fixtures())
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(dumps(bom), all_errors=True)
    assert errors is None, [str(e) for e in errors]


def test_cyclonedx_valid_for_an_artifact_with_hash_and_purl() -> None:
    wheel = Subject("polybuild", "0.1.0", "wheel", sha256="ab" * 32, purl=purl("pypi", "polybuild", "0.1.0"))
    bom = cyclonedx(wheel, [r for r in fixtures() if r.package.ecosystem == "pypi"])
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(dumps(bom)) is None
    assert bom["metadata"]["component"]["hashes"] == [{"alg": "SHA-256", "content": "ab" * 32}]
    assert {c["purl"] for c in bom["components"] if "purl" in c} >= {"pkg:pypi/jinja2@3.1.6"}


def test_the_validators_do_reject_what_is_wrong(tmp_path) -> None:
    """Guards the two tests above: a license id off the SPDX list must fail both tools."""
    bom = cyclonedx(WORKSPACE, fixtures())
    bom["components"][0]["licenses"] = [{"license": {"id": "Apache-2"}}]
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(dumps(bom)) is not None
    doc = spdx(WORKSPACE, fixtures())
    doc["packages"][0]["licenseConcluded"] = "Apache-2"
    assert validate_spdx(doc, tmp_path) != []


def test_a_subject_that_is_a_package_is_not_listed_twice(tmp_path) -> None:
    wheel = Subject("polybuild", "0.1.0", "wheel", purl=purl("pypi", "polybuild", "0.1.0"))
    own = package("pypi", "polybuild", "0.1.0", "MIT", workspace=True)
    jinja2 = package("pypi", "jinja2", "3.1.6", "BSD-3-Clause", chains=(("pkg:pypi/polybuild@0.1.0",),))
    bom = cyclonedx(wheel, [own, jinja2])
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(dumps(bom)) is None
    assert [c["bom-ref"] for c in bom["components"]] == ["pkg:pypi/jinja2@3.1.6"]
    assert bom["dependencies"] == [{"ref": "pkg:pypi/polybuild@0.1.0", "dependsOn": ["pkg:pypi/jinja2@3.1.6"]}]
    assert validate_spdx(spdx(wheel, [own, jinja2]), tmp_path) == []


def test_cyclonedx_components_licenses_and_edges() -> None:
    bom = cyclonedx(WORKSPACE, fixtures())
    by_ref = {c["bom-ref"]: c for c in bom["components"]}
    assert by_ref["pkg:cargo/serde@1.0.210"]["licenses"] == [{"expression": "MIT OR Apache-2.0",
                                                               "acknowledgement": "concluded"}]
    assert by_ref["pkg:pypi/jinja2@3.1.6"]["licenses"] == [{"license": {"id": "BSD-3-Clause",
                                                                        "acknowledgement": "concluded"}}]
    proprietary = by_ref["pkg:golang/github.com/example/proprietary@v2.0.0%2Bincompatible"]
    assert proprietary["name"] == "github.com/example/Proprietary"
    assert proprietary["licenses"][0]["license"]["name"] == "LicenseRef-proprietary"
    assert "All rights reserved" in proprietary["licenses"][0]["license"]["text"]["content"]
    assert "licenses" not in by_ref["pkg:golang/golang.org/x/mystery@v0.1.0"]
    assert by_ref["pkg:cargo/oddcrate@0.3.0"]["licenses"][0]["expression"] == "BSD-3-Clause AND LicenseRef-Unknown-1.0"
    assert {"name": "polybuild:workspace", "value": "true"} in by_ref["polybuild:target:py:polybuild"]["properties"]
    assert {"name": "polybuild:workspace", "value": "true"} in by_ref["pkg:cargo/polybuild-core@0.1.0"]["properties"]
    deps = {d["ref"]: d["dependsOn"] for d in bom["dependencies"]}
    subject = bom["metadata"]["component"]["bom-ref"]
    assert "polybuild:target:py:polybuild" in deps[subject]
    assert deps["polybuild:target:rust:polybuild-core"] == ["pkg:cargo/serde@1.0.210"]
    assert deps["pkg:cargo/serde@1.0.210"] == ["pkg:cargo/serde@1.0.9"]  # not regalloc2: via a package not here
    assert deps["pkg:pypi/jinja2@3.1.6"] == ["pkg:pypi/markupsafe@2.1.5"]  # through `Jinja2[i18n]@3.1.6` too
    assert "polybuild:target:py:polybuild[server]" not in deps
    # nothing floats: what no chain reaches hangs off the subject
    assert {"pkg:pypi/half-known@0.1", "pkg:cargo/polybuild-core@0.1.0", "pkg:cargo/regalloc2@0.9.3"} <= set(
        deps[subject])


def test_cyclonedx_timestamp_only_from_source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    undated = cyclonedx(WORKSPACE, fixtures())
    assert "timestamp" not in undated["metadata"]
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    dated = cyclonedx(WORKSPACE, fixtures())
    assert dated["metadata"]["timestamp"] == "2023-11-14T22:13:20Z"
    assert dated["serialNumber"] != undated["serialNumber"]
    assert re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", dated["serialNumber"])
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(ValueError, match="SOURCE_DATE_EPOCH"):
        cyclonedx(WORKSPACE, fixtures())


# --- SPDX ----------------------------------------------------------------------------------------------------------


def validate_spdx(doc: dict, tmp_path) -> list[str]:
    path = tmp_path / "sbom.spdx.json"
    write_json(path, doc)
    return [m.validation_message for m in validate_full_spdx_document(parse_file(str(path)))]


def test_spdx_is_valid_2_3(tmp_path) -> None:
    assert validate_spdx(spdx(WORKSPACE, fixtures()), tmp_path) == []


def test_spdx_valid_for_an_image(tmp_path) -> None:
    image = Subject("polybuild-image", "0.1.0", "image", sha256="cd" * 32)
    doc = spdx(image, [r for r in fixtures() if r.package.ecosystem != "cargo"])
    assert validate_spdx(doc, tmp_path) == []
    subject = next(p for p in doc["packages"] if p["SPDXID"] == "SPDXRef-Subject")
    assert subject["primaryPackagePurpose"] == "CONTAINER"
    assert subject["checksums"] == [{"algorithm": "SHA256", "checksumValue": "cd" * 32}]


def test_spdx_licenses_ids_and_relationships(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    doc = spdx(WORKSPACE, fixtures())
    assert doc["creationInfo"]["created"] == "1980-01-01T00:00:00Z"
    by_purl = {p["externalRefs"][0]["referenceLocator"]: p for p in doc["packages"] if "externalRefs" in p}
    assert by_purl["pkg:cargo/regalloc2@0.9.3"]["licenseConcluded"] == "Apache-2.0 WITH LLVM-exception"
    odd = by_purl["pkg:cargo/oddcrate@0.3.0"]
    assert (odd["licenseConcluded"], odd["licenseDeclared"]) == ("BSD-3-Clause AND LicenseRef-Unknown-1.0",
                                                                 "NOASSERTION")
    mystery = by_purl["pkg:golang/golang.org/x/mystery@v0.1.0"]
    assert (mystery["licenseConcluded"], mystery["licenseDeclared"]) == ("NOASSERTION", "NOASSERTION")
    assert by_purl["pkg:cargo/serde@1.0.210"]["licenseDeclared"] == "MIT OR Apache-2.0"
    assert by_purl["pkg:pypi/markupsafe@2.1.5"]["licenseComments"] == (
        "chosen by polybuild: detected, confidence 0.97; resolved as BSD-3-Clause")
    ids = [p["SPDXID"] for p in doc["packages"]]
    assert len(ids) == len(set(ids)) and all(re.fullmatch(r"SPDXRef-[A-Za-z0-9.-]+", i) for i in ids)
    extracted = {e["licenseId"]: e["extractedText"] for e in doc["hasExtractedLicensingInfos"]}
    assert set(extracted) == {"LicenseRef-proprietary", "LicenseRef-custom", "LicenseRef-Unknown-1.0"}
    assert "All rights reserved" in extracted["LicenseRef-proprietary"]
    assert "no license text was found" in extracted["LicenseRef-custom"]
    relations = {(r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"]) for r in doc["relationships"]}
    assert ("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Subject") in relations
    toml, proprietary = (by_purl[p]["SPDXID"] for p in ("pkg:golang/github.com/burntsushi/toml@v1.4.0",
                                                         "pkg:golang/github.com/example/proprietary@v2.0.0%2Bincompatible"))
    assert (toml, "DEPENDS_ON", proprietary) in relations


# --- determinism ---------------------------------------------------------------------------------------------------


def shuffled(resolved: list[Resolved]) -> list[Resolved]:
    """The same data in another order: packages, their files and their chains all reversed."""
    result = copy.deepcopy(resolved[::-1])
    for r in result:
        r.package.files.reverse()
        r.package.dependents.reverse()
    return result


def all_outputs(resolved: list[Resolved]) -> list[str]:
    return [dumps(cyclonedx(WORKSPACE, resolved)), dumps(spdx(WORKSPACE, resolved)),
            summary_markdown(WORKSPACE, resolved, SYSTEM_LIBRARIES),
            *(ecosystem_markdown(WORKSPACE, eco, resolved, canonical_text) for eco in ("cargo", "pypi", "golang"))]


def test_outputs_do_not_depend_on_input_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert all_outputs(fixtures()) == all_outputs(shuffled(fixtures()))
    assert spdx(WORKSPACE, fixtures())["creationInfo"]["created"] == "2023-11-14T22:13:20Z"


def test_document_identifiers_follow_the_content() -> None:
    other = fixtures()[1:]
    assert cyclonedx(WORKSPACE, other)["serialNumber"] != cyclonedx(WORKSPACE, fixtures())["serialNumber"]
    assert spdx(WORKSPACE, other)["documentNamespace"] != spdx(WORKSPACE, fixtures())["documentNamespace"]


def test_the_same_purl_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="listed twice"):
        cyclonedx(WORKSPACE, [*fixtures(), fixtures()[0]])


def test_write_json_is_atomic_and_stable(tmp_path) -> None:
    path = tmp_path / "out" / "sbom.cdx.json"
    write_json(path, {"b": 1, "a": [1, 2]})
    write_json(path, {"b": 2, "a": [1, 2]})
    assert path.read_text() == '{\n  "b": 2,\n  "a": [\n    1,\n    2\n  ]\n}\n'
    assert os.listdir(path.parent) == ["sbom.cdx.json"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


# --- Markdown ------------------------------------------------------------------------------------------------------


def section(markdown: str, heading: str) -> str:
    """The text of one package's section, up to the next package."""
    start = markdown.index(f"\n## {heading}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start:end if end >= 0 else None]


def test_every_license_and_notice_text_appears_once() -> None:
    resolved = fixtures()
    for eco in ("cargo", "pypi", "golang"):
        markdown = ecosystem_markdown(WORKSPACE, eco, resolved, canonical_text)
        for r in resolved:
            if r.package.ecosystem == eco and not r.package.workspace:
                for f in r.package.files:
                    assert f.text.rstrip("\n") in markdown, (r.package.name, f.path)
                    assert f.path in markdown
    cargo = ecosystem_markdown(WORKSPACE, "cargo", resolved, canonical_text)
    assert cargo.count("TERMS AND CONDITIONS") == 2  # shared by both serdes: once; regalloc2's differs: once more
    assert "````text" in cargo  # the text's own ``` cannot close its fence
    assert "polybuild's own license" not in cargo  # the workspace's packages are not third-party


def test_packages_are_sorted_by_name_then_version() -> None:
    cargo = ecosystem_markdown(WORKSPACE, "cargo", fixtures(), canonical_text)
    headings = re.findall(r"^## (.+)$", cargo, re.MULTILINE)
    assert headings == ["oddcrate 0.3.0", "regalloc2 0.9.3", "serde 1.0.9", "serde 1.0.210", "Shared texts"]


def test_package_details_and_flags() -> None:
    pypi = ecosystem_markdown(WORKSPACE, "pypi", fixtures(), canonical_text)
    thing = section(pypi, "apache-thing 2.0.0")
    assert "`Apache License 2.0`" in thing and "legacy License field" in thing
    assert "Example Corp." in pypi and "NOTICE (notice)" in thing
    no_text = section(pypi, "no-text 1.0")
    assert FALLBACK_MARKER in no_text and "### `MIT` (canonical text, fallback)" in no_text
    assert pypi.count(MIT_CANONICAL.rstrip("\n")) == 1  # shared with half-known: printed once, referenced twice
    half = section(pypi, "half-known 0.1")
    assert FALLBACK_MARKER in half and f"{NO_TEXT_MARKER}** for `LicenseRef-custom`" in half
    assert FALLBACK_MARKER not in section(pypi, "jinja2 3.1.6")
    assert "confidence 0.97" in section(pypi, "markupsafe 2.1.5")
    assert "<https://example.invalid/pypi/jinja2/3.1.6>" in section(pypi, "jinja2 3.1.6")
    go = ecosystem_markdown(WORKSPACE, "golang", fixtures(), canonical_text)
    assert NO_TEXT_MARKER in section(go, "golang.org/x/mystery v0.1.0")
    assert FALLBACK_MARKER not in section(go, "golang.org/x/mystery v0.1.0")


def test_summary() -> None:
    summary = summary_markdown(WORKSPACE, fixtures(), SYSTEM_LIBRARIES)
    assert summary.startswith("# Attributions for polybuild 0.1.0\n")
    assert "| Rust (cargo) | 4 | [ATTRIBUTIONS-Rust.md](ATTRIBUTIONS-Rust.md) |" in summary
    assert "| Python (pypi) | 5 | [ATTRIBUTIONS-Python.md](ATTRIBUTIONS-Python.md) |" in summary
    assert "| Go (golang) | 3 | [ATTRIBUTIONS-Go.md](ATTRIBUTIONS-Go.md) |" in summary
    assert "| `Apache-2.0 OR MIT` | 2 |" in summary and "| *none found* | 1 |" in summary
    assert summary.index("| glibc |") < summary.index("| libcuda |")
    assert "linked \\| not shipped" in summary
    assert "| golang.org/x/mystery | v0.1.0 | no license found |" in summary
    assert [ecosystem_file(e) for e in ("cargo", "pypi", "golang")] == [
        "ATTRIBUTIONS-Rust.md", "ATTRIBUTIONS-Python.md", "ATTRIBUTIONS-Go.md"]
    artifact = Subject("polybuild", "0.1.0", "wheel", sha256="ef" * 32)
    one = summary_markdown(artifact, [r for r in fixtures() if r.package.ecosystem == "pypi"], [])
    assert "the wheel polybuild 0.1.0" in one and "ef" * 32 in one and "Rust" not in one
    assert "None declared" in one
