"""Go builds on a REAPI executor (`[remote] execute = ["go"]`), against the real buildbox-casd running actions with
buildbox-run in bubblewrap (tests/reapi_server.py) and the real Go toolchain.

The module depends on third-party modules (fatih/color and what it needs), which the worker gets from the action's
module proxy, never from the network. A `go` on PATH that records its arguments and calls the real one shows what
ran on this machine: the key's `go version` and `go mod download`, never `go build` of a remotely built module.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import write_tree
from reapi_server import Casd
from test_cache import statuses
from test_reapi import polybuild, store_is_sound, warnings

pytest.importorskip("grpc", reason="the REAPI client needs polybuild[remote] (grpcio, protobuf)")

GO_MOD = """module example.com/hello

go 1.22

require github.com/fatih/color v1.18.0

require (
\tgithub.com/mattn/go-colorable v0.1.13 // indirect
\tgithub.com/mattn/go-isatty v0.0.20 // indirect
\tgolang.org/x/sys v0.25.0 // indirect
)
"""
GO_SUM = """github.com/fatih/color v1.18.0 h1:S8gINlzdQ840/4pfAwic/ZE0djQEH3wM94VfqLTZcOM=
github.com/fatih/color v1.18.0/go.mod h1:4FelSpRwEGDpQ12mAdzqdOukCy4u8WUtOY6lkT/6HfU=
github.com/mattn/go-colorable v0.1.13 h1:fFA4WZxdEF4tXPZVKMLwD8oUnCTTo08duU7wxecdEvA=
github.com/mattn/go-colorable v0.1.13/go.mod h1:7S9/ev0klgBDR4GtXTXX8a3vIGJpMovkB8vQcUbaXHg=
github.com/mattn/go-isatty v0.0.16/go.mod h1:kYGgaQfpe5nmfYZH+SKPsOc2e4SrIfOl2e/yFXSvRLM=
github.com/mattn/go-isatty v0.0.20 h1:xfD0iDuEKnDkl03q4limB+vH+GxLEtL/jb4xVJSWWEY=
github.com/mattn/go-isatty v0.0.20/go.mod h1:W+V8PltTTMOvKvAeJH7IuucS94S2C6jfK/D7dTCTo3Y=
golang.org/x/sys v0.0.0-20220811171246-fbc7d0a398ab/go.mod h1:oPkhp1MJrh7nUepCBck5+mAzfO9JrbApNNgaTdGDITg=
golang.org/x/sys v0.6.0/go.mod h1:oPkhp1MJrh7nUepCBck5+mAzfO9JrbApNNgaTdGDITg=
golang.org/x/sys v0.25.0 h1:r+8e+loiHxRqhXVl6ML1nO3l1+oFoWbnlu2Ehimmi34=
golang.org/x/sys v0.25.0/go.mod h1:/VUhepiaJMQUp4+oa/7Zr1D23ma6VTLIYjOOTFZPUcA=
"""
MAIN = """package main

import (
	"example.com/lib/greet"
	"github.com/fatih/color"
)

var version = "dev"

func main() { color.Green(greet.Hello(version)) }
"""
LIB = {"lib/go.mod": "module example.com/lib\n\ngo 1.22\n",
       "lib/greet/greet.go": 'package greet\n\nfunc Hello(v string) string { return "hello " + v }\n'}
# How the module reaches the library: a `replace` in its go.mod, or a go.work using both (and the cgo modules); and
# "vendor": by a `replace`, with every module vendored (`go mod vendor`), built with no module cache nor proxy.
REPLACE = {"cmd/hello/go.mod": GO_MOD.replace("go 1.22\n", "go 1.22\n\nrequire example.com/lib v0.0.0\n\n"
                                              "replace example.com/lib => ../../lib\n")}
LAYOUTS = {
    "replace": REPLACE,
    "go.work": {"cmd/hello/go.mod": GO_MOD,
                "go.work": "go 1.22\n\nuse (\n\t./cmd/hello\n\t./gw\n\t./gw2\n\t./lib\n)\n"},
    "vendor": REPLACE,
}
SECRET = "s3cret-token-value"
# Go modules built with cgo (`cgo = true`), which stay on this machine.
CGO_MAIN = 'package main\n\nfunc main() { println("gateway") }\n'


def workspace(tmp_path: Path, name: str, url: str = "", main: str = MAIN, layout: str = "replace") -> Path:
    config = ("version = '1.2.3'\nenv-inputs = ['DEMO_TOKEN']\n\n[targets.gw]\ncgo = true\n\n"
              "[targets.gw2]\ncgo = true\n")
    if url:
        config += f"\n[remote]\nurl = '{url}'\nexecute = ['go']\n"
    root = write_tree(tmp_path / name, {
        "polybuild.toml": config, **LIB, **LAYOUTS[layout],
        "cmd/hello/go.sum": GO_SUM, "cmd/hello/main.go": main,
        "gw/go.mod": "module example.com/gw\n\ngo 1.22\n", "gw/main.go": CGO_MAIN,
        "gw2/go.mod": "module example.com/gw2\n\ngo 1.22\n", "gw2/main.go": CGO_MAIN,
    })
    if layout == "vendor":
        subprocess.run(["go", "mod", "vendor"], cwd=root / "cmd" / "hello", check=True, capture_output=True)
    return root


@pytest.fixture(scope="module")
def casd_exec(tmp_path_factory):
    server = Casd(tmp_path_factory.mktemp("casd-go"), execute=True)
    yield server
    server.stop()


def go_shim(tmp_path: Path, version: str = "") -> tuple[dict[str, str], Path]:
    """A PATH whose `go` records each call's arguments (in the returned file) and runs the real go; `version`: what
    it answers `go version` with instead (another Go than the worker's)."""
    real, calls = shutil.which("go"), tmp_path / "go-calls.txt"
    assert real, "go is not installed"
    answer = f'[ "$1" = version ] && {{ echo "go version {version} linux/amd64"; exit 0; }}\n' if version else ""
    shim = write_tree(tmp_path / "shim", {"go": f'#!/bin/sh\necho "$*" >> {calls}\n{answer}exec {real} "$@"\n'})
    (shim / "go").chmod(0o755)
    return {"PATH": f"{shim}:{os.environ['PATH']}"}, calls


def built_here(calls: Path) -> list[str]:
    """The `-o` file names of the `go build`s that ran on this machine."""
    lines = calls.read_text().splitlines() if calls.exists() else []
    return sorted(Path(line.split(" -o ", 1)[1].split()[0]).name for line in lines if line.startswith("build "))


def action_results(server: Casd) -> set[Path]:
    return {p for p in (server.storage / "actioncache").rglob("*") if p.is_file()}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_remote_go_build_gives_the_local_binary(tmp_path, casd_exec, layout):
    """The same Go build on casd's executor and here: the same bytes in dist/ (mode included); the remote one's
    `go build` ran on the worker only (not here, and casd holds its action's result), with the local module it
    uses (by `replace`, or through go.work) and its modules (from the module cache here, or vendored: then with
    neither module cache nor proxy); the cgo modules built here, said once for the run."""
    env, calls = go_shim(tmp_path)
    before = action_results(casd_exec)
    remote = workspace(tmp_path, "remote", casd_exec.url, layout=layout)
    local = workspace(tmp_path, "local", layout=layout)
    offline = {"GOMODCACHE": str(tmp_path / "empty"), "GOPROXY": "off"} if layout == "vendor" else {}
    proc = polybuild(remote, "build", cache=tmp_path / "cache-remote", DEMO_TOKEN=SECRET, **env, **offline)
    polybuild(local, "build", cache=tmp_path / "cache-local", **offline)
    assert statuses(proc) == dict.fromkeys(["go:gw", "go:gw2", "go:hello"], "done") and not warnings(proc), proc.stderr
    assert sha256(remote / "dist" / "hello") == sha256(local / "dist" / "hello")
    assert (remote / "dist" / "hello").stat().st_mode & 0o777 == (local / "dist" / "hello").stat().st_mode & 0o777
    assert (remote / "dist" / "hello").stat().st_mode & 0o111
    assert built_here(calls) == ["gw", "gw2"], calls.read_text()
    assert action_results(casd_exec) - before, "casd executed nothing"
    said = [line for line in proc.stderr.splitlines() if "not on the remote executor" in line]
    assert len(said) == 1 and "cgo" in said[0], proc.stderr
    # an env-input reaches the key, not the server (go reads no such variable)
    assert not any(SECRET.encode() in p.read_bytes() for p in (casd_exec.storage / "cas").rglob("*") if p.is_file())


def test_remote_compile_error_fails_like_a_local_one(tmp_path, casd_exec):
    """A compile error on the worker: exit status 1 with the compiler's message, nothing in dist/ or the local
    store, no fallback to a local build."""
    env, calls = go_shim(tmp_path)
    root = workspace(tmp_path, "remote", casd_exec.url, main=MAIN.replace("color.Green(", "color.Greeen("))
    proc = polybuild(root, "build", "go:hello", cache=tmp_path / "cache", ok=False, **env)
    assert proc.returncode == 1, proc.stderr
    assert "undefined: color.Greeen" in proc.stderr and "exited with status 1" in proc.stderr, proc.stderr
    assert not warnings(proc) and built_here(calls) == [], proc.stderr
    assert not (root / "dist" / "hello").exists()
    store_is_sound(tmp_path / "cache")


def test_worker_with_another_go_fails_instead_of_building_another_binary(tmp_path, casd_exec):
    """The action names the local go's release (GOTOOLCHAIN): a worker whose Go differs refuses to build, so no
    binary of another compiler lands under this key."""
    env, _ = go_shim(tmp_path, version="go1.24.0")
    root = workspace(tmp_path, "remote", casd_exec.url)
    proc = polybuild(root, "build", "go:hello", cache=tmp_path / "cache", ok=False, **env)
    assert proc.returncode == 1, proc.stderr
    assert "go1.24.0" in proc.stderr and "toolchain not available" in proc.stderr, proc.stderr
    assert not (root / "dist" / "hello").exists()
