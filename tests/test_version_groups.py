"""Version groups on a fixture reproducing ai-dynamo/dynamo's layout: a lockstep workspace at 1.1.0 (Cargo workspace
version inherited by most crates, a few crates with their own `version = "1.1.0"`, a maturin binding in its own Cargo
workspace, an exact `==` pin on it), and packages versioned on their own: `gpu-memory-service` 0.9.0,
`dynamo-codegen` 0.1.0 (a member of the root Cargo workspace) and `data-generator` 0.1.0 (benchmarks). Two pins on
the independent packages (a path dependency and an `==` extra) check that a pin follows the package it pins."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import run_polybuild, write_tree

DYNAMO = {
    "Cargo.toml": """
        [workspace]
        members = ["lib/runtime", "lib/llm", "lib/kvbm-common", "lib/kvbm-logical", "lib/bindings/python/codegen"]
        exclude = ["lib/bindings/python"]
        resolver = "3"

        [workspace.package]
        version = "1.1.0"
        edition = "2021"
        license = "Apache-2.0"

        [workspace.dependencies]
        # Local crates
        dynamo-runtime = { path = "lib/runtime", version = "1.1.0" }
        dynamo-llm = { path = "lib/llm", version = "1.1.0" }
        dynamo-codegen = { path = "lib/bindings/python/codegen", version = "0.1.0" }
        # kvbm
        kvbm-common = { path = "lib/kvbm-common", version = "1.1.0" }
        kvbm-logical = { path = "lib/kvbm-logical", version = "1.1.0" }
        """,
    "lib/runtime/Cargo.toml": """
        [package]
        name = "dynamo-runtime"
        version.workspace = true
        edition.workspace = true
        """,
    "lib/runtime/src/lib.rs": "",
    "lib/llm/Cargo.toml": """
        [package]
        name = "dynamo-llm"
        version.workspace = true
        edition.workspace = true

        [dependencies]
        dynamo-runtime = { workspace = true }

        [build-dependencies]
        dynamo-codegen = { workspace = true }
        """,
    "lib/llm/src/lib.rs": "",
    "lib/kvbm-common/Cargo.toml": """
        [package]
        name = "kvbm-common"
        version = "1.1.0"
        edition.workspace = true
        """,
    "lib/kvbm-common/src/lib.rs": "",
    "lib/kvbm-logical/Cargo.toml": """
        [package]
        name = "kvbm-logical"
        version = "1.1.0"
        edition.workspace = true

        [dependencies]
        kvbm-common = { workspace = true }
        """,
    "lib/kvbm-logical/src/lib.rs": "",
    "lib/bindings/python/codegen/Cargo.toml": """
        [package]
        name = "dynamo-codegen"
        version = "0.1.0"
        edition = "2021"
        publish = false
        """,
    "lib/bindings/python/codegen/src/lib.rs": "",
    "lib/bindings/python/Cargo.toml": """
        [workspace]
        # empty workspace to exclude from top level workspace

        [package]
        name = "dynamo-py3"
        version = "1.1.0"
        edition = "2021"

        [lib]
        name = "_core"
        path = "rust/lib.rs"
        crate-type = ["cdylib", "rlib"]

        [dependencies]
        dynamo-runtime = { path = "../../runtime" }
        dynamo-llm = { path = "../../llm" }
        """,
    "lib/bindings/python/rust/lib.rs": "",
    "lib/bindings/python/pyproject.toml": """
        [project]
        name = "ai-dynamo-runtime"
        version = "1.1.0"
        requires-python = ">=3.10"

        [build-system]
        requires = ["maturin>=1.0,<2.0"]
        build-backend = "maturin"

        [tool.maturin]
        module-name = "dynamo._core"
        """,
    "lib/gpu_memory_service/pyproject.toml": """
        [project]
        name = "gpu-memory-service"
        version = "0.9.0"
        requires-python = ">=3.10"

        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"
        """,
    "lib/gpu_memory_service/gpu_memory_service/__init__.py": "",
    "benchmarks/pyproject.toml": """
        [project]
        name = "data-generator"
        version = "0.1.0"

        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"
        """,
    "benchmarks/data_generator/__init__.py": "",
    "pyproject.toml": """
        [project]
        name = "ai-dynamo"
        version = "1.1.0"
        requires-python = ">=3.10"
        dependencies = [
            "ai-dynamo-runtime==1.1.0",
        ]

        [project.optional-dependencies]
        gms = ["gpu-memory-service==0.9.0"]

        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"
        """,
    "dynamo/__init__.py": "",
}

LOCKED = (".", "lib/bindings/python")
GROUPS = """
    [tool.polybuild.versions]
    # Versioned on their own, as upstream does.
    independent = ["py:gpu-memory-service", "rust:dynamo-codegen"]
    exclude = ["benchmarks"]
    """


@pytest.fixture
def dynamo(tmp_path: Path) -> Path:
    root = write_tree(tmp_path / "dynamo", DYNAMO)
    for workspace in LOCKED:  # the locks as cargo writes them (no registry crates: offline)
        subprocess.run(["cargo", "generate-lockfile", "--offline", "--quiet"], cwd=root / workspace, check=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


def _locked(root: Path) -> None:
    """`cargo --locked` still accepts every Cargo.lock (the nested workspace locks the root's crates too)."""
    for workspace in LOCKED:
        proc = subprocess.run(["cargo", "metadata", "--locked", "--offline", "--format-version", "1"],
                              cwd=root / workspace, capture_output=True, text=True)
        assert proc.returncode == 0, f"{workspace}: {proc.stderr}"


def _configure(root: Path, config: str = GROUPS) -> None:
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n" + config.replace("\n    ", "\n").lstrip("\n"))


def _read(root: Path, rel: str) -> str:
    return (root / rel).read_text()


def test_without_groups_every_package_must_follow_the_workspace(dynamo: Path) -> None:
    out = run_polybuild("version", "check", cwd=dynamo)
    assert out.returncode == 1
    assert out.stdout.splitlines() == [
        "Cargo.lock:7: lock dynamo-codegen: found 0.1.0, expected 1.1.0",
        "Cargo.toml:15: pin dynamo-codegen: found 0.1.0, expected 1.1.0",
        "benchmarks/pyproject.toml:3: data-generator: found 0.1.0, expected 1.1.0",
        "lib/bindings/python/Cargo.lock:7: lock dynamo-codegen: found 0.1.0, expected 1.1.0",
        "lib/bindings/python/codegen/Cargo.toml:3: crate dynamo-codegen: found 0.1.0, expected 1.1.0",
        "lib/gpu_memory_service/pyproject.toml:3: gpu-memory-service: found 0.9.0, expected 1.1.0",
        "pyproject.toml:10: pin gpu-memory-service==: found 0.9.0, expected 1.1.0",
    ]


def test_groups_make_the_real_layout_consistent_and_are_listed(dynamo: Path) -> None:
    _configure(dynamo)
    check = run_polybuild("version", "check", cwd=dynamo)
    assert check.returncode == 0, check.stdout + check.stderr
    shown = run_polybuild("version", cwd=dynamo)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert "workspace version: 1.1.0 (PEP 440), 1.1.0 (SemVer)" in text
    group = text[text.index("version group py:gpu-memory-service: 0.9.0"):]
    assert "  lib/gpu_memory_service/pyproject.toml:3: gpu-memory-service: 0.9.0" in group
    assert "  pyproject.toml:10: pin gpu-memory-service==: 0.9.0" in group
    codegen = text[text.index("version group rust:dynamo-codegen: 0.1.0"):]
    for place in ("Cargo.toml:15: pin dynamo-codegen: 0.1.0", "lock dynamo-codegen: 0.1.0",
                  "lib/bindings/python/codegen/Cargo.toml:3: crate dynamo-codegen: 0.1.0"):
        assert place in codegen
    assert "excluded from versioning: py:data-generator" in text
    assert "benchmarks/pyproject.toml" not in text


def test_set_bumps_the_lockstep_group_and_nothing_else(dynamo: Path) -> None:
    _configure(dynamo)
    out = run_polybuild("version", "set", "1.2.0rc1", cwd=dynamo)
    assert out.returncode == 0, out.stderr
    cargo = _read(dynamo, "Cargo.toml")
    assert 'version = "1.2.0-rc.1"\nedition' in cargo
    assert 'dynamo-runtime = { path = "lib/runtime", version = "1.2.0-rc.1" }' in cargo
    assert 'kvbm-logical = { path = "lib/kvbm-logical", version = "1.2.0-rc.1" }' in cargo
    assert 'dynamo-codegen = { path = "lib/bindings/python/codegen", version = "0.1.0" }' in cargo  # its own
    lock = _read(dynamo, "Cargo.lock")
    assert 'name = "dynamo-llm"\nversion = "1.2.0-rc.1"' in lock
    assert 'name = "dynamo-codegen"\nversion = "0.1.0"' in lock
    assert 'version = "1.2.0-rc.1"' in _read(dynamo, "lib/kvbm-common/Cargo.toml")
    assert 'version = "0.1.0"' in _read(dynamo, "lib/bindings/python/codegen/Cargo.toml")
    nested = _read(dynamo, "lib/bindings/python/Cargo.lock")
    assert 'name = "dynamo-py3"\nversion = "1.2.0-rc.1"' in nested
    assert 'name = "dynamo-runtime"\nversion = "1.2.0-rc.1"' in nested  # a path dependency's entry
    assert 'name = "dynamo-codegen"\nversion = "0.1.0"' in nested
    root = _read(dynamo, "pyproject.toml")
    assert 'version = "1.2.0rc1"' in root and '"ai-dynamo-runtime==1.2.0rc1"' in root
    assert 'gms = ["gpu-memory-service==0.9.0"]' in root
    assert 'version = "0.9.0"' in _read(dynamo, "lib/gpu_memory_service/pyproject.toml")
    assert 'version = "0.1.0"' in _read(dynamo, "benchmarks/pyproject.toml")
    assert "# Versioned on their own, as upstream does." in root
    assert run_polybuild("version", "check", cwd=dynamo).returncode == 0
    _locked(dynamo)


def test_set_group_bumps_an_independent_package_with_its_pins(dynamo: Path) -> None:
    _configure(dynamo)
    out = run_polybuild("version", "set", "0.9.1", "--group", "py:gpu-memory-service", cwd=dynamo)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "lib/gpu_memory_service/pyproject.toml:3: gpu-memory-service: 0.9.0 -> 0.9.1",
        "pyproject.toml:10: pin gpu-memory-service==: 0.9.0 -> 0.9.1",
    ]
    codegen = run_polybuild("version", "set", "0.2.0", "--group", "dynamo-codegen", cwd=dynamo)  # by name
    assert codegen.returncode == 0, codegen.stderr
    assert len(codegen.stdout.splitlines()) == 4  # the crate, the path-dependency pin, an entry in each lock
    assert 'version = "1.1.0"' in _read(dynamo, "pyproject.toml")
    assert run_polybuild("version", "check", cwd=dynamo).returncode == 0
    assert "version group rust:dynamo-codegen: 0.2.0" in run_polybuild("version", cwd=dynamo).stdout
    _locked(dynamo)


def test_a_pin_is_checked_against_its_own_package(dynamo: Path) -> None:
    _configure(dynamo)
    root = dynamo / "pyproject.toml"
    root.write_text(root.read_text().replace("gpu-memory-service==0.9.0", "gpu-memory-service==0.8.0"))
    cargo = dynamo / "Cargo.toml"
    cargo.write_text(cargo.read_text().replace('codegen", version = "0.1.0"', 'codegen", version = "1.1.0"'))
    out = run_polybuild("version", "check", cwd=dynamo)
    assert out.returncode == 1
    assert out.stdout.splitlines() == [
        "Cargo.toml:15: pin dynamo-codegen: found 1.1.0, expected 0.1.0 (version group rust:dynamo-codegen)",
        "pyproject.toml:10: pin gpu-memory-service==: found 0.8.0, expected 0.9.0 (version group "
        "py:gpu-memory-service)",
    ]


def test_named_group_with_its_own_version_key(dynamo: Path) -> None:
    _configure(dynamo, GROUPS + """
    [tool.polybuild.versions.groups.kvbm]
    packages = ["rust:kvbm-*"]
    version = "1.1.0"
    """)
    out = run_polybuild("version", "set", "0.3.0", "--group", "kvbm", cwd=dynamo)
    assert out.returncode == 0, out.stderr
    changed = out.stdout
    assert "pyproject.toml:23: group kvbm version: 1.1.0 -> 0.3.0" in changed
    for place in ("Cargo.toml:17: pin kvbm-common", "Cargo.toml:18: pin kvbm-logical", "lock kvbm-common",
                  "lib/kvbm-logical/Cargo.toml:3: crate kvbm-logical"):
        assert place in changed
    assert len(changed.splitlines()) == 7
    assert 'version = "0.3.0"' in _read(dynamo, "lib/kvbm-common/Cargo.toml")
    assert '[workspace.package]\nversion = "1.1.0"' in _read(dynamo, "Cargo.toml")
    assert run_polybuild("version", "check", cwd=dynamo).returncode == 0
    crate = dynamo / "lib/kvbm-common/Cargo.toml"
    crate.write_text(crate.read_text().replace('"0.3.0"', '"1.1.0"'))
    out = run_polybuild("version", "check", cwd=dynamo)
    assert out.stdout.splitlines() == ["lib/kvbm-common/Cargo.toml:3: crate kvbm-common: found 1.1.0, expected "
                                       "0.3.0 (version group kvbm)"]


@pytest.mark.parametrize(("config", "message"), [
    ("[tool.polybuild.versions]\nindependent = [\"py:gpu-memory-servce\"]\n",
     "pyproject.toml:17: versions.independent: 'py:gpu-memory-servce' matches no package"),
    ("[tool.polybuild.versions]\nexclude = [\"benchmarks\"]\nindependent = [\"py:data-*\"]\n",
     "py:data-generator is in both [versions] exclude and [versions] independent"),
    ("[tool.polybuild.versions.groups.core]\npackages = [\"rust:dynamo-runtime\"]\n",
     "Cargo.toml:7: [workspace.package] version is shared by packages of different version groups (core, "
     "workspace)"),
])
def test_group_mistakes_are_user_errors(dynamo: Path, config: str, message: str) -> None:
    (dynamo / "pyproject.toml").write_text(_read(dynamo, "pyproject.toml") + "\n" + config)
    out = run_polybuild("version", "check", cwd=dynamo)
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_release_checks_each_group_and_expects_each_wheel_at_its_version(dynamo: Path) -> None:
    from polybuild.api import load
    from polybuild.execute.scheduler import Artifact
    from polybuild.release import git
    from polybuild.release.pipeline import Options, State, _expected, _version
    from polybuild.versioning.convert import parse_version

    _configure(dynamo)
    subprocess.run(["git", "add", "-A"], cwd=dynamo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "1.1.0"], cwd=dynamo,
                   check=True)
    state = State(load(dynamo), Options(parse_version("1.1.0")), commit=git.head(dynamo))
    assert _version(state) == []
    assert state.versions == {"py:data-generator": "0.1.0", "py:gpu-memory-service": "0.9.0",
                              "rust:dynamo-codegen": "0.1.0"}
    wheel = Artifact("t", "py:gpu-memory-service", None, None, dynamo / "gms.whl", "", 0)
    assert _expected(state, wheel).version == "0.9.0"
    runtime = Artifact("t", "py:ai-dynamo", None, None, dynamo / "ai_dynamo.whl", "", 0)
    assert _expected(state, runtime).version == "1.1.0"
    root = dynamo / "pyproject.toml"
    root.write_text(root.read_text().replace("gpu-memory-service==0.9.0", "gpu-memory-service==1.1.0"))
    problems = _version(State(load(dynamo), Options(parse_version("1.1.0")), commit=git.head(dynamo)))
    assert problems[0] == ("pyproject.toml:10: pin gpu-memory-service==: found 1.1.0, expected 0.9.0 (version "
                           "group py:gpu-memory-service)")
    assert "--group py:gpu-memory-service" in problems[-1]


def _go_module(name: str) -> dict[str, str]:
    return {f"deploy/{name}/go.mod": f"module example.com/{name}\n\ngo 1.22\n",
            f"deploy/{name}/main.go": ('package main\n\nimport "fmt"\n\nvar version = "unstamped"\n\n'
                                       "func main() { fmt.Println(version) }\n")}


GO_GROUPS = {
    **_go_module("operator"), **_go_module("gateway"), **_go_module("router"), **_go_module("bench"),
    "polybuild.toml": """
        version = "1.1.0"

        [versions]
        independent = ["go:gateway"]
        exclude = ["go:bench"]

        [versions.groups.routing]
        packages = ["go:router"]
        version = "0.9.0-rc.1"

        [targets.gateway]
        version = "0.3.0"
        """,
}


@pytest.mark.skipif(subprocess.run(["which", "go"], capture_output=True).returncode, reason="needs go")
def test_go_binaries_carry_their_version_groups_version(tmp_path: Path) -> None:
    # Go modules versioned on their own were stamped with the workspace version (-ldflags -X main.version=1.1.0).
    root = write_tree(tmp_path / "ws", GO_GROUPS)

    def printed() -> dict[str, str]:
        proc = run_polybuild("build", cwd=root)
        assert proc.returncode == 0, proc.stderr
        return {name: subprocess.run([root / "dist" / name], capture_output=True, text=True, check=True).stdout
                for name in ("operator", "gateway", "router", "bench")}

    assert printed() == {"operator": "1.1.0\n", "gateway": "0.3.0\n", "router": "0.9.0-rc.1\n",
                         "bench": "unstamped\n"}  # excluded: never stamped
    proc = run_polybuild("version", cwd=root)
    assert "  go:operator: -ldflags -X main.version=1.1.0 (derived from the workspace version)" in proc.stdout
    assert ("version group go:gateway: 0.3.0 (PEP 440), 0.3.0 (SemVer)\n"
            "  polybuild.toml:12: go:gateway version: 0.3.0\n"
            "  go:gateway: -ldflags -X main.version=0.3.0 (derived from the group version)" in proc.stdout), proc.stdout
    # `version set --group` bumps the module's own version, and the next build stamps it (the key follows it).
    assert run_polybuild("version", "set", "0.4.0", "--group", "gateway", cwd=root).returncode == 0
    assert 'version = "0.4.0"' in (root / "polybuild.toml").read_text()
    assert run_polybuild("version", "check", cwd=root).returncode == 0
    assert printed()["gateway"] == "0.4.0\n"


def test_a_go_module_on_its_own_without_a_version_is_refused_alone(tmp_path: Path) -> None:
    config = GO_GROUPS["polybuild.toml"].replace('[targets.gateway]\n        version = "0.3.0"', "")
    root = write_tree(tmp_path / "ws", {**GO_GROUPS, "polybuild.toml": config})
    proc = run_polybuild("build", cwd=root)
    assert proc.returncode == 2, proc.stderr
    assert ("polybuild: error: go:gateway is versioned on its own (version group go:gateway) but declares no version"
            in proc.stderr and 'hint: set version = "0.1.0" in [targets.gateway]' in proc.stderr), proc.stderr
    assert "3 built, 1 failed" in proc.stderr


@pytest.mark.parametrize("target", ["py:gpu-memory-service", "gpu-memory-service"])
def test_only_a_go_module_takes_a_version_in_its_targets_table(dynamo: Path, target: str) -> None:
    (dynamo / "polybuild.toml").write_text(f'[targets."{target}"]\nversion = "1.0.0"\n')
    proc = run_polybuild("version", "check", cwd=dynamo)
    assert proc.returncode == 2 and "py:gpu-memory-service declares its version in lib/gpu_memory_service/" \
        "pyproject.toml, not here" in proc.stderr, proc.stderr


def test_a_versions_mistake_stops_a_build_of_go_modules(tmp_path: Path) -> None:
    # A config mistake, not one target's problem: reported once, nothing runs (not a refusal of each Go module).
    config = GO_GROUPS["polybuild.toml"].replace('independent = ["go:gateway"]', 'independent = ["go:gatewey"]')
    root = write_tree(tmp_path / "ws", {**GO_GROUPS, "polybuild.toml": config})
    proc = run_polybuild("build", cwd=root)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == ("polybuild: error: polybuild.toml:4: versions.independent: 'go:gatewey' matches no "
                           "package\n  hint: did you mean 'go:gateway'?\n"), proc.stderr
