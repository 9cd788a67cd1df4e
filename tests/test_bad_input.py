"""The bad-input corpus: every input below once crashed polybuild with a traceback, hung it, wrote outside the
workspace or was silently accepted. Each must now end with exit 2 (1 for a build that ran and failed), a message
naming the file, key or flag at fault, and no traceback."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import polybuild_env, run_polybuild, write_tree

BASE = {
    "polybuild.toml": 'version = "1.2.3"\n',
    "go/hello/go.mod": "module example.com/hello\n\ngo 1.21\n",
    "go/hello/main.go": 'package main\n\nimport "fmt"\n\nvar version = "dev"\n\nfunc main() { fmt.Println(version) }\n',
    "py/pkg/pyproject.toml": '[project]\nname = "pkg"\nversion = "1.0.0"\n\n[build-system]\nrequires = ["hatchling"]\n'
                             'build-backend = "hatchling.build"\n',
    "py/pkg/src/pkg/__init__.py": "",
}
IMAGE = '\n[images.app]\ntemplate = "img/Dockerfile.j2"\n'


@dataclass
class Case:
    id: str
    files: dict[str, str] = field(default_factory=dict)  # over BASE
    args: tuple[str, ...] = ("build",)
    env: dict[str, str] = field(default_factory=dict)
    code: int = 2
    says: tuple[str, ...] = ()  # what the message must name
    setup: Callable[[Path], None] | None = None


def conf(extra: str) -> dict[str, str]:
    return {"polybuild.toml": BASE["polybuild.toml"] + extra}


def symlink(link: str, target: str) -> Callable[[Path], None]:
    """A symlink in the workspace to `target` (relative to the directory holding the workspace)."""

    def make(root: Path) -> None:
        (root / link).parent.mkdir(parents=True, exist_ok=True)
        (root / link).symlink_to(root.parent / target)

    return make


TASK = '\n[targets.hello.tasks.gen]\ncmd = ["true"]\n'
CASES = [
    Case("nul-in-path", conf('dist-dir = "a\\u0000b"\n'), says=("polybuild.toml:2", "'dist-dir'", "NUL")),
    Case("nul-in-env", conf('[targets.hello.env]\nX = "a\\u0000b"\n'), says=("targets.hello.env.X", "NUL")),
    Case("nul-in-go-mod", {"go/hello/go.mod": "module example.com/he\0llo\n\ngo 1.21\n"},
         says=("go/hello/go.mod:1", "NUL")),
    Case("remote-url-unclosed-ipv6", conf('[remote]\nurl = "http://[::1"\n'),
         says=("polybuild.toml:3", "[remote] url", "http://[::1")),
    Case("remote-url-port-out-of-range", args=("build", "--remote", "http://localhost:99999"),
         says=("--remote", "localhost:99999")),
    Case("remote-url-env", env={"POLYBUILD_REMOTE_URL": "http://[::1"}, says=("$POLYBUILD_REMOTE_URL",)),
    Case("outputs-absolute", conf(TASK + 'outputs = ["/etc/hostname"]\n'), args=("run", "gen"),
         says=("polybuild.toml:5", "targets.hello.tasks.gen.outputs", "/etc/hostname")),
    Case("outputs-outside-target", conf(TASK + 'outputs = ["../../outside.txt"]\n'), args=("run", "gen"),
         says=("targets.hello.tasks.gen.outputs", "../../outside.txt")),
    Case("dist-dir-outside", conf('dist-dir = "../../x"\n'), says=("polybuild.toml:2", "'dist-dir'")),
    Case("state-dir-root", conf('state-dir = "/"\n'), says=("polybuild.toml:2", "'state-dir'")),
    Case("state-dir-outside", conf('state-dir = "../state"\n'), says=("'state-dir'",)),
    Case("dist-dir-is-root", conf('dist-dir = "."\n'), says=("'dist-dir'",)),
    Case("template-path-outside", conf('[images.app]\ntemplate = "../../../../etc/passwd"\n'),
         args=("container", "render", "app"), says=("polybuild.toml:3", "images.app.template")),
    Case("template-symlink-outside", conf(IMAGE), args=("container", "render", "app"),
         setup=symlink("img/Dockerfile.j2", "secret.txt"), says=("img/Dockerfile.j2", "outside the workspace")),
    Case("template-include-symlink-outside", {**conf(IMAGE), "img/Dockerfile.j2": 'FROM scratch\n'
                                              '{% include "part.j2" %}\n'}, args=("container", "render", "app"),
         setup=symlink("img/part.j2", "secret.txt"), says=("part.j2", "outside the workspace")),
    Case("template-include-dir-symlink-outside", {**conf(IMAGE), "img/Dockerfile.j2": 'FROM scratch\n'
                                                  '{% include "sub/secret.txt" %}\n'},
         args=("container", "render", "app"), setup=symlink("img/sub", "."), says=("sub/secret.txt", "outside")),
    Case("image-files-outside", conf('[images.app]\nfiles = ["../secret.txt"]\n'), args=("graph",),
         says=("polybuild.toml:3", "images.app.files", "../secret.txt")),
    Case("jinja-range", {**conf(IMAGE), "img/Dockerfile.j2": "FROM scratch\n"
                         "{% for i in range(10000000) %}{% endfor %}\n"}, args=("container", "render", "app"),
         says=("img/Dockerfile.j2:2", "MAX_RANGE")),
    Case("jinja-runaway-output", {**conf(IMAGE), "img/Dockerfile.j2": "FROM scratch\n{% for i in range(99999) %}"
                                  "{% for j in range(99999) %}0123456789{% endfor %}{% endfor %}\n"},
         args=("container", "render", "app"), says=("img/Dockerfile.j2", "MiB")),
    Case("toml-nested-arrays", conf("x = " + "[" * 5000 + "]" * 5000 + "\n"), says=("polybuild.toml",
                                                                                     "nested too deeply")),
    Case("toml-nested-inline-tables", conf("x = " + "{a=" * 5000 + "}" * 5000 + "\n"),
         says=("polybuild.toml", "nested too deeply")),
    Case("go-work-missing-module", {"go.work": "go 1.21\n\nuse (\n\t./go/hello\n\t./go/missing\n)\n"},
         says=("go.work", "go/missing")),
    Case("go-mod-unclosed-block", {"go/hello/go.mod": "module example.com/hello\n\ngo 1.21\n\nrequire (\n"
                                   "\texample.com/x v1.0.0\n"}, says=("go/hello/go.mod:5", "never closed")),
    Case("go-mod-malformed-require", {"go/hello/go.mod": "module example.com/hello\n\ngo 1.21\n\nrequire (\n"
                                      "\texample.com/x\n)\n"}, says=("go/hello/go.mod:6", "require")),
    Case("go-mod-unknown-directive", {"go/hello/go.mod": "module example.com/hello\n\ngo 1.21\nrequir x v1\n"},
         says=("go/hello/go.mod:4", "requir")),
    Case("build-system-not-a-table", {"py/pkg/pyproject.toml": 'build-system = "x"\n\n[project]\nname = "pkg"\n'
                                      'version = "1.0.0"\n'}, says=("py/pkg/pyproject.toml:1", "build-system")),
    Case("task-without-cmd", conf('\n[targets.hello.tasks.gen]\noutputs = ["x"]\n'), args=("run", "gen"),
         says=("polybuild.toml:3", "targets.hello.tasks.gen", "'cmd'")),
    Case("task-empty-cmd", conf('\n[targets.hello.tasks.gen]\ncmd = []\n'), args=("run", "gen"),
         says=("polybuild.toml:4", "targets.hello.tasks.gen.cmd")),
    Case("workspace-task-empty-cmd", conf('\n[tasks.lint]\ncmd = [""]\n'), args=("run", "lint"),
         says=("tasks.lint.cmd",)),
    *(Case(f"empty-{key}", {"polybuild.toml": f'{key} = ""\n'}, says=("polybuild.toml:1", f"'{key}'", "empty"))
      for key in ("name", "dist-dir", "state-dir", "cache-dir")),
    Case("empty-version", {"polybuild.toml": 'version = ""\n'}, says=("polybuild.toml:1", "'version'", "PEP 440")),
    Case("empty-rust-profile", conf('[rust]\nprofile = ""\n'), says=("polybuild.toml:3", "rust.profile")),
    Case("empty-remote-url", conf('[remote]\nurl = ""\n'), says=("polybuild.toml:3", "remote.url")),
    Case("empty-python-interpreter", conf('[python]\ninterpreter = ""\n'), says=("python.interpreter",)),
    Case("target-depends-on-itself", conf('[targets.hello]\ndeps = ["hello"]\n'),
         says=("polybuild.toml:3", "go:hello depends on itself")),
    Case("source-date-epoch-not-a-number", env={"SOURCE_DATE_EPOCH": "abc"}, says=("SOURCE_DATE_EPOCH", "abc")),
    Case("xdg-cache-home-unusable", env={"POLYBUILD_CACHE_DIR": "", "XDG_CACHE_HOME": "{tmp}/secret.txt"},
         says=("$XDG_CACHE_HOME", "Not a directory")),
    Case("cache-dir-unusable", conf('cache-dir = "/proc/polybuild-cache"\n'), says=("polybuild.toml:2",
                                                                                    "cache-dir")),
    Case("version-spliced-into-ldflags", {"polybuild.toml": 'version = "1.2.3 -X main.version=INJECTED"\n'},
         says=("polybuild.toml:1", "'version'", "PEP 440")),
    Case("go-version-variable-with-space", conf('[go]\nversion-variable = "main.version -X main.x"\n'),
         says=("go.version-variable",)),
    Case("go-ldflags-entry-of-several-flags", conf('[go]\nldflags = ["-s -w"]\n'),
         says=("polybuild.toml:3", "go.ldflags", '["-s", "-w"]')),
    Case("go-tag-with-comma", conf('[go]\ntags = ["a,b"]\n'), says=("go.tags", "a,b")),
    Case("python-roots-outside", conf('python-roots = ["../.."]\n'), args=("graph",), says=("python-roots", "../..")),
    Case("go-roots-absolute", conf('go-roots = ["/"]\n'), args=("graph",), says=("go-roots",)),
    Case("env-inputs-empty-name", conf('env-inputs = [""]\n'), says=("polybuild.toml:2", "env-inputs")),
    Case("target-env-inputs-bad-name", conf('[targets.hello]\nenv-inputs = ["A=B"]\n'),
         says=("targets.hello.env-inputs", "A=B")),
    Case("jobs-flag-huge", args=("build", "-j", "99999999999999999999"), says=("-j/--jobs", "out of range")),
    Case("jobs-flag-zero", args=("run", "test", "-j", "0"), says=("-j/--jobs",)),
    Case("jobs-config-huge", conf(f"jobs = {2**63 - 1}\n"), says=("polybuild.toml:2", "'jobs'", "at most")),
    Case("codegen-units-huge", conf(f"[rust]\ncodegen-units = {2**63 - 1}\n"), says=("rust.codegen-units",)),
    Case("gc-max-size-negative", args=("cache", "gc", "--max-size=-5G"), says=("--max-size", "-5G")),
    Case("gc-max-size-infinite", args=("cache", "gc", "--max-size", "infG"), says=("--max-size", "infG")),
    Case("python-interpreter-produces-nothing", conf('[python]\ninterpreter = "/bin/true"\n'),
         args=("build", "pkg"), code=1, says=("py:pkg failed", "produced no artifact")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_a_clear_error(case: Case, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("SECRET-OUTSIDE-THE-WORKSPACE\n")
    root = write_tree(tmp_path / "ws", {**BASE, **case.files})
    if case.setup:
        case.setup(root)
    env = polybuild_env(**{k: v.format(tmp=tmp_path) for k, v in case.env.items()})
    proc = run_polybuild(*case.args, cwd=root, env=env, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == case.code, out
    assert "Traceback" not in out, out
    for text in case.says:
        assert text in proc.stderr, proc.stderr
    assert "SECRET-OUTSIDE" not in out
    for escaped in ("outside.txt", "x", "state"):
        assert not (tmp_path / escaped).exists(), f"wrote {escaped} outside the workspace"


def test_utf8_bom_in_toml_is_accepted(tmp_path: Path) -> None:
    """Some Windows editors start files with a byte order mark; it is not content."""
    root = write_tree(tmp_path / "ws", BASE)
    (root / "polybuild.toml").write_bytes(b"\xef\xbb\xbf" + b'version = "1.2.3"\n\njobs = 0\n')
    proc = run_polybuild("graph", cwd=root, timeout=60)
    assert proc.returncode == 2 and "polybuild.toml:3" in proc.stderr, proc.stderr  # read, and lines still right
    (root / "polybuild.toml").write_bytes(b"\xef\xbb\xbf" + BASE["polybuild.toml"].encode())
    proc = run_polybuild("graph", "--format", "json", cwd=root, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "go:hello" in proc.stdout


def test_ldflags_entries_stay_one_argument_each(tmp_path: Path) -> None:
    """A value with a space reaches the linker as one argument: it can never become a flag of its own."""
    root = write_tree(tmp_path / "ws", {**BASE, **conf('[go]\nldflags = ["-X", "main.version=a b -X c=d"]\n')})
    proc = run_polybuild("build", "hello", cwd=root, timeout=300)
    assert proc.returncode == 0, proc.stderr
    printed = subprocess.run([root / "dist" / "hello"], capture_output=True, text=True, check=True).stdout
    assert printed == "a b -X c=d\n"
    report = json.loads((root / "dist" / "build-report.json").read_text())
    assert [t["status"] for t in report["tasks"]] == ["built"]


def test_no_file_is_written_outside_the_workspace_by_state_dir(tmp_path: Path) -> None:
    """`state-dir` pointing at an absolute directory (it once wrote lock, logs/ and records.json to /)."""
    outside = tmp_path / "elsewhere"
    root = write_tree(tmp_path / "ws", {**BASE, **conf(f'state-dir = "{outside}"\n')})
    proc = run_polybuild("build", cwd=root, timeout=60)
    assert proc.returncode == 2 and "'state-dir'" in proc.stderr, proc.stderr
    assert not outside.exists() and not os.path.exists(root.parent / "lock")
