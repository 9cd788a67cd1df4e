"""Discovery and build on layouts taken from real repositories: Go module names that collide (a repository of 68
Go modules: two `prometheus` modules, mongo-driver v1 and v2), binaries and wheels that would share a dist path,
helper scripts under dot-directories, fuzz/bench/wasm crates that are not shipped products (dynamo and a bindings
repository), and a cgo binary linking a Rust static library (dynamo's inference gateway)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from conftest import run_polybuild
from polybuild import api
from polybuild.support.errors import UserError

GO_MODULES = {
    # Two modules named `prometheus` in different directories, as in the Go repository with 68 modules.
    "exporters/prometheus/go.mod": "module github.com/acme/otel/exporters/prometheus\n\ngo 1.22\n",
    "exporters/prometheus/prometheus.go": "package prometheus\n",
    "bridges/prometheus/go.mod": "module github.com/acme/otel/bridges/prometheus\n\ngo 1.22\n",
    "bridges/prometheus/prometheus.go": "package prometheus\n",
    # A major version next to its predecessor: both are named `mongo-driver`.
    "mongo/v1/go.mod": "module go.mongodb.org/mongo-driver\n\ngo 1.22\n",
    "mongo/v1/mongo.go": "package mongo\n",
    "mongo/v2/go.mod": "module go.mongodb.org/mongo-driver/v2\n\ngo 1.22\n",
    "mongo/v2/mongo.go": "package mongo\n",
    "mongo/v2/go.sum": "",
    "sdk/go.mod": ("module github.com/acme/otel/sdk\n\ngo 1.22\n\nrequire go.mongodb.org/mongo-driver/v2 v2.0.0\n\n"
                   "replace go.mongodb.org/mongo-driver/v2 => ../mongo/v2\n"),
    "sdk/sdk.go": "package sdk\n",
}


def test_go_module_name_collisions_get_qualified_ids(workspace):
    ws = api.load(workspace(GO_MODULES)).ws
    assert sorted(ws.targets) == [
        "go:github.com/acme/otel/bridges/prometheus",
        "go:github.com/acme/otel/exporters/prometheus",
        "go:go.mongodb.org/mongo-driver",
        "go:go.mongodb.org/mongo-driver/v2",
        "go:sdk",
    ]
    assert ws.targets["go:sdk"].deps == {"go:go.mongodb.org/mongo-driver/v2"}
    assert ws.notes == [
        "2 Go modules are named 'mongo-driver' (mongo/v1, mongo/v2): their ids are their module paths",
        "2 Go modules are named 'prometheus' (bridges/prometheus, exporters/prometheus): their ids are their "
        "module paths",
    ]
    # A qualified target is found by its id, its module path or its directory; the bare name names both.
    assert ws.resolve("go.mongodb.org/mongo-driver/v2").id == "go:go.mongodb.org/mongo-driver/v2"
    assert ws.resolve("mongo/v1").id == "go:go.mongodb.org/mongo-driver"
    with pytest.raises(UserError, match=r"'prometheus' is ambiguous: go:github\.com/acme/otel/bridges/prometheus, "
                                        r"go:github\.com/acme/otel/exporters/prometheus"):
        ws.resolve("prometheus")


def test_graph_reports_collisions_as_notes(workspace):
    proc = run_polybuild("graph", cwd=workspace(GO_MODULES))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("note: ") == 2 and "named 'prometheus'" in proc.stderr
    assert "go:github.com/acme/otel/exporters/prometheus" in proc.stdout


def test_a_target_can_be_renamed(workspace):
    files = {**GO_MODULES, "polybuild.toml": """
        [targets."go.mongodb.org/mongo-driver/v2"]
        name = "mongo-v2"
        [targets."exporters/prometheus"]
        name = "prometheus-exporter"
    """}
    ws = api.load(workspace(files)).ws
    assert {"go:mongo-v2", "go:prometheus-exporter"} <= set(ws.targets)
    assert ws.targets["go:sdk"].deps == {"go:mongo-v2"}
    assert ws.resolve("mongo-v2").id == "go:mongo-v2"
    assert ws.targets["go:mongo-v2"].settings["name"] == "mongo-v2"


def test_a_rename_onto_another_target_is_an_error(workspace):
    files = {**GO_MODULES, "polybuild.toml": '[targets."mongo/v2"]\nname = "sdk"\n'}
    with pytest.raises(UserError) as exc:
        api.load(workspace(files))
    assert str(exc.value).startswith("polybuild.toml:2: renaming go:go.mongodb.org/mongo-driver/v2 to go:sdk")
    assert "go:sdk" in str(exc.value) and "sdk/go.mod" in str(exc.value)


CARGO_TWICE = {
    # Two Cargo workspaces (as in a bindings repository of 16 workspaces) with a crate of the same name each.
    "bindings/a/Cargo.toml": """
        [package]
        name = "example"
        version = "0.1.0"
        edition = "2021"
        [workspace]
    """,
    "bindings/a/src/main.rs": "fn main() {}\n",
    "bindings/b/Cargo.toml": """
        [package]
        name = "example"
        version = "0.1.0"
        edition = "2021"
        [workspace]
    """,
    "bindings/b/src/lib.rs": "",
}


def test_crates_of_the_same_name_in_two_cargo_workspaces(workspace):
    ws = api.load(workspace(CARGO_TWICE)).ws
    assert sorted(ws.targets) == ["rust:example@bindings/a", "rust:example@bindings/b"]
    assert ws.notes == ["2 Rust crates are named 'example' (bindings/a, bindings/b): their ids are "
                        "'rust:<name>@<directory>'"]


def _pyproject(name: str) -> str:
    return f"""
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"
        [project]
        name = "{name}"
        version = "1.0.0"
    """


def test_python_names_equal_after_normalisation_stop_the_build_naming_both(workspace):
    root = workspace({"a/pyproject.toml": _pyproject("FX_A"), "b/pyproject.toml": _pyproject("fx-a")})
    proc = run_polybuild("build", cwd=root)
    assert proc.returncode == 2, proc.stderr
    assert "py:FX_A" in proc.stderr and "py:fx-a" in proc.stderr and "fx_a-*.whl" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (root / "dist").exists() or not list((root / "dist").glob("*.whl"))


def test_python_exact_duplicates_are_qualified_and_stop_the_build(workspace):
    root = workspace({"a/pyproject.toml": _pyproject("tool"), "b/pyproject.toml": _pyproject("tool"),
                      "c/pyproject.toml": _pyproject("user").replace('version = "1.0.0"',
                                                                     'version = "1.0.0"\ndependencies = ["tool"]')})
    with pytest.raises(UserError, match=r"c/pyproject.toml: tool: 'tool' is the name of 2 packages of this "
                                        r"workspace: a/pyproject.toml, b/pyproject.toml"):
        api.load(root)
    (root / "c/pyproject.toml").unlink()
    ws = api.load(root).ws
    assert sorted(ws.targets) == ["py:tool@a", "py:tool@b"]
    proc = run_polybuild("build", cwd=root)
    assert proc.returncode == 2 and "py:tool@a" in proc.stderr and "py:tool@b" in proc.stderr


TWO_SERVERS = {
    "alpha/go.mod": "module example.com/alpha\n\ngo 1.22\n",
    "alpha/cmd/server/main.go": 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("alpha") }\n',
    "beta/go.mod": "module example.com/beta\n\ngo 1.22\n",
    "beta/cmd/server/main.go": 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("beta") }\n',
}


@pytest.mark.skipif(shutil.which("go") is None, reason="needs go")
def test_go_binaries_of_the_same_name_never_overwrite_each_other(workspace):
    root = workspace(TWO_SERVERS)
    proc = run_polybuild("build", cwd=root)
    assert proc.returncode == 2, proc.stderr
    assert ("go:alpha and go:beta would both publish dist/server" in proc.stderr
            and "dist-subdir" in proc.stderr), proc.stderr
    assert not (root / "dist" / "server").exists()
    (root / "polybuild.toml").write_text('[targets.alpha]\ndist-subdir = "alpha"\n')
    proc = run_polybuild("build", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert subprocess.run([root / "dist/alpha/server"], capture_output=True, text=True).stdout == "alpha\n"
    assert subprocess.run([root / "dist/server"], capture_output=True, text=True).stdout == "beta\n"


def test_a_crate_and_a_go_module_publishing_one_name_are_refused_at_plan_time(workspace):
    from polybuild.plan import build_plan, choose_dimensions

    root = workspace({**{k: v for k, v in TWO_SERVERS.items() if k.startswith("alpha/")},
                      "server-rs/Cargo.toml": _crate("server-rs", '[[bin]]\nname = "server"\npath = "main.rs"\n'
                                                                  '[workspace]\n'),
                      "server-rs/main.rs": "fn main() {}\n"})
    loaded = api.load(root)
    variants, platforms = choose_dimensions(loaded.ws, [], [])
    with pytest.raises(UserError, match="go:alpha and rust:server-rs would both publish dist/server"):
        build_plan(loaded.ws, loaded.dag, api.select(loaded, []), variants, platforms)
    assert sorted(build_plan(loaded.ws, loaded.dag, api.select(loaded, ["alpha"]), variants, platforms).tasks) == [
        "go:alpha"]


@pytest.mark.skipif(shutil.which("go") is None, reason="needs go")
def test_two_main_packages_of_one_name_in_one_module_stop_the_build(workspace):
    root = workspace({**TWO_SERVERS, "alpha/tools/server/main.go": "package main\n\nfunc main() {}\n"})
    proc = run_polybuild("build", "alpha", cwd=root)
    assert proc.returncode == 2, proc.stderr
    assert "go:alpha: the main packages cmd/server and tools/server would both be built as server" in proc.stderr


@pytest.mark.skipif(shutil.which("go") is None, reason="needs go")
@pytest.mark.parametrize("keep_going", [False, True], ids=["fail-fast", "keep-going"])
def test_a_refused_target_fails_alone_and_unrelated_targets_build(workspace, keep_going):
    # dynamo's gateway was refused in preflight and nothing else was built, not even the unrelated Go modules. The
    # refusal is known before anything runs: the target fails with its message, its dependents are skipped, the
    # rest builds (with or without --keep-going) and the exit code says the fix is in the workspace (2).
    root = workspace({
        **TWO_SERVERS,
        "alpha/tools/server/main.go": "package main\n\nfunc main() {}\n",
        "gamma/go.mod": ("module example.com/gamma\n\ngo 1.22\n\nrequire example.com/alpha v0.0.0\n\n"
                         "replace example.com/alpha => ../alpha\n"),
        "gamma/cmd/gamma/main.go": "package main\n\nfunc main() {}\n",
        "polybuild.toml": '[targets.alpha]\ndist-subdir = "alpha"\n',
    })
    assert api.load(root).ws.targets["go:gamma"].deps == {"go:alpha"}
    proc = run_polybuild("build", *(["--keep-going"] if keep_going else []), cwd=root)
    assert proc.returncode == 2, proc.stderr
    assert ("polybuild: error: go:alpha: the main packages cmd/server and tools/server would both be built as "
            "server, one overwriting the other\n  hint: rename one package's directory" in proc.stderr), proc.stderr
    assert "polybuild: 1 built, 1 failed, 1 skipped" in proc.stderr, proc.stderr
    assert subprocess.run([root / "dist/server"], capture_output=True, text=True).stdout == "beta\n"
    assert not (root / "dist/alpha").exists() and not (root / "dist/gamma").exists()
    report = json.loads((root / "dist/build-report.json").read_text())
    tasks = {t["id"]: t for t in report["tasks"]}
    assert tasks["go:alpha"]["status"] == "failed" and "would both be built as server" in tasks["go:alpha"]["reason"]
    assert tasks["go:gamma"]["status"] == "skipped" and tasks["go:gamma"]["reason"] == "dependency go:alpha failed"
    assert tasks["go:beta"]["status"] == "built"


@pytest.mark.parametrize("value", ["../x", "/abs", "a/../../b", ""])
def test_dist_subdir_stays_inside_dist(workspace, value):
    root = workspace({**TWO_SERVERS, "polybuild.toml": f'[targets.alpha]\ndist-subdir = "{value}"\n'})
    with pytest.raises(UserError, match="dist-subdir"):
        api.load(root)


def test_dot_directories_are_not_products(workspace):
    root = workspace({
        ".github/scripts/pyproject.toml": _pyproject("ci-helpers"),
        ".devcontainer/tool/go.mod": "module example.com/devtool\n",
        "pkg/pyproject.toml": _pyproject("pkg"),
    })
    assert sorted(api.load(root).ws.targets) == ["py:pkg"]
    (root / "polybuild.toml").write_text('python-roots = [".", ".github/scripts"]\n')  # unless a root names one
    assert sorted(api.load(root).ws.targets) == ["py:ci-helpers", "py:pkg"]


def _crate(name: str, extra: str = "", publish: bool = True) -> str:
    return f"""
        [package]
        name = "{name}"
        version = "0.1.0"
        edition = "2021"
        {"" if publish else "publish = false"}
        {extra}
    """


HARNESSES = {
    "Cargo.toml": '[workspace]\nmembers = ["fuzz", "bench", "wasm", "internal", "cli"]\nresolver = "2"\n',
    # cargo-fuzz's own layout.
    "fuzz/Cargo.toml": _crate("cli-fuzz", '[package.metadata]\ncargo-fuzz = true\n[dependencies]\n'
                              'libfuzzer-sys = "0.4"\n[[bin]]\nname = "parse"\npath = "fuzz_targets/parse.rs"\n',
                              publish=False),
    "fuzz/fuzz_targets/parse.rs": "fn main() {}\n",
    # A benchmark driver binary.
    "bench/Cargo.toml": _crate("cli-bench", '[dependencies]\ncriterion = "0.5"\n', publish=False),
    "bench/src/main.rs": "fn main() {}\n",
    # A wasm-only cdylib.
    "wasm/Cargo.toml": _crate("cli-wasm", '[lib]\ncrate-type = ["cdylib"]\n[dependencies]\nwasm-bindgen = "0.2"\n'),
    "wasm/src/lib.rs": "",
    # publish = false alone: an internal tool that must still build.
    "internal/Cargo.toml": _crate("internal-tool", publish=False),
    "internal/src/main.rs": "fn main() {}\n",
    "cli/Cargo.toml": _crate("cli", '[dev-dependencies]\ncriterion = "0.5"\n'),
    "cli/src/main.rs": "fn main() {}\n",
}


def test_fuzz_bench_and_wasm_crates_are_not_built_by_default(workspace):
    from polybuild.ci.matrix import compute
    from polybuild.plan import build_plan, choose_dimensions

    root = workspace(HARNESSES)
    loaded = api.load(root)
    ws = loaded.ws
    assert {t: getattr(ws.targets[t].info, "harness", None) for t in ws.targets} == {
        "rust:cli": None, "rust:cli-bench": "bench", "rust:cli-fuzz": "fuzz", "rust:cli-wasm": "wasm",
        "rust:internal-tool": None}
    variants, platforms = choose_dimensions(ws, [], [])
    plan = build_plan(ws, loaded.dag, api.select(loaded, []), variants, platforms)
    assert sorted(plan.tasks) == ["rust:cli", "rust:internal-tool"]
    assert dict(plan.skipped)["rust:cli-fuzz"].startswith("a fuzz harness")
    named = build_plan(ws, loaded.dag, api.select(loaded, ["cli-fuzz"]), variants, platforms,
                       named={"rust:cli-fuzz"})
    assert sorted(named.tasks) == ["rust:cli-fuzz"]
    matrix = compute(loaded, platforms=["linux/amd64"])
    assert sorted(matrix.targets) == ["rust:cli", "rust:internal-tool"]
    (root / "polybuild.toml").write_text("[targets.cli-fuzz]\nskip = false\n")
    loaded = api.load(root)
    assert "rust:cli-fuzz" in compute(loaded, platforms=["linux/amd64"]).targets


ADD_CRATE = {
    # A Rust C API crate built as a static library, as dynamo's lib/bindings/c (`crate-type = ["cdylib",
    # "staticlib"]`, a lib name of its own).
    "rust/addlib/Cargo.toml": """
        [package]
        name = "addlib"
        version = "0.1.0"
        edition = "2021"
        [lib]
        name = "add"
        crate-type = ["cdylib", "staticlib"]
        [workspace]
    """,
    "rust/addlib/src/lib.rs": "#[no_mangle]\npub extern \"C\" fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n",
    "rust/addlib/include dir/add.h": "#include <stdint.h>\nint32_t add(int32_t a, int32_t b);\n",
    "go/calc/go.mod": "module example.com/calc\n\ngo 1.22\n",
}


def _cgo_main(ldflags: str) -> str:
    return f"""
        package main

        /*
        #cgo LDFLAGS: {ldflags}
        #include "add.h"
        */
        import "C"

        import "fmt"

        func main() {{ fmt.Println(int(C.add(2, 40))) }}
    """


needs_cgo = pytest.mark.skipif(not all(shutil.which(t) for t in ("go", "cargo", "cc")), reason="needs go, cargo, cc")


@needs_cgo
@pytest.mark.parametrize("declared", [False, True], ids=["inferred", "declared"])
def test_cgo_binary_links_the_rust_staticlib(workspace, declared):
    files = {**ADD_CRATE, "polybuild.toml": '[targets.addlib]\ninclude-dir = "include dir"\n'}
    if declared:  # no -l in the source: the edge comes from config, polybuild passes -ladd itself
        files["go/calc/main.go"] = _cgo_main("-ldl -lpthread -lm")
        files["polybuild.toml"] += '[targets.calc]\ndeps = ["addlib"]\n'
    else:
        files["go/calc/main.go"] = _cgo_main("-ladd -ldl -lpthread -lm")
    root = workspace(files)
    ws = api.load(root).ws
    assert ws.targets["go:calc"].deps == {"rust:addlib"}
    proc = run_polybuild("build", "calc", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert (root / "dist/libadd.a").is_file()
    out = subprocess.run([root / "dist/calc"], capture_output=True, text=True, env={"LD_LIBRARY_PATH": ""})
    assert out.stdout == "42\n", out
    # Linked statically: the binary needs no libadd.so next to it.
    (root / "dist/libadd.so").unlink()
    assert subprocess.run([root / "dist/calc"], capture_output=True, text=True).stdout == "42\n"
    if not declared:  # reproducible: the same bytes from a checkout elsewhere (the library's path is not kept)
        elsewhere = shutil.copytree(root, root.parent / "elsewhere",
                                    ignore=shutil.ignore_patterns("dist", ".polybuild"))
        assert run_polybuild("build", "calc", "--no-cache", cwd=elsewhere).returncode == 0
        assert (elsewhere / "dist/calc").read_bytes() == (root / "dist/calc").read_bytes()


DYNAMO_GATEWAY = {
    # dynamo's layout: the inference gateway's cgo plugin links the C API crate's .a by a path in the source tree.
    "lib/bindings/c/Cargo.toml": """
        [package]
        name = "libdynamo_llm"
        version = "0.1.0"
        edition = "2021"
        [lib]
        name = "dynamo_llm_capi"
        crate-type = ["cdylib", "staticlib"]
        [workspace]
    """,
    "lib/bindings/c/src/lib.rs": "",
    "deploy/inference-gateway/epp/go.mod": "module github.com/nvidia/dynamo/deploy/inference-gateway\n\ngo 1.24\n",
    "deploy/inference-gateway/epp/cmd/epp/main.go": "package main\n\nfunc main() {}\n",
    "deploy/inference-gateway/epp/pkg/plugins/dynamo_kv_scorer/plugin.go": """
        package dynamo_kv_scorer

        /*
        #cgo CPPFLAGS: -I${SRCDIR}/include
        #cgo CXXFLAGS: -std=c++17
        #cgo LDFLAGS: ${SRCDIR}/lib/libdynamo_llm_capi.a -lstdc++ -ldl -lpthread -lm

        #include <stdint.h>
        */
        import "C"
    """,
}


def test_dynamo_gateway_links_the_c_api_crate_by_path(workspace):
    root = workspace(DYNAMO_GATEWAY)
    ws = api.load(root).ws
    assert ws.targets["go:inference-gateway"].deps == {"rust:libdynamo_llm"}
    assert ws.targets["rust:libdynamo_llm"].info.staticlibs == ["dynamo_llm_capi"]
    proc = run_polybuild("build", cwd=root)
    assert proc.returncode == 2, proc.stderr
    assert ("deploy/inference-gateway/epp/pkg/plugins/dynamo_kv_scorer/plugin.go:6: go:inference-gateway links "
            "libdynamo_llm_capi.a by a path" in proc.stderr), proc.stderr
    assert "-ldynamo_llm_capi" in proc.stderr and "Traceback" not in proc.stderr
    assert "or set cgo-stage = true in [targets.inference-gateway]" in proc.stderr


def test_a_cgo_link_by_path_keeps_the_path_in_the_discovery_memo(workspace):
    # cgo-stage places the library at the path the preamble names: a remembered discovery must know it too.
    import time

    from polybuild.workspace.targetinfo import CgoLink

    root = workspace(DYNAMO_GATEWAY)
    time.sleep(2.1)  # a memo is only written when every file it depends on is older than 2 s
    first = api.load(root).ws.targets["go:inference-gateway"].info.cgo_links
    assert (root / ".polybuild" / "discovery.json").is_file()
    again = api.load(root).ws.targets["go:inference-gateway"].info.cgo_links
    plugin = "deploy/inference-gateway/epp/pkg/plugins/dynamo_kv_scorer/plugin.go"
    assert first == again == [CgoLink("dynamo_llm_capi", f"{plugin}:6", True, "${SRCDIR}/lib/libdynamo_llm_capi.a")]


STALE = "not the library polybuild builds\n"
STAGED_GATEWAY = {
    # The same layout, buildable: the C API crate exports a function, the plugin (whose preamble declares it, as
    # dynamo's does, and links the .a by its ${SRCDIR} path) wraps it, and the epp binary calls it. The tree holds
    # a stale file at that path (dynamo's `make dynamo-lib` copies one there by hand).
    "lib/bindings/c/Cargo.toml": DYNAMO_GATEWAY["lib/bindings/c/Cargo.toml"],
    "lib/bindings/c/src/lib.rs": ("#[no_mangle]\npub extern \"C\" fn dynamo_add(a: i32, b: i32) -> i32 {\n"
                                  "    a + b\n}\n"),
    "deploy/inference-gateway/epp/go.mod": DYNAMO_GATEWAY["deploy/inference-gateway/epp/go.mod"],
    "deploy/inference-gateway/epp/cmd/epp/main.go": """
        package main

        import (
            "fmt"

            scorer "github.com/nvidia/dynamo/deploy/inference-gateway/pkg/plugins/dynamo_kv_scorer"
        )

        func main() { fmt.Println(scorer.Add(2, 40)) }
    """,
    "deploy/inference-gateway/epp/pkg/plugins/dynamo_kv_scorer/plugin.go": """
        package dynamo_kv_scorer

        /*
        #cgo CPPFLAGS: -I${SRCDIR}/include
        #cgo LDFLAGS: ${SRCDIR}/lib/libdynamo_llm_capi.a -ldl -lpthread -lm

        #include <stdint.h>
        int32_t dynamo_add(int32_t a, int32_t b);
        */
        import "C"

        func Add(a, b int) int { return int(C.dynamo_add(C.int32_t(a), C.int32_t(b))) }
    """,
    "deploy/inference-gateway/epp/pkg/plugins/dynamo_kv_scorer/lib/libdynamo_llm_capi.a": STALE,
    "polybuild.toml": '[targets.inference-gateway]\ncgo-stage = true\n',
}


@needs_cgo
def test_dynamo_gateway_builds_from_a_staged_copy_with_the_fresh_library(workspace):
    root = workspace(STAGED_GATEWAY)
    stale = root / "deploy/inference-gateway/epp/pkg/plugins/dynamo_kv_scorer/lib/libdynamo_llm_capi.a"
    proc = run_polybuild("build", "inference-gateway", cwd=root)
    assert proc.returncode == 0, proc.stderr
    out = subprocess.run([root / "dist/epp"], capture_output=True, text=True, env={"LD_LIBRARY_PATH": ""})
    assert out.stdout == "42\n", out
    assert stale.read_text() == STALE  # the tree is never written
    assert not (root / ".polybuild/tmp").exists()  # the staged copy went with the task
    # Reproducible: the same bytes from a checkout elsewhere (neither the copy's path nor the tree's is kept).
    elsewhere = shutil.copytree(root, root.parent / "elsewhere", ignore=shutil.ignore_patterns("dist", ".polybuild"))
    assert run_polybuild("build", "inference-gateway", "--no-cache", cwd=elsewhere).returncode == 0
    assert (elsewhere / "dist/epp").read_bytes() == (root / "dist/epp").read_bytes()
    # The library is a dependency output in the key: a change to the crate rebuilds the gateway.
    lib_rs = root / "lib/bindings/c/src/lib.rs"
    lib_rs.write_text(lib_rs.read_text().replace("a + b", "a * b"))
    assert run_polybuild("build", "inference-gateway", cwd=root).returncode == 0
    assert subprocess.run([root / "dist/epp"], capture_output=True, text=True).stdout == "80\n"


def test_cgo_stage_takes_only_a_srcdir_path_inside_the_module(workspace):
    plugin = "deploy/inference-gateway/epp/pkg/plugins/dynamo_kv_scorer/plugin.go"
    text = STAGED_GATEWAY[plugin].replace("${SRCDIR}/lib/", "${SRCDIR}/../../../../../lib/")
    root = workspace({**STAGED_GATEWAY, plugin: text})
    proc = run_polybuild("build", "inference-gateway", cwd=root)
    assert proc.returncode == 2, proc.stderr
    assert (f"{plugin}:5: go:inference-gateway links libdynamo_llm_capi.a at ${{SRCDIR}}/../../../../../lib/"
            "libdynamo_llm_capi.a: cgo-stage places the library only at a ${SRCDIR}-relative path inside the module"
            in proc.stderr), proc.stderr


@pytest.mark.skipif(not shutil.which("go"), reason="needs go")
def test_the_go_inventory_lists_packages_with_cgo_on_as_the_build_does(workspace):
    # dynamo's gateway: cmd/epp imports the plugin whose only file is cgo (it links the C API crate). The build turns
    # cgo on for a Go target linking a workspace staticlib; `go list` for the license inventory must too, or the
    # plugin has no Go files left and `deny`, `attributions` and `sbom` stop.
    main = ('package main\n\nimport _ "github.com/nvidia/dynamo/deploy/inference-gateway/pkg/plugins/'
            'dynamo_kv_scorer"\n\nfunc main() {}\n')
    root = workspace({**DYNAMO_GATEWAY, "deploy/inference-gateway/epp/cmd/epp/main.go": main})
    from polybuild.licenses import go

    found = go.packages(api.load(root).ws)
    assert [p.name for p in found] == ["github.com/nvidia/dynamo/deploy/inference-gateway"]


@pytest.mark.skipif(not shutil.which("cargo"), reason="needs cargo")
def test_a_bin_whose_required_features_are_off_is_not_expected(workspace):
    # dynamo-llm: `[[bin]] bench_local_transfer_v2` with `required-features = ["block-manager-bench"]`, off by
    # default. cargo skips it; the build then stopped on the missing file.
    root = workspace({
        "llm/Cargo.toml": """
            [package]
            name = "llm"
            version = "0.1.0"
            edition = "2021"
            [features]
            default = ["tools"]
            tools = ["openapi"]
            openapi = []
            bench = []
            [[bin]]
            name = "generate-openapi"
            path = "src/bin/openapi.rs"
            required-features = ["openapi"]
            [[bin]]
            name = "bench_transfer"
            path = "src/bin/bench.rs"
            required-features = ["bench"]
            [workspace]
        """,
        "llm/src/lib.rs": "",
        "llm/src/bin/openapi.rs": "fn main() {}\n",
        "llm/src/bin/bench.rs": "fn main() {}\n",
        "polybuild.toml": '[variants.bench]\nfeatures = ["bench"]\n',
    })
    proc = run_polybuild("build", "llm", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert (root / "dist/generate-openapi").is_file()  # enabled through default -> tools -> openapi
    assert not (root / "dist/bench_transfer").exists()
    proc = run_polybuild("build", "llm", "--variant", "bench", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert any(p.name == "bench_transfer" for p in (root / "dist").rglob("*"))


def test_an_affected_harness_is_not_built(workspace):
    root = workspace({k: v for k, v in HARNESSES.items() if not k.startswith(("bench/", "wasm/", "internal/"))}
                     | {"Cargo.toml": '[workspace]\nmembers = ["fuzz", "cli"]\nresolver = "2"\n'})
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=root, check=True)
    (root / "fuzz/fuzz_targets/parse.rs").write_text("fn main() { let _ = 1; }\n")
    proc = run_polybuild("build", "--affected", "HEAD", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert "note: skipped rust:cli-fuzz: a fuzz harness" in proc.stderr


# dynamo's layout: lib/bindings/python is a Cargo workspace of its own whose PyO3 crate path-depends on crates of
# the root workspace (dynamo-llm, which also has binaries).
MATURIN_BINDING = {
    "Cargo.toml": '[workspace]\nmembers = ["lib/llm"]\nresolver = "2"\n',
    "lib/llm/Cargo.toml": _crate("llm", '[[bin]]\nname = "llm-tool"\npath = "src/bin/tool.rs"\n'),
    "lib/llm/src/lib.rs": "pub fn answer() -> u32 { 42 }\n",
    "lib/llm/src/bin/tool.rs": 'fn main() { println!("{}", llm::answer()); }\n',
    "lib/bindings/python/Cargo.toml": _crate("binding", """
        [lib]
        name = "_core"
        crate-type = ["cdylib"]
        [dependencies]
        llm = { path = "../../llm" }
        pyo3 = { version = "0.30", features = ["extension-module", "abi3-py310"] }
        [workspace]
    """),
    "lib/bindings/python/src/lib.rs": """
        use pyo3::prelude::*;

        #[pymodule]
        mod _core {
            #[pymodule_export]
            const ANSWER: u32 = 0;

            #[pyo3::pyfunction]
            fn answer() -> u32 {
                llm::answer()
            }
        }
    """,
    "lib/bindings/python/pyproject.toml": """
        [build-system]
        requires = ["maturin>=1.8,<2"]
        build-backend = "maturin"
        [project]
        name = "binding"
        version = "0.1.0"
        requires-python = ">=3.10"
        [tool.maturin]
        module-name = "binding._core"
        python-source = "python"
    """,
    "lib/bindings/python/python/binding/__init__.py": "from binding._core import answer\n",
}


def _wheel_answer(root, tmp_path) -> int:
    """What the built wheel's extension returns: it is abi3, so the running interpreter can load it."""
    import sys
    import zipfile

    (wheel,) = (root / "dist").glob("binding-*.whl")
    unpacked = tmp_path / f"unpacked-{wheel.stat().st_mtime_ns}"
    zipfile.ZipFile(wheel).extractall(unpacked)
    out = subprocess.run([sys.executable, "-c", "import binding; print(binding.answer())"], cwd=unpacked,
                         capture_output=True, text=True, check=True).stdout
    return int(out)


@pytest.mark.skipif(not shutil.which("cargo"), reason="needs cargo")
def test_a_maturin_wheel_compiles_its_path_crates_without_building_their_bins(workspace, tmp_path):
    import json

    from polybuild.plan import build_plan
    from polybuild.support.platforms import host

    root = workspace(MATURIN_BINDING)
    for crate_dir in (root, root / "lib/bindings/python"):
        subprocess.run(["cargo", "generate-lockfile", "-q"], cwd=crate_dir, check=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=root, check=True)

    loaded = api.load(root)
    plan = build_plan(loaded.ws, loaded.dag, set(loaded.ws.targets), [None], [host()])
    assert {i: t.deps for i, t in plan.tasks.items()} == {"py:binding": set(), "rust:llm": set()}  # no waiting
    proc = run_polybuild("build", "py:binding", cwd=root)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((root / "dist/build-report.json").read_text())
    assert [(t["id"], t["builder"], t["status"]) for t in report["tasks"]] == [("py:binding", "maturin", "built")]
    assert not (root / "dist/llm-tool").exists()
    assert _wheel_answer(root, tmp_path) == 42

    (root / "lib/llm/src/lib.rs").write_text("pub fn answer() -> u32 { 43 }\n")
    proc = run_polybuild("affected", "--since", "HEAD", cwd=root)
    assert proc.stdout.split() == ["rust:llm", "py:binding"], proc.stderr
    proc = run_polybuild("build", "py:binding", cwd=root)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((root / "dist/build-report.json").read_text())
    assert [(t["id"], t["status"]) for t in report["tasks"]] == [("py:binding", "built")]
    assert _wheel_answer(root, tmp_path) == 43
