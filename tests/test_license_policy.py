"""The license policy on hand-made packages: SPDX expression semantics, deny.toml as cargo-deny writes it plus
the Python/Go extensions, the resolution order, bans, sources and OSV advisories."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest

from conftest import write_tree
from polybuild.licenses.check import check
from polybuild.licenses.expression import ExpressionError, normalize, parse, satisfied
from polybuild.licenses.model import LicenseFile, Package
from polybuild.licenses.policy import load_policy
from polybuild.licenses.purl import purl as purl_of
from polybuild.licenses.resolve import resolve, resolve_all
from polybuild.support.errors import ConfigError

DENY = """
[graph]
all-features = true

[licenses]
allow = ["MIT", "Apache-2.0", "BSD-3-Clause"]
confidence-threshold = 0.9
exceptions = [
    { allow = ["LicenseRef-Acme-Proprietary"], crate = "pkg:pypi/acme-sdk" },
]

[[licenses.clarify]]
crate = "ring"
expression = "MIT AND ISC AND OpenSSL"
license-files = [{ path = "LICENSE", hash = 0x%08x }]

[licenses.python]
allow = ["PSF-2.0"]

[bans]
multiple-versions = "deny"
deny = [{ crate = "openssl-sys", reason = "use rustls" }, "pkg:golang/github.com/evil/mod"]
skip = ["pkg:pypi/six@1.15.0"]

[sources]
unknown-git = "deny"
allow-git = ["https://github.com/acme/fork"]

[sources.go]
allow-prefixes = ["github.com/google", "golang.org/x", "example.com"]

[advisories]
db-path = "advisories"
ignore = ["GHSA-ignored"]
"""

RING_LICENSE = "Copyright 2015-2016 Brian Smith.\nISC-style license text ...\n"


def pkg(ecosystem: str, name: str, version: str, declared: str | None = None, **kw) -> Package:
    return Package(ecosystem, name, version, f"pkg:{ecosystem}/{name}@{version}", declared=declared,
                   dependents=[("py:app", name)], **kw)


@pytest.fixture
def policy(tmp_path: Path):
    root = write_tree(tmp_path, {"deny.toml": DENY % zlib.crc32(RING_LICENSE.encode())})
    return load_policy(root / "deny.toml")


def no_texts(texts):  # every package in these tests that reaches detection has no license file
    assert not texts
    return []


def verdicts(policy, packages: list[Package], root: Path) -> list[str]:
    return [f"{v.severity} {v.check} {v.package.name if v.package else '-'}: {v.message}"
            for v in check(resolve_all(packages, policy, no_texts), policy, root)]


def test_expression_semantics() -> None:
    assert normalize("MIT/Apache-2.0") == "MIT OR Apache-2.0"
    assert normalize("mit or (apache-2.0 and bsd-3-clause)") == "mit OR (apache-2.0 AND bsd-3-clause)"
    allowed = {"MIT", "Apache-2.0"}

    def ok(lic) -> bool:
        return str(lic) in allowed

    assert satisfied(parse("MIT OR GPL-3.0-only"), ok)  # OR: one allowed branch is enough
    assert not satisfied(parse("MIT AND GPL-3.0-only"), ok)  # AND: every operand
    assert not satisfied(parse("Apache-2.0 WITH LLVM-exception"), ok)  # WITH is its own token
    assert not satisfied(parse("GPL-2.0+"), lambda lic: str(lic) == "GPL-2.0-or-later")  # deprecated ids: exact
    for bad in ("MIT OR", "(MIT", "MIT WITH", "MIT, BSD", ""):
        with pytest.raises(ExpressionError):
            parse(bad)


def test_deny_toml_is_validated_with_locations(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {"deny.toml": "[licenses]\nalow = ['MIT']\n"})
    with pytest.raises(ConfigError) as err:
        load_policy(root / "deny.toml")
    assert "deny.toml:2: unknown key 'alow' in [licenses]" in str(err.value) and "did you mean 'allow'" in str(
        err.value)


def test_cargo_deny_config_of_this_repository_is_accepted() -> None:
    policy = load_policy(Path(__file__).parent.parent / "deny.toml")
    assert "Apache-2.0 WITH LLVM-exception" in policy.allowed_licenses("cargo")


def test_license_verdicts(policy, tmp_path: Path) -> None:
    (tmp_path / "advisories").mkdir()
    packages = [
        pkg("cargo", "itoa", "1.0.0", "MIT OR Apache-2.0"),
        pkg("cargo", "serde", "1.0.0", "MIT/Apache-2.0"),
        pkg("cargo", "libc-llvm", "1.0.0", "Apache-2.0 WITH LLVM-exception"),
        pkg("cargo", "gpl-thing", "1.0.0", "GPL-2.0+"),
        pkg("pypi", "typing-extensions", "4.0.0", "PSF-2.0"),
        pkg("golang", "github.com/google/psf", "v1.0.0", "PSF-2.0"),  # [licenses.python] is Python only
        pkg("pypi", "acme-sdk", "2.0.0", "LicenseRef-Acme-Proprietary"),
        pkg("pypi", "other-proprietary", "1.0.0", "LicenseRef-Acme-Proprietary"),
        pkg("pypi", "nothing", "0.1.0"),
    ]
    found = verdicts(policy, packages, tmp_path)
    denied = sorted(line.split(":")[0].split()[-1] for line in found if line.startswith("deny licenses"))
    assert denied == ["github.com/google/psf", "gpl-thing", "libc-llvm", "nothing", "other-proprietary"], found
    assert any("nothing: unlicensed" in line and "clarify" in line for line in found)


def test_resolution_order_and_clarify_hash(policy) -> None:
    ring = pkg("cargo", "ring", "0.17.0", None, files=[LicenseFile("LICENSE", "license", RING_LICENSE)])
    chosen = resolve(ring, policy, [])
    assert (chosen.expression, chosen.how) == ("MIT AND ISC AND OpenSSL", "clarify")
    changed = pkg("cargo", "ring", "0.17.1", None, files=[LicenseFile("LICENSE", "license", RING_LICENSE + "x")])
    stale = resolve(changed, policy, [])
    assert stale.how == "unlicensed" and "clarify for ring ignored: LICENSE is 0x" in stale.warnings[0]
    classifier = pkg("pypi", "old", "1.0", classifiers=("License :: OSI Approved :: MIT License",))
    assert (resolve(classifier, policy, []).expression, resolve(classifier, policy, []).how) == ("MIT", "legacy")
    ambiguous = pkg("pypi", "bsd", "1.0", classifiers=("License :: OSI Approved :: BSD License",))
    assert resolve(ambiguous, policy, []).how == "unlicensed"  # which BSD needs the text
    detected = resolve(pkg("golang", "example.com/x", "v1.0.0"), policy, [("BSD-3-Clause", 0.97, "LICENSE", ())])
    assert (detected.expression, detected.how, detected.confidence) == ("BSD-3-Clause", "detected", 0.97)
    weak = resolve(pkg("golang", "example.com/y", "v1.0.0"), policy, [("MIT", 0.5, "LICENSE", ())])
    assert weak.how == "unlicensed" and "only at 0.50" in weak.warnings[0]
    disagree = resolve(pkg("cargo", "x", "1.0.0", "MIT"), policy, [("Apache-2.0", 0.99, "LICENSE", ())])
    assert disagree.expression == "MIT" and "reads as Apache-2.0" in disagree.warnings[0]
    near_tie = resolve(pkg("cargo", "y", "1.0.0", "MIT OR Apache-2.0"), policy,
                       [("Pixar", 0.98, "LICENSE-APACHE", ("Apache-2.0",))])
    assert near_tie.warnings == []  # Pixar's text is a modified Apache-2.0: the declaration names the near tie


def test_spdx_identifier_in_a_license_file_is_a_declaration(policy) -> None:
    tagged = pkg("golang", "example.com/tagged", "v1.0.0", files=[
        LicenseFile("LICENSE", "license", "SPDX-License-Identifier: Apache-2.0 OR MIT\n\nLicensed under either..."),
        LicenseFile("LICENSES/foo.txt", "license", "/* SPDX-License-Identifier: BSD-3-Clause */\n"),
    ])
    found = resolve(tagged, policy, [("MIT", 0.95, "LICENSE", ())])
    assert (found.expression, found.how) == ("(Apache-2.0 OR MIT) AND BSD-3-Clause", "declared")
    # Community-Spec-1.0's own text ends with the tag of the license of that text: not the package's declaration.
    spec = "Community Specification License 1.0\n\n" + "The text.\n" * 20 + "SPDX-License-Identifier: CC-BY-4.0\n"
    in_the_text = pkg("golang", "example.com/spec", "v1.0.0", files=[LicenseFile("LICENSE", "license", spec)])
    found = resolve(in_the_text, policy, [("Community-Spec-1.0", 0.99, "LICENSE", ())])
    assert (found.expression, found.how) == ("Community-Spec-1.0", "detected")
    bad = pkg("golang", "example.com/bad", "v1.0.0", files=[LicenseFile("COPYING", "license",
                                                                       "SPDX-License-Identifier: MIT OR (\n")])
    unresolved = resolve(bad, policy, [])
    assert unresolved.how == "unlicensed" and "COPYING: SPDX-License-Identifier is not an SPDX expression" in \
        unresolved.warnings[0]


def test_classifiers_that_name_two_licenses_leave_it_to_the_texts(policy) -> None:
    """packaging ships the Apache and BSD classifiers: that is not Apache-2.0 alone."""
    two = pkg("pypi", "packaging", "24.2", classifiers=("License :: OSI Approved :: Apache Software License",
                                                        "License :: OSI Approved :: BSD License"))
    assert resolve(two, policy, []).how == "unlicensed"
    named_bsd = pkg("pypi", "click", "8.1.7", legacy="BSD-3-Clause",
                    classifiers=("License :: OSI Approved :: BSD License",))
    assert resolve(named_bsd, policy, []).expression == "BSD-3-Clause"
    unknown = pkg("pypi", "x", "1.0", classifiers=("License :: OSI Approved :: MIT License",
                                                   "License :: OSI Approved :: GNU Affero General Public License v3"))
    assert resolve(unknown, policy, []).how == "unlicensed"


def test_texts_offered_as_a_choice_are_one_or_term(policy) -> None:
    """packaging's LICENSE names LICENSE.APACHE and LICENSE.BSD as a choice; other texts stay ANDed."""
    notice = "This software is made available under the terms of *either* of the licenses\nfound in " \
        "LICENSE.APACHE or LICENSE.BSD. Contributions to this software is made\nunder the terms of *both* these."
    files = [LicenseFile("d/LICENSE", "license", notice), LicenseFile("d/LICENSE.APACHE", "license", "..."),
             LicenseFile("d/LICENSE.BSD", "license", "..."), LicenseFile("d/LICENSE.zlib", "license", "...")]
    detected = [("Apache-2.0", 0.95, "d/LICENSE.APACHE", ()), ("BSD-2-Clause", 1.0, "d/LICENSE.BSD", ()),
                ("Zlib", 0.99, "d/LICENSE.zlib", ())]
    found = resolve(pkg("pypi", "packaging", "24.2", files=files), policy, detected)
    assert (found.expression, found.how, found.confidence) == ("(Apache-2.0 OR BSD-2-Clause) AND Zlib", "detected",
                                                               0.95)
    without_notice = resolve(pkg("pypi", "p", "1", files=files[1:]), policy, detected)
    assert without_notice.expression == "Apache-2.0 AND BSD-2-Clause AND Zlib"
    several = resolve(pkg("golang", "example.com/y", "v1.0.0"), policy,
                      [("Apache-2.0 AND MIT", 0.97, "LICENSE", ()), ("MIT", 0.99, "LICENSE.libyaml", ())])
    assert (several.expression, several.confidence) == ("Apache-2.0 AND MIT", 0.97)


def test_bans_sources_and_advisories(policy, tmp_path: Path) -> None:
    write_tree(tmp_path, {
        "advisories/GHSA-1.json": json.dumps({"id": "GHSA-1", "summary": "bad parsing", "affected": [
            {"package": {"ecosystem": "PyPI", "name": "Jinja2"},
             "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.1.5"}]}]}]}),
        "advisories/GHSA-ignored.json": json.dumps({"id": "GHSA-ignored", "affected": [
            {"package": {"ecosystem": "crates.io", "name": "itoa"}, "versions": ["1.0.0"]}]}),
    })
    packages = [
        pkg("cargo", "openssl-sys", "0.9.0", "MIT"),
        pkg("golang", "github.com/evil/mod", "v0.1.0", "MIT"),
        pkg("pypi", "six", "1.15.0", "MIT"), pkg("pypi", "six", "1.16.0", "MIT"),  # skipped
        pkg("cargo", "syn", "1.0.0", "MIT"), pkg("cargo", "syn", "2.0.0", "MIT"),
        pkg("cargo", "forked", "0.1.0", "MIT", source="git+https://github.com/someone/forked?rev=1"),
        pkg("cargo", "ok-fork", "0.1.0", "MIT", source="git+https://github.com/acme/fork#abc"),
        pkg("golang", "github.com/unknown/mod", "v1.0.0", "MIT", source="proxy.golang.org"),
        pkg("pypi", "jinja2", "3.1.4", "BSD-3-Clause"), pkg("pypi", "jinja2x", "3.1.4", "BSD-3-Clause"),
        pkg("cargo", "itoa", "1.0.0", "MIT"),
    ]
    found = [line for line in verdicts(policy, packages, tmp_path) if not line.startswith("deny licenses")]
    assert found == [
        "deny bans openssl-sys: banned by [bans].deny: use rustls",
        "deny bans github.com/evil/mod: banned by [bans].deny",
        "deny bans syn: 2 versions of syn (1.0.0, 2.0.0); unify them or add one to [bans].skip",
        "deny sources github.com/evil/mod: module path not under [sources.go].allow-prefixes",
        "deny sources forked: from git repository https://github.com/someone/forked, which is not in "
        "[sources].allow-git",
        "deny sources github.com/unknown/mod: module path not under [sources.go].allow-prefixes",
        "deny advisories jinja2: GHSA-1: bad parsing",
    ], found


# --- cargo-deny compatibility: real deny.toml files ----------------------------------------------------------------

DENY_DATA = Path(__file__).parent / "data" / "deny"


@pytest.mark.parametrize("name", sorted(p.name for p in DENY_DATA.glob("*.toml")))
def test_real_deny_toml_files_are_accepted(name: str) -> None:
    """deny.toml files of real Rust+Python+Go, Rust+Python and Rust+Go projects, and cargo-deny's own test
    configurations (every key of its current schema), load without an error; what polybuild does not act on is
    at most two one-line notes."""
    policy = load_policy(DENY_DATA / name, display=name)
    assert len(policy.notes) <= 2 and all("\n" not in note and note.startswith(f"{name}: ") for note in policy.notes)


def test_keys_polybuild_does_not_act_on_are_named_in_one_note() -> None:
    bans = load_policy(DENY_DATA / "cargo-deny-bans.toml", display="deny.toml")
    assert bans.notes == ("deny.toml: accepted, but polybuild does not act on: bans.wildcards, "
                          "bans.allow-wildcard-paths, bans.highlight, bans.workspace-default-features, "
                          "bans.external-default-features, bans.deny[].wrappers, bans.skip-tree[].depth, "
                          "bans.workspace-dependencies, bans.features, bans.build, bans.std-replacements",)
    opendal = load_policy(DENY_DATA / "opendal.toml")  # cargo-deny 0.18.6's key, once rejected as unknown
    assert opendal.data["licenses"]["unused-license-exception"] == "allow" and opendal.notes == ()


def test_deprecated_keys_are_read_as_cargo_deny_reads_them(tmp_path: Path) -> None:
    relay = load_policy(DENY_DATA / "relay.toml", display="deny.toml")
    assert relay.notes[1] == ("deny.toml: deprecated or removed by cargo-deny (see `polybuild config-reference "
                              "--deny`): targets, advisories.db-url, "
                              "advisories.vulnerability, advisories.notice, licenses.unlicensed, licenses.copyleft, "
                              "licenses.allow-osi-fsf-free, licenses.default")
    assert relay.data["graph"]["targets"][0] == {"triple": "x86_64-unknown-linux-gnu"}
    root = write_tree(tmp_path, {"deny.toml": "all-features = true\n"})
    assert load_policy(root / "deny.toml").data["graph"]["all-features"] is True


@pytest.mark.parametrize(("text", "hint"), [
    ("[licenses]\nunused-license-exceptions = 'warn'\n", "did you mean 'unused-license-exception'?"),
    ("[licenses.private]\nignore-source = []\n", "did you mean 'ignore-sources'?"),
    ("[bans.build]\nexecutable = 'warn'\n", "did you mean 'executables'?"),
    ("[bans]\ndeny = [{ crate = 'openssl', wrapers = ['native-tls'] }]\n", "did you mean 'wrappers'?"),
    ("[output]\nfeature_depth = 1\n", "did you mean 'feature-depth'?"),
    ("[sources.allow-org]\ngithb = ['acme']\n", "did you mean 'github'?"),
])
def test_keys_cargo_deny_does_not_have_are_errors(tmp_path: Path, text: str, hint: str) -> None:
    root = write_tree(tmp_path, {"deny.toml": text})
    with pytest.raises(ConfigError) as err:
        load_policy(root / "deny.toml")
    assert str(err.value).startswith("deny.toml:") and hint in str(err.value)


def test_version_requirements_in_package_specs(tmp_path: Path) -> None:
    """cargo-deny's `version` key and `name:req` are Cargo version requirements (linkerd2 writes `version = "*"`)."""
    linkerd = load_policy(DENY_DATA / "linkerd2.toml")
    packages = [pkg("cargo", "aws-lc-sys", "0.32.3", "ISC AND (Apache-2.0 OR ISC) AND OpenSSL"),
                pkg("cargo", "syn", "2.0.111", "MIT"), pkg("cargo", "syn", "3.0.1", "MIT"),
                pkg("cargo", "thiserror", "1.0.69", "MIT"), pkg("cargo", "thiserror", "2.0.17", "MIT"),
                pkg("cargo", "rand", "0.8.5", "MIT"), pkg("cargo", "rand", "0.9.2", "MIT"),
                pkg("cargo", "rand", "0.10.0", "MIT")]
    assert verdicts(linkerd, packages, tmp_path) == [
        "deny bans rand: 2 versions of rand (0.10.0, 0.8.5); unify them or add one to [bans].skip",
        f"warn advisories -: advisories not checked: db-path {Path.home()}/.cargo/advisory-db (deny.toml:12) does "
        "not exist; polybuild reads OSV JSON files there, while cargo-deny clones its databases into it"]
    root = write_tree(tmp_path, {"deny.toml": """
        [licenses]
        allow = ["MIT"]
        [bans]
        multiple-versions = "allow"
        deny = ["old:<0.3, >=0.1", "exact@1.0.0", { crate = "pinned:=2.1" }]
        """})
    policy = load_policy(root / "deny.toml")
    packages = [pkg("cargo", name, version, "MIT") for name, version in (
        ("old", "0.2.9"), ("old", "0.3.0"), ("exact", "1.0.0"), ("exact", "1.0.1"), ("pinned", "2.1.7"),
        ("pinned", "2.2.0"))]
    assert [line.split(":")[0] for line in verdicts(policy, packages, tmp_path)] == [
        "deny bans old", "deny bans exact", "deny bans pinned"]
    bad = write_tree(tmp_path / "bad", {"deny.toml": "[licenses]\nexceptions = [{ name = 'x', version = '1.x.y', "
                                                    "allow = ['MIT'] }]\n"})
    with pytest.raises(ConfigError, match=r"'1\.x\.y' is not a version requirement"):
        load_policy(bad / "deny.toml")


def test_a_golang_purl_from_an_sbom_matches_its_module(tmp_path: Path) -> None:
    """The golang purl type lowercases the module path: a spec copied from polybuild's SBOM still matches."""
    purl = purl_of("golang", "github.com/Azure/go-ansiterm", "v0.0.0-20230124172434-306776ec8161")
    root = write_tree(tmp_path, {"deny.toml": f"[bans]\ndeny = [\"{purl}\"]\n"})
    found = verdicts(load_policy(root / "deny.toml"), [pkg("golang", "github.com/Azure/go-ansiterm",
                                                           "v0.0.0-20230124172434-306776ec8161", "MIT")], tmp_path)
    assert "deny bans github.com/Azure/go-ansiterm: banned by [bans].deny" in found


def test_unused_license_exception(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {"deny.toml": """
        [licenses]
        allow = ["MIT"]
        unused-license-exception = "warn"
        exceptions = [{ crate = "gone", allow = ["MPL-2.0"] }, { crate = "here", allow = ["MPL-2.0"] }]
        """})
    policy = load_policy(root / "deny.toml")
    found = verdicts(policy, [pkg("cargo", "here", "1.0.0", "MPL-2.0")], tmp_path)
    assert found == ["warn licenses -: the license exception for gone matches no package"]


def test_a_missing_policy_is_the_empty_policy_and_says_so(tmp_path: Path) -> None:
    policy = load_policy(tmp_path / "deny.toml", display="deny.toml")
    assert len(policy.notes) == 1
    assert policy.notes[0].startswith("deny.toml not found: the policy is empty, so no license is allowed")
    found = verdicts(policy, [pkg("cargo", "itoa", "1.0.0", "MIT")], tmp_path)
    assert found == ["deny licenses itoa: license not allowed; allow it in [licenses].allow or add an exception for "
                     "this package"]


def test_every_deny_key_is_documented() -> None:
    import subprocess
    import sys

    from conftest import REPO, polybuild_env

    out = subprocess.run([sys.executable, "-m", "polybuild", "config-reference", "--deny"], capture_output=True,
                         text=True, env=polybuild_env(), check=True).stdout
    assert out == (REPO / "docs" / "deny-reference.md").read_text(encoding="utf-8"), (
        "docs/deny-reference.md is stale: regenerate it with `polybuild config-reference --deny > "
        "docs/deny-reference.md`")


def test_pypi_selectors_match_the_canonical_name() -> None:
    """PyPI names compare as PEP 503 says (packaging's canonicalize_name): dots and runs of separators too, which
    the copied `lower().replace("_", "-")` missed, so a ban on `zope.interface` never met `zope-interface`."""
    from polybuild.licenses.policy import Spec

    for selector in ("pkg:pypi/Zope.Interface", "pkg:pypi/zope_interface", "pkg:pypi/zope--interface"):
        assert Spec.parse(selector).matches("pypi", "zope-interface", "7.0"), selector
    assert not Spec.parse("pkg:pypi/zope.interfaces").matches("pypi", "zope-interface", "7.0")
