"""The license pass on this repository for real: its crates, Python distributions and Go modules (fetched first,
then read offline), checked against its deny.toml, written as attributions and as SBOMs the real validators accept."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import checkout_copy, polybuild_env, run_polybuild

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of this repository whose dependencies are in the local caches, fetched by `deny --fetch` (crates, Go
    modules, the uv.lock's distributions); the tests' scans are offline."""
    root = checkout_copy(tmp_path_factory.mktemp("licenses") / "polybuild")
    fetched = run_polybuild("deny", "--fetch", cwd=root, env=polybuild_env(POLYBUILD_CACHE_DIR=str(_cache(root))))
    assert fetched.returncode == 0, fetched.stderr
    return root


def _cache(root: Path) -> Path:
    return root.parent / "cache"  # one polybuild cache for the module: the fetched distributions


def pb(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_polybuild(*args, cwd=root, env=polybuild_env(CARGO_NET_OFFLINE="true", GOPROXY="off",
                                                            GOFLAGS="-mod=readonly",
                                                            POLYBUILD_CACHE_DIR=str(_cache(root))))


def test_deny_passes_here_and_names_the_chain_of_a_violation(repo: Path) -> None:
    ok = pb(repo, "deny", "--json")
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert all(v["severity"] == "warn" for v in report)
    deny = repo / "deny.toml"
    original = deny.read_text()
    try:
        deny.write_text(original.replace('    "MIT",\n', ""))
        bad = pb(repo, "deny")
        assert bad.returncode == 1
        assert "deny[licenses]: golang github.com/google/go-containerregistry v0.22.1: license not allowed" not in \
            bad.stderr  # Apache-2.0 is still allowed
        line = next(x for x in bad.stderr.splitlines() if "golang github.com/klauspost/compress" in x)
        assert "license not allowed (clarify)" in line
        assert "pulled in by: go:polybuild-helper -> github.com/google/go-containerregistry@v0.22.1" in bad.stderr
    finally:
        deny.write_text(original)


def test_attributions_are_written_checked_and_stable(repo: Path) -> None:
    committed = pb(repo, "attributions", "--check")  # this repository's own files are current
    assert committed.returncode == 0, committed.stderr
    out = pb(repo, "attributions")
    assert out.returncode == 0, out.stderr
    summary = (repo / "ATTRIBUTIONS.md").read_text()
    assert "ATTRIBUTIONS-Rust.md" in summary and "ATTRIBUTIONS-Go.md" in summary
    go = (repo / "ATTRIBUTIONS-Go.md").read_text()
    assert "github.com/google/go-containerregistry" in go and "Apache License" in go
    rust = (repo / "ATTRIBUTIONS-Rust.md").read_text()
    assert "pyo3" in rust and "https://crates.io/crates/pyo3/" in rust
    assert pb(repo, "attributions", "--check").returncode == 0
    again = {p.name: p.read_text() for p in repo.glob("ATTRIBUTIONS*.md")}
    pb(repo, "attributions")
    assert again == {p.name: p.read_text() for p in repo.glob("ATTRIBUTIONS*.md")}
    (repo / "ATTRIBUTIONS-Go.md").write_text(go.replace("Apache License", "Apache Licence", 1))
    stale = pb(repo, "attributions", "--check")
    assert stale.returncode == 1 and "ATTRIBUTIONS-Go.md is out of date" in stale.stderr


def test_sboms_pass_the_real_validators(repo: Path, tmp_path: Path) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    cdx, spdx = tmp_path / "bom.cdx.json", tmp_path / "bom.spdx.json"
    assert pb(repo, "sbom", "--format", "cyclonedx", "-o", str(cdx)).returncode == 0
    assert pb(repo, "sbom", "--format", "spdx", "-o", str(spdx)).returncode == 0
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(cdx.read_text()) is None
    assert validate_full_spdx_document(parse_file(str(spdx))) == []
    purls = {c.get("purl") for c in json.loads(cdx.read_text())["components"]}
    assert any(p and p.startswith("pkg:cargo/pyo3@") for p in purls)
    assert any(p and p.startswith("pkg:golang/github.com/google/go-containerregistry@") for p in purls)
    helper = pb(repo, "sbom", "--target", "go:polybuild-helper")
    helper_purls = {c.get("purl") for c in json.loads(helper.stdout)["components"]}
    assert any(p and "go-containerregistry" in p for p in helper_purls)
    assert not any(p and p.startswith("pkg:cargo/") for p in helper_purls)  # the Go binary ships no crates


def test_a_built_go_binary_is_attributed_by_what_go_version_m_reads(repo: Path) -> None:
    built = pb(repo, "build", "go:polybuild-helper")
    assert built.returncode == 0, built.stderr
    inside = subprocess.run(["go", "version", "-m", str(repo / "dist/polybuild-helper")], capture_output=True,
                            text=True, check=True).stdout
    modules = {line.split()[1] for line in inside.splitlines() if line.strip().startswith("dep")}
    sbom = json.loads(pb(repo, "sbom", "--target", "go:polybuild-helper").stdout)
    listed = {c["name"] for c in sbom["components"] if c.get("purl", "").startswith("pkg:golang/")}
    assert listed == modules
