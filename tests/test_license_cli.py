"""`polybuild deny`, `attributions` and `sbom` on real layouts: Go modules with real module paths of odd shapes
(fetched from the Go proxy, then scanned offline), Cargo workspaces whose nested locks are not committed (resolved by
the real cargo), a missing policy, and hand-written attributions that must survive."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import polybuild_env, run_polybuild, write_tree
from polybuild import api
from polybuild.licenses import cargo, cargolocks

# Real modules whose paths have the shapes that broke purls: one element (go.opencensus.io), gopkg.in, vanity hosts
# (go.uber.org, k8s.io with a /v2 suffix), a +incompatible version, a /v2 suffix and a pseudo-version.
GO_MAIN = """
    package main

    import (
        "github.com/cespare/xxhash/v2"
        "github.com/golang-jwt/jwt"
        "github.com/pmezard/go-difflib/difflib"
        "go.opencensus.io/trace"
        "go.uber.org/zap"
        "gopkg.in/yaml.v3"
        "k8s.io/klog/v2"
    )

    func main() {
        _ = xxhash.Sum64String("a")
        _ = jwt.New(jwt.SigningMethodHS256)
        _ = difflib.SplitLines("a")
        _, span := trace.StartSpan(nil, "x")
        span.End()
        _ = zap.NewNop()
        _, _ = yaml.Marshal(1)
        klog.Info("x")
    }
"""
GO_MOD = """
    module example.com/oddpaths

    go 1.22

    require (
        github.com/cespare/xxhash/v2 v2.3.0
        github.com/golang-jwt/jwt v3.2.2+incompatible
        github.com/pmezard/go-difflib v1.0.1-0.20181226105442-5d4384ee4fb2
        go.opencensus.io v0.24.0
        go.uber.org/zap v1.27.0
        gopkg.in/yaml.v3 v3.0.1
        k8s.io/klog/v2 v2.130.1
    )
"""
ODD_PURLS = {
    "pkg:golang/go.opencensus.io@v0.24.0",
    "pkg:golang/gopkg.in/yaml.v3@v3.0.1",
    "pkg:golang/go.uber.org/zap@v1.27.0",
    "pkg:golang/k8s.io/klog/v2@v2.130.1",
    "pkg:golang/github.com/golang-jwt/jwt@v3.2.2%2Bincompatible",
    "pkg:golang/github.com/cespare/xxhash/v2@v2.3.0",
    "pkg:golang/github.com/pmezard/go-difflib@v1.0.1-0.20181226105442-5d4384ee4fb2",
}


def run(argv: list[str], cwd: Path, **env: str) -> None:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "GOTOOLCHAIN": "local", **env})
    assert proc.returncode == 0, f"{argv} failed:\n{proc.stderr}"


def offline(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_polybuild(*args, cwd=root, env=polybuild_env(CARGO_NET_OFFLINE="true", GOPROXY="off",
                                                            GOFLAGS="-mod=readonly"))


@pytest.fixture(scope="module")
def go_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Go module using the odd module paths, its modules downloaded once; no deny.toml."""
    root = write_tree(tmp_path_factory.mktemp("oddpaths") / "ws", {"go.mod": GO_MOD, "main.go": GO_MAIN})
    run(["go", "mod", "tidy"], root, GOFLAGS="-mod=mod")
    run(["go", "mod", "download"], root, GOFLAGS="-mod=mod")
    return root


def test_odd_go_module_paths_in_deny_attributions_and_sbom(go_ws: Path, tmp_path: Path) -> None:
    """`go.opencensus.io` crashed all three commands with a PurlError traceback; it is `pkg:golang/go.opencensus.io`.
    Without a deny.toml the policy is empty, which each command says once."""
    deny = offline(go_ws, "deny", "--json")
    assert deny.returncode == 1 and "Traceback" not in deny.stderr, deny.stderr
    assert {v["package"]["purl"] for v in json.loads(deny.stdout) if v["package"]} >= ODD_PURLS
    assert deny.stderr.count("the policy is empty") == 1
    assert deny.stderr.startswith("note: deny.toml not found: the policy is empty, so no license is allowed")
    sbom = offline(go_ws, "sbom", "-o", str(tmp_path / "bom.json"))
    assert sbom.returncode == 0 and sbom.stderr.count("the policy is empty") == 1, sbom.stderr
    assert {c.get("purl") for c in json.loads((tmp_path / "bom.json").read_text())["components"]} >= ODD_PURLS
    written = offline(go_ws, "attributions", "--dir", str(tmp_path / "attributions"))
    assert written.returncode == 0, written.stderr
    go = (tmp_path / "attributions" / "ATTRIBUTIONS-Go.md").read_text()
    assert "## go.opencensus.io v0.24.0" in go and "## github.com/golang-jwt/jwt v3.2.2+incompatible" in go


def test_hand_written_attributions_are_not_overwritten(go_ws: Path, tmp_path: Path) -> None:
    own = "<!--\nSPDX-License-Identifier: Apache-2.0\n-->\n\n# Third-party software\n\nWritten by hand.\n"
    (tmp_path / "ATTRIBUTIONS.md").write_text(own)
    refused = offline(go_ws, "attributions", "--dir", str(tmp_path))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert f"not overwriting ATTRIBUTIONS.md in {tmp_path}: polybuild did not write it" in refused.stderr
    assert "--force" in refused.stderr and "the policy is empty" not in refused.stderr  # refused before the scan
    assert (tmp_path / "ATTRIBUTIONS.md").read_text() == own and not (tmp_path / "ATTRIBUTIONS-Go.md").exists()
    check = offline(go_ws, "attributions", "--check", "--dir", str(tmp_path))
    assert check.returncode == 1 and "ATTRIBUTIONS.md was not written by polybuild" in check.stderr
    forced = offline(go_ws, "attributions", "--force", "--dir", str(tmp_path))
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "ATTRIBUTIONS.md").read_text().startswith("# Attributions for ")
    again = offline(go_ws, "attributions", "--dir", str(tmp_path))  # its own files are rewritten without --force
    assert again.returncode == 0, again.stderr


# --- Cargo workspaces without a Cargo.lock -------------------------------------------------------------------------

CARGO = {
    "Cargo.toml": """
        [workspace]
        members = ["core"]
        exclude = ["bindings"]
        resolver = "2"
    """,
    "core/Cargo.toml": """
        [package]
        name = "acme-core"
        version = "0.1.0"
        edition = "2021"
        license = "MIT"
        [dependencies]
        itoa = "1"
    """,
    "core/src/lib.rs": "",
    # Two bindings, each its own Cargo workspace, using the core by a relative path; their locks are ignored.
    "bindings/python/Cargo.toml": """
        [package]
        name = "acme-py"
        version = "0.1.0"
        edition = "2021"
        license = "MIT"
        [dependencies]
        acme-core = { path = "../../core" }
        ryu = "1"
        [workspace]
    """,
    "bindings/python/src/lib.rs": "",
    "bindings/c/Cargo.toml": """
        [package]
        name = "acme-c"
        version = "0.1.0"
        edition = "2021"
        license = "MIT"
        [dependencies]
        acme-core = { path = "../../core" }
        [workspace]
    """,
    "bindings/c/src/lib.rs": "",
    ".gitignore": "bindings/**/Cargo.lock\n",
    "deny.toml": """
        [licenses]
        allow = ["MIT", "Apache-2.0"]
    """,
}


def test_missing_cargo_locks_are_reported_at_once_or_resolved_in_the_cache(tmp_path: Path,
                                                                            private_cache: Path) -> None:
    root = write_tree(tmp_path / "ws", CARGO)
    missing = offline(root, "deny")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr, missing.stderr
    assert "3 Cargo workspace(s) have no Cargo.lock" in missing.stderr
    assert ("cargo generate-lockfile --manifest-path Cargo.toml && cargo generate-lockfile --manifest-path "
            "bindings/c/Cargo.toml && cargo generate-lockfile --manifest-path bindings/python/Cargo.toml") in \
        missing.stderr
    assert "generate-cargo-locks = true" in missing.stderr
    run(["cargo", "generate-lockfile"], root)  # the root lock is committed; the bindings' are ignored on purpose
    run(["cargo", "fetch", "--locked"], root)
    still = offline(root, "deny")
    assert still.returncode == 2 and "2 Cargo workspace(s) have no Cargo.lock" in still.stderr
    (root / "polybuild.toml").write_text("[licenses]\ngenerate-cargo-locks = true\n")
    # The first resolution needs crates.io (generate-lockfile, fetch); everything after it is offline.
    first = run_polybuild("deny", "--json", cwd=root)
    assert first.returncode == 0, first.stderr
    crates = {(v["package"]["name"]) for v in json.loads(first.stdout) if v["package"]}
    assert crates == set()  # everything allowed
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("Cargo.lock")) == ["Cargo.lock"]
    cached = sorted(p.relative_to(private_cache).parts[-3:] for p in private_cache.rglob("Cargo.lock")
                    if not p.is_symlink())
    assert cached == [("bindings", "c", "Cargo.lock"), ("bindings", "python", "Cargo.lock")]
    sbom = offline(root, "sbom")
    assert sbom.returncode == 0, sbom.stderr
    components = {c["name"]: c for c in json.loads(sbom.stdout)["components"]}
    assert {"itoa", "ryu"} <= set(components)
    # Read through the shadow, every crate is where it is in the repository: the core the bindings use by path is
    # the workspace's own target, not a path crate in the cache.
    ws = api.load(root).ws
    crate_targets = {Path(t.manifest).parent: t.id for t in ws.targets.values() if t.kind == "rust"}
    shadow = cargolocks.shadows(root, [root / "bindings/python"], private_cache)[root / "bindings/python"]
    found = {p.name: p for p in cargo.workspace_packages(root / "bindings/python", crate_targets, shadow=shadow)}
    assert found["acme-core"].workspace and found["acme-core"].source == "path"
    assert found["itoa"].dependents == [(crate_targets[root / "bindings/python"], crate_targets[root / "core"])]
    assert found["ryu"].files and not any(str(private_cache) in str(c) for p in found.values() for c in p.dependents)


def test_broken_uv_lock_is_a_located_usage_error(tmp_path: Path, private_cache: Path) -> None:
    """deny reads uv.lock through the one lock model: a broken lock stops it with file:line:col and the fix."""
    root = write_tree(tmp_path / "ws", {
        "polybuild.toml": "",
        "pyproject.toml": '[project]\nname = "app"\nversion = "0.1.0"\n\n'
                          '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n',
        "app/__init__.py": "",
        "uv.lock": 'version = 1\nrequires-python = ">=3.11"\n\n[[package]\nname = "app"\n',
    })
    proc = offline(root, "deny")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "uv.lock:4:10: cannot read the lock" in proc.stderr and "uv lock" in proc.stderr, proc.stderr
