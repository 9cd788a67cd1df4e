"""The offline license inventory on real crates, distributions and Go modules: fetched once with cargo, pip, uv and
go, then read with every network route closed (offline flags, and a proxy that refuses connections)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import checkout_copy, copy_example, run_polybuild, write_tree
from polybuild import api
from polybuild.licenses import cargo, go, pypi
from polybuild.licenses.inventory import inventory, license_files
from polybuild.licenses.scan import scan
from polybuild.support.errors import UserError

CLOSED = "http://127.0.0.1:9"  # nothing listens there: any download attempt fails at once


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    close_network(monkeypatch)


def close_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """No network for the inventory: each tool's offline switch, and every proxy variable pointing nowhere."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, CLOSED)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CARGO_NET_OFFLINE", "true")
    monkeypatch.setenv("GOPROXY", "off")
    monkeypatch.setenv("GOFLAGS", "-mod=mod")
    monkeypatch.setenv("PIP_NO_INDEX", "1")


def run(argv: list[str | Path], cwd: Path, **env: str) -> str:
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "GOTOOLCHAIN": "local", **env}, timeout=600)
    assert proc.returncode == 0, f"{argv} failed:\n{proc.stderr}"
    return proc.stdout


def by_name(packages, ecosystem: str | None = None) -> dict:
    return {p.name: p for p in packages if ecosystem in (None, p.ecosystem)}


# --- Rust ---------------------------------------------------------------------------------------------------------

RUST = {
    "polybuild.toml": 'exclude = ["third_party"]\n',
    "Cargo.toml": """
        [workspace]
        members = ["crates/core", "crates/app"]
        exclude = ["third_party"]
        resolver = "2"
        [patch.crates-io]
        cfg-if = { path = "third_party/cfg-if" }
    """,
    "crates/core/Cargo.toml": """
        [package]
        name = "core-lib"
        version = "0.1.0"
        edition = "2021"
        license = "MIT"
        [dependencies]
        itoa = "1"
        aho-corasick = "1"
        windows-link = "0.2"
        smallvec = { version = "1", optional = true }
        [build-dependencies]
        cfg-if = "1"
        [dev-dependencies]
        ryu = "1"
        [features]
        small = ["dep:smallvec"]
    """,
    "crates/core/src/lib.rs": "",
    "crates/app/Cargo.toml": """
        [package]
        name = "app"
        version = "0.1.0"
        edition = "2021"
        [dependencies]
        core-lib = { path = "../core" }
    """,
    "crates/app/src/main.rs": "fn main() {}\n",
    # A patched fork kept in the repository but outside the Cargo and polybuild workspaces: a third-party path crate.
    "third_party/cfg-if/Cargo.toml": """
        [package]
        name = "cfg-if"
        version = "1.0.99"
        edition = "2021"
        license-file = "legal/TERMS.txt"
    """,
    "third_party/cfg-if/src/lib.rs": "",
    "third_party/cfg-if/legal/TERMS.txt": "Forked terms: use it kindly.\n",
    "third_party/cfg-if/NOTICE": "This product includes software developed elsewhere.\n",
}


@pytest.fixture(scope="module")
def rust_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_tree(tmp_path_factory.mktemp("cargo") / "ws", RUST)
    run(["cargo", "generate-lockfile"], root)
    run(["cargo", "fetch", "--locked"], root)
    return root


def test_cargo_crates_with_license_files_and_shortest_chains(rust_ws: Path, offline: None):
    found = inventory(api.load(rust_ws).ws)
    crates = by_name(found.packages, "cargo")
    assert set(crates) == {"app", "core-lib", "itoa", "aho-corasick", "memchr", "windows-link", "smallvec",
                           "cfg-if"}  # ryu is a dev-dependency: it does not ship
    itoa = crates["itoa"]
    assert itoa.declared == "MIT OR Apache-2.0" and itoa.source == "crates.io"
    assert itoa.url == f"https://crates.io/crates/itoa/{itoa.version}" and itoa.purl == f"pkg:cargo/itoa@{itoa.version}"
    assert [(f.path, f.kind) for f in itoa.files] == [("LICENSE-APACHE", "license"), ("LICENSE-MIT", "license")]
    assert "Permission is hereby granted" in itoa.files[1].text
    assert itoa.dependents == [("rust:app", "rust:core-lib"), ("rust:core-lib",)]
    aho = crates["aho-corasick"]
    assert [f.path for f in aho.files] == ["COPYING", "LICENSE-MIT", "UNLICENSE"]
    assert crates["memchr"].dependents == [("rust:app", "rust:core-lib", f"aho-corasick@{aho.version}"),
                                           ("rust:core-lib", f"aho-corasick@{aho.version}")]
    assert [f.path for f in crates["windows-link"].files] == ["license-apache-2.0", "license-mit"]
    assert crates["cfg-if"].dependents == [("rust:app", "rust:core-lib"), ("rust:core-lib",)]  # build-dependency


def test_cargo_patched_path_crate_and_own_crates(rust_ws: Path, offline: None):
    crates = by_name(cargo.packages(api.load(rust_ws).ws))
    forked = crates["cfg-if"]
    assert (forked.version, forked.source, forked.url, forked.declared) == ("1.0.99", "path", None, None)
    assert not forked.workspace
    assert [(f.path, f.kind) for f in forked.files] == [("NOTICE", "notice"), ("legal/TERMS.txt", "license")]
    own = crates["core-lib"]
    assert own.workspace and own.declared == "MIT" and own.dependents == [("rust:app",)]


def test_cargo_features_follow_all_features(rust_ws: Path, offline: None):
    ws = api.load(rust_ws).ws
    assert "smallvec" in by_name(cargo.packages(ws, all_features=True))
    assert "smallvec" not in by_name(cargo.packages(ws, all_features=False))


def test_cargo_by_target(rust_ws: Path, offline: None):
    found = inventory(api.load(rust_ws).ws)
    keys = {p.name: p.key for p in found.packages}
    assert keys["itoa"] in found.by_target["rust:app"] and keys["itoa"] in found.by_target["rust:core-lib"]
    assert keys["core-lib"] in found.by_target["rust:app"]


def test_an_excluded_rust_target_leaves_out_what_only_it_ships(rust_ws: Path, offline: None):
    config = rust_ws / "polybuild.toml"
    try:
        config.write_text(RUST["polybuild.toml"] + '[licenses]\nexclude-targets = ["rust:app"]\n')
        crates = by_name(inventory(api.load(rust_ws).ws).packages, "cargo")
        assert "app" not in crates and crates["core-lib"].dependents == []  # core-lib is a target of its own
        assert crates["itoa"].dependents == [("rust:core-lib",)]
        config.write_text(RUST["polybuild.toml"] + '[licenses]\nexclude-targets = ["core-lib"]\n')
        crates = by_name(inventory(api.load(rust_ws).ws).packages, "cargo")
        assert crates["core-lib"].dependents == [("rust:app",)]  # app ships it: it stays
        assert crates["itoa"].dependents == [("rust:app", "rust:core-lib")]
    finally:
        config.write_text(RUST["polybuild.toml"])


def test_cargo_metadata_runs_once_per_manifest_and_flags_in_a_run(rust_ws: Path, tmp_path: Path, offline: None,
                                                                   monkeypatch: pytest.MonkeyPatch):
    """Discovery's `--no-deps` answer and the inventory's resolve graph are each read once per run, however many
    scans ask (deny, attributions and sbom of one release run each scan)."""
    from polybuild.support import toolchains

    calls = tmp_path / "calls"
    shim = tmp_path / "bin" / "cargo"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\necho "$*" >> "{calls}"\nexec "{shutil.which("cargo")}" "$@"\n')
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim.parent}{os.pathsep}{os.environ['PATH']}")
    toolchains.find.cache_clear()
    try:
        shutil.rmtree(rust_ws / ".polybuild", ignore_errors=True)  # no remembered discovery: cargo is asked
        ws = api.load(rust_ws).ws
        first = inventory(ws)
        assert inventory(ws).packages == first.packages and cargo.packages(ws)
    finally:
        toolchains.find.cache_clear()
    metadata = [line for line in calls.read_text().splitlines() if line.startswith("metadata")]
    assert sum("--no-deps" in line for line in metadata) == 1
    assert sum("--no-deps" not in line for line in metadata) == 1, metadata


def test_cargo_stale_lock_names_the_manifest_and_the_fix(workspace, offline: None):
    root = workspace({
        "polybuild.toml": "",
        "Cargo.toml": '[package]\nname = "solo"\nversion = "0.1.0"\nedition = "2021"\n[dependencies]\nitoa = "1"\n',
        "Cargo.lock": 'version = 4\n\n[[package]]\nname = "solo"\nversion = "0.1.0"\n',
        "src/lib.rs": "",
    })
    with pytest.raises(UserError) as exc:
        inventory(api.load(root).ws)
    assert str(root / "Cargo.toml") in exc.value.message and "--locked" in exc.value.message
    assert "cargo update -w" in exc.value.hint


def test_cargo_missing_downloads_say_fetch(rust_ws: Path, tmp_path: Path, offline: None,
                                           monkeypatch: pytest.MonkeyPatch):
    ws = api.load(rust_ws).ws
    monkeypatch.setenv("CARGO_HOME", str(tmp_path / "empty-cargo-home"))
    with pytest.raises(UserError) as exc:
        cargo.packages(ws)
    assert "cargo fetch --locked" in exc.value.hint


# --- Python -------------------------------------------------------------------------------------------------------
# Evidence comes from the distributions the lock (or a uv resolution) names, fetched from PyPI once per module into
# a module-wide cache (`cache-dir` in polybuild.toml), then read with the network closed.

MIT = """MIT License

Copyright (c) 2026 The app authors

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated
documentation files (the "Software"), to deal in the Software without restriction, including without limitation the
rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the Software, and to permit
persons to whom the Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or substantial portions of the
Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE
WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR
COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""
APP = {
    "LICENSE": MIT,
    "app/LICENSE": "Apache License\nVersion 2.0, January 2004\n",
    "app/pyproject.toml": """
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"
        [project]
        name = "app"
        version = "1.0.0"
        license = "Apache-2.0"
        requires-python = ">=3.9"
        dependencies = ["attrs==25.3.0", "jinja2==3.1.6", "tool", "colorama; sys_platform == 'win32'"]
        [project.optional-dependencies]
        server = ["traitlets==5.14.3"]
        dates = ["python-dateutil==2.9.0.post0"]
        all = ["app[server,dates]"]
        [tool.uv]
        constraint-dependencies = ["markupsafe==3.0.2", "six==1.17.0"]
        [tool.uv.sources]
        tool = { path = "tool" }
    """,
    # A second workspace package without a license of its own: it is under the repository's LICENSE.
    "app/tool/pyproject.toml": """
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"
        [project]
        name = "tool"
        version = "1.0.0"
        requires-python = ">=3.9"
        dependencies = ["idna==3.7", "six==1.17.0"]
    """,
}


def _uv() -> str:
    from polybuild.support.toolchains import find

    uv = find("uv")
    assert uv, "the test environment has uv"
    return uv


def py_workspace(root: Path, cache: Path, files: dict[str, str] | None = None, lock: bool = True) -> Path:
    root = write_tree(root, {"polybuild.toml": f'cache-dir = "{cache}"\n', **(files or APP)})
    run(["git", "init", "-q"], root)
    if lock:
        run([_uv(), "lock", "-q"], root / "app")
    return root


@pytest.fixture(scope="module")
def py_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """APP locked by the real `uv lock`, and a polybuild cache holding its distributions, fetched once from PyPI."""
    cache = tmp_path_factory.mktemp("py-cache")
    root = py_workspace(tmp_path_factory.mktemp("py") / "ws", cache)
    fetched = run_polybuild("deny", "--fetch", cwd=root)
    assert fetched.returncode == 1 and "license not allowed" in fetched.stderr, fetched.stderr  # no policy yet
    assert len(list((cache / "licenses" / "pypi" / "dists").rglob("*.whl"))) == 7
    return root, cache


@pytest.fixture
def py_cache(py_template: tuple[Path, Path]) -> Path:
    return py_template[1]


def copy_ws(template: tuple[Path, Path], dest: Path, cache: Path | None = None) -> Path:
    """A private copy of the locked APP workspace (its cache: the shared one, or `cache`)."""
    root = Path(shutil.copytree(template[0], dest, symlinks=True))
    (root / "polybuild.toml").write_text(f'cache-dir = "{cache or template[1]}"\n')
    return root


@pytest.fixture
def py_ws(tmp_path: Path, py_template: tuple[Path, Path]) -> Path:
    return copy_ws(py_template, tmp_path / "ws")


def test_python_evidence_comes_from_the_locked_distributions(py_ws: Path, offline: None):
    found = inventory(api.load(py_ws).ws)
    dists = by_name(found.packages, "pypi")
    assert set(dists) == {"app", "tool", "attrs", "jinja2", "markupsafe", "traitlets", "python-dateutil", "six",
                          "idna"}  # colorama is Windows-only
    attrs = dists["attrs"]  # PEP 639, from the wheel
    assert (attrs.declared, attrs.legacy, attrs.version, attrs.source) == ("MIT", None, "25.3.0", "pypi")
    assert attrs.url == "https://pypi.org/project/attrs/25.3.0/" and attrs.purl == "pkg:pypi/attrs@25.3.0"
    assert [(f.path, f.kind) for f in attrs.files] == [("attrs-25.3.0.dist-info/licenses/LICENSE", "license")]
    jinja = dists["jinja2"]  # only a classifier
    assert (jinja.declared, jinja.legacy) == (None, None)
    assert jinja.classifiers == ("License :: OSI Approved :: BSD License",)
    traitlets = dists["traitlets"]  # a whole license pasted into `License:`
    assert traitlets.legacy.startswith("BSD 3-Clause License\n") and "Redistribution and use" in traitlets.legacy
    assert dists["markupsafe"].dependents == [("py:app", "jinja2@3.1.6")]
    assert dists["app"].workspace and dists["app"].declared == "Apache-2.0"
    assert [f.path for f in dists["app"].files] == ["LICENSE"]
    # uv flattens `all = ["app[server,dates]"]` into the packages those extras need
    dateutil = "python-dateutil@2.9.0.post0"
    assert dists["six"].dependents == [("py:app", "py:tool"), ("py:app[all]", dateutil),
                                       ("py:app[dates]", dateutil), ("py:tool",)]
    assert dists["traitlets"].dependents == [("py:app[all]",), ("py:app[server]",)]


def test_an_installed_version_other_than_the_locked_one_changes_nothing(py_ws: Path, py_cache: Path,
                                                                       monkeypatch: pytest.MonkeyPatch):
    """idna 3.7 is locked; the interpreter running polybuild has another idna installed. The installed one used to
    be the only evidence, so the locked idna was reported as unlicensed."""
    import importlib.metadata

    assert importlib.metadata.version("idna") != "3.7"
    (py_ws / "polybuild.toml").write_text(f'cache-dir = "{py_cache}"\n[python]\ninterpreter = "{sys.executable}"\n')
    close_network(monkeypatch)
    result = scan(api.load(py_ws).ws)
    idna = next(r for r in result.resolved if r.package.name == "idna")
    assert (idna.package.version, idna.expression, idna.how) == ("3.7", "BSD-3-Clause", "detected")


def test_a_distribution_not_fetched_is_an_error_naming_it_and_the_fetch_command(
        tmp_path: Path, py_template: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch):
    root = copy_ws(py_template, tmp_path / "ws", tmp_path / "empty-cache")
    close_network(monkeypatch)
    with pytest.raises(UserError) as exc:
        pypi.packages(api.load(root).ws)
    assert "7 locked Python distributions are not in polybuild's cache" in exc.value.message
    assert "\n  attrs 25.3.0\n" in exc.value.message and "unlicensed" not in exc.value.message
    assert "polybuild deny --fetch" in exc.value.hint
    proc = run_polybuild("sbom", cwd=root)  # the command line says the same, without a traceback
    assert proc.returncode == 2 and "polybuild deny --fetch" in proc.stderr and "Traceback" not in proc.stderr


def test_a_download_whose_hash_differs_from_the_lock_is_not_kept(tmp_path: Path, py_template: tuple[Path, Path]):
    root = copy_ws(py_template, tmp_path / "ws", tmp_path / "cache")
    lock = root / "app" / "uv.lock"
    text = lock.read_text()
    wheel_hash = re.search(r'attrs-25\.3\.0-py3-none-any\.whl", hash = "sha256:([0-9a-f]{64})"', text).group(1)
    lock.write_text(text.replace(wheel_hash, "0" * 64))
    with pytest.raises(UserError) as exc:
        pypi.packages(api.load(root).ws, fetch=True)
    assert f"attrs-25.3.0-py3-none-any.whl: sha256 {wheel_hash} does not match the lock's {'0' * 64}" in \
        exc.value.message
    assert not list((tmp_path / "cache").rglob("attrs-*")), "nothing unverified is kept"
    assert list((tmp_path / "cache").rglob("jinja2-3.1.6-py3-none-any.whl")), "the other downloads are kept"


def test_the_universal_wheel_else_the_target_platforms_wheel_is_read(py_ws: Path):
    from polybuild.licenses.distributions import choose
    from polybuild.support.platforms import Platform
    from polybuild.workspace import pythonlock as wheels

    lock = wheels.read(py_ws / "app" / "uv.lock", "uv.lock")
    linux = wheels.Target(Platform.parse("linux/arm64"), (3, 12))
    (markupsafe,) = lock.by_name("markupsafe")
    assert choose(markupsafe, [linux]).filename == \
        "MarkupSafe-3.0.2-cp312-cp312-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"
    (attrs,) = lock.by_name("attrs")
    assert choose(attrs, [linux]).filename == "attrs-25.3.0-py3-none-any.whl"


SIDE_BY_SIDE = {
    "LICENSE": APP["LICENSE"],
    "app/pyproject.toml": """
        [project]
        name = "app"
        version = "1.0.0"
        license = "MIT"
        dependencies = ["six==1.17.0"]
        [project.optional-dependencies]
        old = ["idna==3.6"]
        new = ["idna==3.7"]
    """,
}


def test_without_a_lock_each_extra_is_resolved_and_scanned_on_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The extras cannot be installed together (two idna versions): each is resolved by uv on its own."""
    root = py_workspace(tmp_path / "ws", tmp_path / "cache", SIDE_BY_SIDE, lock=False)
    with pytest.raises(UserError) as exc:
        pypi.packages(api.load(root).ws)  # resolving needs the index: only with --fetch
    assert "py:app, py:app[new], py:app[old] are not resolved yet" in exc.value.message
    assert "polybuild deny --fetch" in exc.value.hint
    pypi.packages(api.load(root).ws, fetch=True)
    assert len(list((tmp_path / "cache" / "licenses" / "pypi" / "resolved").glob("pylock.*.toml"))) == 3
    close_network(monkeypatch)
    found = {(p.name, p.version): p for p in pypi.packages(api.load(root).ws)}
    assert set(found) == {("app", "1.0.0"), ("six", "1.17.0"), ("idna", "3.6"), ("idna", "3.7")}
    assert found["idna", "3.6"].dependents == [("py:app[old]",)]
    assert found["idna", "3.7"].dependents == [("py:app[new]",)]
    assert found["six", "1.17.0"].dependents == [("py:app",), ("py:app[new]",), ("py:app[old]",)]
    assert found["six", "1.17.0"].legacy == "MIT"


def test_a_failed_resolution_keeps_uvs_own_summary(tmp_path: Path):
    """uv names what failed at the top and a build's output follows (dynamo's trtllm extra: a placeholder sdist
    that downloads from NVIDIA's index): the error keeps that first line, not only the output's tail."""
    backend = ("import sys\n\ndef _fail(*args, **kwargs):\n    for i in range(40):\n"
               "        print(f'placeholder output line {i}', file=sys.stderr)\n    raise SystemExit(1)\n\n"
               "get_requires_for_build_wheel = prepare_metadata_for_build_wheel = build_wheel = _fail\n")
    placeholder = write_tree(tmp_path / "placeholder", {
        "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
                          '[project]\nname = "placeholder"\ndynamic = ["version"]\n',
        "backend.py": backend})
    files = {"app/pyproject.toml": f'[project]\nname = "app"\nversion = "1.0.0"\nlicense = "MIT"\n'
                                   f'dependencies = ["placeholder @ {placeholder.as_uri()}"]\n'}
    root = py_workspace(tmp_path / "ws", tmp_path / "cache", files, lock=False)
    with pytest.raises(UserError) as exc:
        pypi.packages(api.load(root).ws, fetch=True)
    assert "py:app: uv cannot resolve its requirements" in exc.value.message
    assert "Failed to build `placeholder @ file://" in exc.value.message, exc.value.message
    assert "placeholder output line 39" in exc.value.message
    assert len(exc.value.message.splitlines()) < 20


def test_an_excluded_extra_leaves_out_only_what_it_alone_pulls_in(py_ws: Path, py_cache: Path, offline: None):
    """dynamo's `trtllm` extra needs NVIDIA's index, so its wheels cannot be fetched: `exclude-extras` leaves it out
    of the scan, and every license command says so."""
    config = f'cache-dir = "{py_cache}"\n[licenses]\nexclude-extras = ["app[dates]", "all"]\n'
    (py_ws / "polybuild.toml").write_text(config)
    dists = by_name(inventory(api.load(py_ws).ws).packages, "pypi")
    assert "python-dateutil" not in dists  # only app[dates] and app[all] pull it in
    assert dists["six"].dependents == [("py:app", "py:tool"), ("py:tool",)]  # tool needs it too: it stays
    assert dists["traitlets"].dependents == [("py:app[server]",)]
    denied = run_polybuild("deny", cwd=py_ws)
    note = ("note: the license scan leaves out py:app[all], py:app[dates] ([licenses] exclude-targets / "
            "exclude-extras): deny, attributions and the SBOM do not cover what only they ship")
    assert note in denied.stderr.splitlines(), denied.stderr
    assert note in run_polybuild("sbom", cwd=py_ws).stderr  # a cached scan says it as well
    written = run_polybuild("attributions", "--dir", "attributions", cwd=py_ws)
    summary = (py_ws / "attributions" / "ATTRIBUTIONS.md").read_text()
    assert written.returncode == 0 and "**Not covered:** `py:app[all]`, `py:app[dates]`, left out of the license " \
        "scan" in summary  # the file a release ships says it, not only the terminal

    (py_ws / "polybuild.toml").write_text(f'cache-dir = "{py_cache}"\n[licenses]\nexclude-targets = ["tool"]\n')
    dists = by_name(inventory(api.load(py_ws).ws).packages, "pypi")
    assert dists["idna"].dependents == [("py:app", "py:tool")]  # app ships tool: it stays, reached from app
    (py_ws / "polybuild.toml").write_text(f'cache-dir = "{py_cache}"\n[licenses]\nexclude-targets = ["app"]\n')
    dists = by_name(inventory(api.load(py_ws).ws).packages, "pypi")
    assert set(dists) == {"tool", "idna", "six"}

    (py_ws / "polybuild.toml").write_text(f'cache-dir = "{py_cache}"\n[licenses]\nexclude-extras = ["dev"]\n')
    typo = run_polybuild("deny", cwd=py_ws)
    assert typo.returncode == 2 and "polybuild.toml:3: [licenses] exclude-extras: no Python project of the " \
        "workspace declares the extra 'dev'" in typo.stderr and "declared extras: all, dates, server" in typo.stderr


def test_target_narrows_every_report_to_what_the_target_ships(py_ws: Path, offline: None):
    from polybuild.licenses.scan import attribution_files, sbom

    result = scan(api.load(py_ws).ws)
    tool = result.ws.resolve("py:tool")
    components = {c["name"] for c in sbom(result, "cyclonedx", tool)["components"]}
    assert components == {"py:tool", "idna", "six"}  # not py:app, nor what app alone pulls in
    _, shipped = result.subset(tool)
    assert {r.package.name: r.package.dependents for r in shipped} == {"idna": [("py:tool",)],
                                                                       "six": [("py:tool",)]}
    assert "attrs" not in attribution_files(result, tool)["ATTRIBUTIONS-Python.md"]


def test_workspace_packages_are_private_and_keep_their_own_license(py_ws: Path, offline: None):
    (py_ws / "deny.toml").write_text('[licenses]\nallow = ["MIT", "BSD-3-Clause", "Apache-2.0"]\n')
    result = scan(api.load(py_ws).ws)
    own = {r.package.name: r for r in result.resolved if r.package.workspace}
    assert own["app"].expression == "Apache-2.0"
    assert own["tool"].expression == "MIT" and [f.path for f in own["tool"].package.files] == ["LICENSE"]
    (py_ws / "deny.toml").write_text('[licenses]\nallow = ["BSD-3-Clause"]\n')
    named = {v.package.name for v in scan(api.load(py_ws).ws).violations() if v.package}
    assert "attrs" in named and not {"app", "tool"} & named


def test_the_second_command_reads_the_scan_from_the_cache(py_ws: Path, py_cache: Path, tmp_path: Path,
                                                          offline: None):
    """deny, then attributions and sbom: one scan. Proven by taking the distributions away in between."""
    assert run_polybuild("deny", cwd=py_ws).returncode in (0, 1)
    scans = list((py_cache / "licenses" / "scans").glob("*.json"))
    assert scans
    moved = tmp_path / "dists"
    (py_cache / "licenses" / "pypi" / "dists").rename(moved)
    try:
        assert run_polybuild("attributions", "--dir", str(tmp_path / "out"), cwd=py_ws).returncode == 0
        assert run_polybuild("sbom", cwd=py_ws).returncode == 0
        (py_ws / "app" / "uv.lock").write_text((py_ws / "app" / "uv.lock").read_text() + "\n")
        rescan = run_polybuild("sbom", cwd=py_ws)  # a changed lock is a new scan, which needs the distributions
        assert rescan.returncode == 2 and "not in polybuild's cache" in rescan.stderr
    finally:
        moved.rename(py_cache / "licenses" / "pypi" / "dists")


# --- Go -----------------------------------------------------------------------------------------------------------

GO = {
    "polybuild.toml": "",
    "go/lib/go.mod": "module example.com/lib\n\ngo 1.22\n",
    "go/lib/lib.go": "package lib\n\nfunc Name() string { return \"lib\" }\n",
    "go/svc/go.mod": """
        module example.com/svc

        go 1.22

        replace example.com/lib => ../lib
    """,
    "go/svc/main.go": """
        package main

        import (
            "fmt"

            "example.com/lib"
            "github.com/google/uuid"
            "github.com/josharian/intern"
            "gopkg.in/yaml.v3"
        )

        func main() {
            out, _ := yaml.Marshal(map[string]string{"id": uuid.NewString()})
            fmt.Println(intern.String(string(out)), lib.Name())
        }
    """,
    "go/svc/main_test.go": """
        package main

        import (
            "testing"

            "github.com/pmezard/go-difflib/difflib"
        )

        func TestDiff(t *testing.T) { _ = difflib.SplitLines("a") }
    """,
    "go/tool/go.mod": """
        module example.com/tool

        go 1.22

        require github.com/google/uuid v1.6.0

        replace github.com/google/uuid => github.com/google/uuid v1.5.0
    """,
    "go/tool/main.go": """
        package main

        import "github.com/google/uuid"

        func main() { println(uuid.NewString()) }
    """,
    "go/vend/go.mod": "module example.com/vend\n\ngo 1.22\n",
    "go/vend/main.go": """
        package main

        import "github.com/pmezard/go-difflib/difflib"

        func main() { println(len(difflib.SplitLines("a\\nb"))) }
    """,
}


@pytest.fixture(scope="module")
def go_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("go")
    root = write_tree(base / "ws", GO)
    for module in ("svc", "tool", "vend"):
        run(["go", "mod", "tidy"], root / "go" / module, GOFLAGS="-mod=mod")
        run(["go", "mod", "download"], root / "go" / module, GOFLAGS="-mod=mod")
    run(["go", "mod", "vendor"], root / "go" / "vend")
    vendored = root / "go/vend/vendor/github.com/pmezard/go-difflib/LICENSE"
    vendored.write_text(vendored.read_text() + "\nVENDORED COPY\n")
    run(["go", "build", "-o", base / "bin" / "svc", "."], root / "go" / "svc", GOPROXY="off", GOFLAGS="-mod=mod")
    run(["go", "build", "-o", base / "bin" / "tool", "."], root / "go" / "tool", GOPROXY="off", GOFLAGS="-mod=mod")
    return root


def test_go_modules_of_compiled_packages(go_ws: Path, offline: None):
    found = inventory(api.load(go_ws).ws)
    modules = {(p.name, p.version): p for p in found.packages if p.ecosystem == "golang"}
    uuid = modules[("github.com/google/uuid", "v1.6.0")]
    assert (uuid.declared, uuid.source, uuid.url) == (None, "proxy.golang.org",
                                                      "https://pkg.go.dev/github.com/google/uuid@v1.6.0")
    assert uuid.purl == "pkg:golang/github.com/google/uuid@v1.6.0"
    assert [(f.path, f.kind) for f in uuid.files] == [("LICENSE", "license")] and uuid.dependents == [("go:svc",)]
    intern = modules[("github.com/josharian/intern", "v1.0.0")]
    assert [(f.path, f.kind) for f in intern.files] == [("license.md", "license")]
    yaml = modules[("gopkg.in/yaml.v3", "v3.0.1")]
    assert [(f.path, f.kind) for f in yaml.files] == [("LICENSE", "license"), ("NOTICE", "notice")]
    svc = found.by_target["go:svc"]
    assert not any(name == "github.com/pmezard/go-difflib" for _, name, _ in svc)  # only its tests import it


def test_go_replacements_are_attributed_to_what_replaces(go_ws: Path, offline: None):
    found = go.packages(api.load(go_ws).ws)
    modules = {(p.name, p.version): p for p in found}
    replaced = modules[("github.com/google/uuid", "v1.5.0")]
    assert (replaced.source, replaced.dependents) == ("replace:github.com/google/uuid", [("go:tool",)])
    assert replaced.url == "https://pkg.go.dev/github.com/google/uuid@v1.5.0" and replaced.files
    lib = next(p for p in found if p.name == "example.com/lib")
    assert lib.workspace and lib.source == "path" and lib.dependents == [("go:svc",)]


def test_go_vendored_modules_are_read_from_vendor(go_ws: Path, offline: None):
    found = go.packages(api.load(go_ws).ws)
    difflib = next(p for p in found if p.name == "github.com/pmezard/go-difflib")
    assert difflib.dependents == [("go:vend",)] and "VENDORED COPY" in difflib.files[0].text


def test_go_binaries_cross_check_the_inventory(go_ws: Path, offline: None):
    found = go.packages(api.load(go_ws).ws)
    own = {"example.com/lib", "example.com/svc", "example.com/tool"}
    bin_dir = go_ws.parent / "bin"
    assert ("github.com/google/uuid", "v1.6.0") in go.binary_modules(bin_dir / "svc")
    assert ("github.com/google/uuid", "v1.5.0") in go.binary_modules(bin_dir / "tool")
    go.check_binary(bin_dir / "svc", found, own)
    go.check_binary(bin_dir / "tool", found, own)
    without_yaml = [p for p in found if p.name != "gopkg.in/yaml.v3"]
    with pytest.raises(UserError, match=r"gopkg.in/yaml.v3@v3.0.1"):
        go.check_binary(bin_dir / "svc", without_yaml, own)


def test_go_missing_module_cache_says_download(go_ws: Path, tmp_path: Path, offline: None,
                                               monkeypatch: pytest.MonkeyPatch):
    ws = api.load(go_ws).ws
    monkeypatch.setenv("GOMODCACHE", str(tmp_path / "empty-modcache"))
    with pytest.raises(UserError) as exc:
        go.module_packages(ws.targets["go:svc"], ws, {})
    assert "go/svc/go.mod" in exc.value.message and "go mod download" in exc.value.hint


# --- The demo and this repository -------------------------------------------------------------------------------

def _counts(found) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in found.packages:
        if not p.workspace:
            counts[p.ecosystem] = counts.get(p.ecosystem, 0) + 1
    return counts


def test_demo_inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = copy_example("serving", tmp_path / "serving")
    inventory(api.load(root).ws, fetch=True)  # cargo fetch, and uv resolves the pyprojects (there is no uv.lock)
    close_network(monkeypatch)
    ws = api.load(root).ws
    start = time.monotonic()
    found = inventory(ws)
    print(f"\ndemo inventory: {_counts(found)} in {time.monotonic() - start:.2f}s")
    crates, dists = by_name(found.packages, "cargo"), by_name(found.packages, "pypi")
    assert crates["pyo3"].dependents == [("py:serving-runtime",)]
    assert dists["aiohttp"].dependents == [("py:serving[all]", "py:serving[server]"), ("py:serving[server]",)]
    assert found.by_target["py:serving"] | found.by_target["py:serving-runtime"] <= found.by_target["image:frontend"]
    assert all(p.declared or p.files for p in found.packages if p.ecosystem == "cargo" and not p.workspace)


def test_self_inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = checkout_copy(tmp_path / "polybuild")
    inventory(api.load(root).ws, fetch=True)  # cargo fetch, go mod download, the uv.lock's distributions
    close_network(monkeypatch)
    start = time.monotonic()
    found = inventory(api.load(root).ws)
    print(f"\nself inventory: {_counts(found)} in {time.monotonic() - start:.2f}s")
    dists = by_name(found.packages, "pypi")
    assert dists["maturin"].dependents == [("py:polybuild[builders]",)]
    assert dists["polybuild-core"].workspace and ("py:polybuild[native]",) in dists["polybuild-core"].dependents
    assert "github.com/google/go-containerregistry" in by_name(found.packages, "golang")
    third_party = [p for p in found.packages if not p.workspace]
    assert all(p.declared for p in third_party if p.ecosystem == "cargo")  # some crates ship no text (r-efi)
    assert all(p.files for p in third_party if p.ecosystem == "golang")


# --- License files ------------------------------------------------------------------------------------------------

def test_license_files_by_name_any_case_and_in_a_licenses_directory(tmp_path: Path):
    pkg = write_tree(tmp_path / "pkg", {
        "License.md": "MIT License\n",
        "LICENSES/Apache-2.0.txt": "Apache License\n",
        "COPYRIGHT": "Copyright the authors\n",
        "PATENTS": "Additional IP rights grant\n",
        "unlicense.txt": "This is free and unencumbered software\n",
        "license.go": "package license\n",  # code about licenses, not a license
        "README.md": "readme\n",
        "sub/LICENSE": "not at the top\n",
    })
    (pkg / "LICENSE-BLOB").write_bytes(b"\0\1\2")
    (pkg / "LICENSE-LINK").symlink_to(pkg / "License.md")
    found = [(f.path, f.kind) for f in license_files(pkg, ["sub/LICENSE"])]
    assert found == [("COPYRIGHT", "notice"), ("LICENSE-LINK", "license"), ("LICENSES/Apache-2.0.txt", "license"),
                     ("License.md", "license"), ("PATENTS", "notice"), ("sub/LICENSE", "license"),
                     ("unlicense.txt", "license")]


def test_a_choice_statement_keeps_the_list_it_introduces():
    """maturin's description says "Licensed under either of:" and lists the licenses in the next paragraph: the
    notice must carry the list, or it says nothing (it was kept alone in ATTRIBUTIONS-Python.md)."""
    from polybuild.licenses.pypi import _choice_statement

    metadata = ("Metadata-Version: 2.4\nName: maturin\n\n# maturin\n\nBuild and publish crates.\n\n## License\n\n"
                "Licensed under either of:\n\n * Apache License, Version 2.0, ([LICENSE-APACHE](license-apache))\n"
                " * MIT license ([LICENSE-MIT](license-mit))\n\nat your option.\n")
    assert _choice_statement(metadata) == (
        "Licensed under either of:\n* Apache License, Version 2.0, ([LICENSE-APACHE](license-apache)) "
        "* MIT license ([LICENSE-MIT](license-mit))")
