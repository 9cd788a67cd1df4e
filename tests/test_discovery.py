"""Workspace discovery from native manifests, the graph it yields, and its error cases."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import run_polybuild
from polybuild import api
from polybuild.support.errors import UserError

MONOREPO = {
    "Cargo.toml": """
        [workspace]
        members = ["crates/core", "crates/ext", "crates/tool"]
        resolver = "2"
        [workspace.package]
        version = "0.4.0"
    """,
    "crates/core/Cargo.toml": """
        [package]
        name = "core-lib"
        version.workspace = true
        edition = "2021"
        [features]
        cuda = []
    """,
    "crates/core/src/lib.rs": "pub fn one() -> u32 { 1 }\n",
    "crates/ext/Cargo.toml": """
        [package]
        name = "ext"
        version.workspace = true
        edition = "2021"
        [lib]
        crate-type = ["cdylib"]
        [dependencies]
        core-lib = { path = "../core" }
        [features]
        cuda = ["core-lib/cuda"]
    """,
    "crates/ext/src/lib.rs": "",
    "crates/ext/pyproject.toml": """
        [build-system]
        requires = ["maturin>=1.8,<2"]
        build-backend = "maturin"
        [project]
        name = "Ext_Py"
        dynamic = ["version"]
    """,
    "crates/tool/Cargo.toml": """
        [package]
        name = "tool"
        version.workspace = true
        edition = "2021"
        [dependencies]
        core-lib = { path = "../core" }
    """,
    "crates/tool/src/main.rs": "fn main() {}\n",
    "py/app/pyproject.toml": """
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"
        [project]
        name = "app"
        version = "0.4.0"
        dependencies = ["ext-py==0.4.0", "requests>=2"]
        [project.optional-dependencies]
        server = ["aiohttp"]
    """,
    "go/lib/go.mod": "module example.com/lib\n\ngo 1.22\n",
    "go/lib/lib.go": "package lib\n",
    "go/svc/go.mod": """
        module example.com/svc/v2

        go 1.22

        require example.com/lib v0.0.0

        replace example.com/lib => ../lib
    """,
    "go/svc/cmd/svcd/main.go": "// Command svcd.\npackage main\n\nfunc main() {}\n",
    "go/svc/main.go": "package main\n\nfunc main() {}\n",
    "go/svc/internal/x/x.go": "package x\n",
    "go/svc/testdata/tool/main.go": "package main\n",
    "polybuild.toml": """
        [images.app]
        template = "container/app.Dockerfile.j2"
        artifacts = ["app", "svc"]
    """,
}


def edges(loaded) -> set[tuple[str, str]]:
    return set(loaded.graph.edges)


def test_discovers_every_ecosystem_with_cross_language_edges(workspace):
    loaded = api.load(workspace(MONOREPO))
    ws = loaded.ws
    assert sorted(ws.targets) == ["go:lib", "go:svc", "image:app", "py:Ext_Py", "py:app", "rust:core-lib",
                                  "rust:tool"]
    assert edges(loaded) == {
        ("py:Ext_Py", "rust:core-lib"),
        ("rust:tool", "rust:core-lib"),
        ("py:app", "py:Ext_Py"),
        ("go:svc", "go:lib"),
        ("image:app", "py:app"),
        ("image:app", "go:svc"),
    }
    ext = ws.targets["py:Ext_Py"]
    assert ext.builder == "maturin" and ext.features == {"cuda"} and ext.version == "0.4.0"
    assert ws.targets["rust:core-lib"].builder is None  # a library ships nothing on its own
    assert ws.targets["rust:tool"].info.bins == ["tool"]
    assert ws.targets["go:svc"].info.binaries == {"svc": ".", "svcd": "cmd/svcd"}
    assert ws.targets["go:lib"].builder is None
    assert ws.version == "0.4.0"


def test_graph_formats(workspace):
    root = workspace(MONOREPO)
    as_json = json.loads(run_polybuild("graph", "--format", "json", cwd=root).stdout)
    assert {"from": "py:app", "to": "py:Ext_Py"} in as_json["edges"]
    ids = [t["id"] for t in as_json["targets"]]
    assert ids.index("rust:core-lib") < ids.index("py:Ext_Py") < ids.index("py:app") < ids.index("image:app")
    dot = run_polybuild("graph", "--format", "dot", cwd=root).stdout
    assert '"py:app" -> "py:Ext_Py";' in dot
    mermaid = run_polybuild("graph", "--format", "mermaid", "py:app", cwd=root).stdout
    assert mermaid.startswith("graph LR") and "go:svc" not in mermaid and "rust:core-lib" in mermaid
    text = run_polybuild("graph", cwd=root).stdout
    assert "py:app  (pep517, py/app)\n    -> py:Ext_Py" in text


def test_cycle_is_an_error_that_prints_the_cycle(workspace):
    files = dict(MONOREPO)
    files["polybuild.toml"] += "[targets.core-lib]\ndeps = ['py:app']\n"
    proc = run_polybuild("graph", cwd=workspace(files))
    assert proc.returncode == 2
    assert "dependency cycle:" in proc.stderr
    cycle = proc.stderr.split("dependency cycle:")[1].splitlines()[0].strip().split(" -> ")
    assert cycle[0] == cycle[-1] and {"py:app", "py:Ext_Py", "rust:core-lib"} <= set(cycle)


def test_dependency_on_missing_directory(workspace):
    files = dict(MONOREPO)
    files["go/svc/go.mod"] = files["go/svc/go.mod"].replace("../lib", "../libb")
    with pytest.raises(UserError) as exc:
        api.load(workspace(files))
    assert "go/svc/go.mod:7: replace example.com/lib: depends on go/libb, which does not exist" in str(exc.value)


def test_dependency_on_unknown_target_suggests_names(workspace):
    files = dict(MONOREPO)
    files["polybuild.toml"] = files["polybuild.toml"].replace('"svc"]', '"svcc"]')
    proc = run_polybuild("graph", cwd=workspace(files))
    assert proc.returncode == 2
    assert "[images.app].artifacts: no target named 'svcc'" in proc.stderr
    assert "did you mean 'svc'" in proc.stderr


def test_settings_for_unknown_target_are_located(workspace):
    files = dict(MONOREPO)
    files["polybuild.toml"] += "\n[targets.tol]\nskip = true\n"
    with pytest.raises(UserError) as exc:
        api.load(workspace(files))
    assert str(exc.value).startswith("polybuild.toml:5: [targets.tol]: ")
    assert "no target named 'tol'" in str(exc.value) and "did you mean 'tool'" in str(exc.value)


def test_ambiguous_names_need_the_full_id(workspace):
    files = dict(MONOREPO)
    files["go/tool/go.mod"] = "module example.com/tool\n\ngo 1.22\n"
    loaded = api.load(workspace(files))
    with pytest.raises(UserError, match="'tool' is ambiguous: go:tool, rust:tool"):
        loaded.ws.resolve("tool")
    assert loaded.ws.resolve("rust:tool").id == "rust:tool"


def test_maturin_package_must_wrap_a_workspace_crate(workspace):
    files = dict(MONOREPO)
    files["py/broken/pyproject.toml"] = """
        [build-system]
        requires = ["maturin"]
        build-backend = "maturin"
        [project]
        name = "broken"
        version = "1.0"
    """
    with pytest.raises(UserError, match=r"maturin package 'broken' wraps .* which is not a crate"):
        api.load(workspace(files))


def test_nested_workspaces_and_excludes_are_left_out(workspace):
    files = dict(MONOREPO)
    files["examples/demo/polybuild.toml"] = ""
    files["examples/demo/go.mod"] = "module example.com/demo\n"
    files["scratch/go.mod"] = "module example.com/scratch\n"
    root = workspace(files)
    (root / "polybuild.toml").write_text("exclude = ['scratch']\n" + (root / "polybuild.toml").read_text())
    ids = set(api.load(root).ws.targets)
    assert "go:demo" not in ids and "go:scratch" not in ids and "go:svc" in ids


def test_polybuild_outputs_are_never_inputs_even_without_gitignore(workspace):
    root = workspace({"pyproject.toml": '[project]\nname = "app"\nversion = "1.0"\n', "app/__init__.py": ""})
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)  # and no .gitignore for dist/ or .polybuild/
    (root / "dist").mkdir()
    (root / "dist" / "app-1.0-py3-none-any.whl").write_bytes(b"built")
    (root / ".polybuild").mkdir()
    (root / ".polybuild" / "records.json").write_text("{}")
    assert api.load(root).ws.files == ["app/__init__.py", "pyproject.toml"]


def test_go_work_lists_the_modules(workspace):
    files = {k: v for k, v in MONOREPO.items() if k.startswith("go/")}
    files["go.work"] = "go 1.22\n\nuse (\n\t./go/lib\n\t./go/svc // the service\n)\n"
    files["go/unused/go.mod"] = "module example.com/unused\n"
    ids = set(api.load(workspace(files)).ws.targets)
    assert ids == {"go:lib", "go:svc"}


def test_malformed_manifest_is_located(workspace):
    files = dict(MONOREPO)
    files["py/app/pyproject.toml"] = "[project]\nname = \n"
    proc = run_polybuild("graph", cwd=workspace(files))
    assert proc.returncode == 2
    assert "py/app/pyproject.toml:2:" in proc.stderr and "Traceback" not in proc.stderr


def test_discovery_memo_is_reused_and_never_stale(workspace):
    import time

    root = workspace(MONOREPO)
    time.sleep(2.1)  # a memo is only written when every file it depends on is older than 2 s
    first = api.load(root)
    memo = root / ".polybuild" / "discovery.json"
    assert memo.is_file()
    stamp = memo.stat().st_mtime_ns
    again = api.load(root)
    assert memo.stat().st_mtime_ns == stamp  # read, not rewritten
    assert set(again.graph.edges) == set(first.graph.edges)
    assert again.ws.targets["py:Ext_Py"].features == {"cuda"}
    assert {i: t.info for i, t in again.ws.targets.items()} == {i: t.info for i, t in first.ws.targets.items()}
    # a new main package and a new feature are both seen
    (root / "go" / "lib" / "cmd" / "libtool").mkdir(parents=True)
    (root / "go" / "lib" / "cmd" / "libtool" / "main.go").write_text("package main\n\nfunc main() {}\n")
    cargo = root / "crates" / "core" / "Cargo.toml"
    cargo.write_text(cargo.read_text().replace("cuda = []", "cuda = []\nmetal = []"))
    fresh = api.load(root)
    assert fresh.ws.targets["go:lib"].info.binaries == {"libtool": "cmd/libtool"}
    assert fresh.ws.targets["rust:core-lib"].features == {"cuda", "metal"}


def test_image_options_configure_a_copy_and_leave_discovery_alone(workspace):
    from polybuild.workspace.targetinfo import ImageInfo, MaturinInfo, RustInfo

    loaded = api.load(workspace(MONOREPO))
    ext, tool = loaded.ws.targets["py:Ext_Py"].info, loaded.ws.targets["rust:tool"].info
    assert isinstance(ext, MaturinInfo) and ext.crate == "ext" and ext.dist_name == "ext-py"
    assert isinstance(tool, RustInfo) and tool.harness is None
    discovered = loaded.ws.targets["image:app"]
    configured = api.with_image_options(loaded, "image:app", vars={"device": "cpu"}, tags=["r/app:1"],
                                        platforms=["linux/arm64"], no_cache=True)
    spec = configured.ws.targets["image:app"].info.spec
    assert isinstance(configured.ws.targets["image:app"].info, ImageInfo)
    assert spec["set"]["device"] == "cpu" and spec["tags"] == ["r/app:1"] and spec["platforms"] == ["linux/arm64"]
    assert spec["no-cache"] is True
    assert loaded.ws.targets["image:app"] is discovered and discovered.info.spec["tags"] == []
    assert "device" not in discovered.info.spec.get("set", {}) and "no-cache" not in discovered.info.spec
    with pytest.raises(UserError, match="images are built for Linux platforms"):
        api.with_image_options(loaded, "image:app", platforms=["darwin/arm64"])
