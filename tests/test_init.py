"""`polybuild init` on layouts that reproduce real repositories (ai-dynamo/dynamo's shape: a Cargo workspace, a
maturin binding in a Cargo workspace of its own, Python packages and Go modules; binaries of one name in two Go
modules next to a Python package of the same name; a Cargo virtual workspace with no root package; dynamo's
gateway linking a Rust static library by path), and the state directory that ignores itself. Every check runs the
real command line and real git."""

from __future__ import annotations

import subprocess
import tomllib

from conftest import run_polybuild
from test_real_layouts import DYNAMO_GATEWAY


def _git(root, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout


def _commit_all(root) -> None:
    if not (root / ".git").exists():
        _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "import")


ROOT_PYPROJECT = """\
# The root package, as in dynamo: its [tool.*] tables are the repository's tool config.
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "ai-app"   # the workspace's name comes from here
version = "1.1.0"
dependencies = ["ai-app-runtime==1.1.0"]

[tool.ruff]
line-length = 120"""  # no trailing newline: appending must still give valid TOML

DYNAMO_SHAPE = {
    "Cargo.toml": """
        [workspace]
        members = ["lib/runtime", "lib/llm"]
        exclude = ["lib/bindings/python"]
        resolver = "2"
    """,
    "lib/runtime/Cargo.toml": '[package]\nname = "app-runtime"\nversion = "1.1.0"\nedition = "2021"\n',
    "lib/runtime/src/lib.rs": "",
    "lib/llm/Cargo.toml": """
        [package]
        name = "app-llm"
        version = "1.1.0"
        edition = "2021"
        [dependencies]
        app-runtime = { path = "../runtime" }
    """,
    "lib/llm/src/main.rs": "fn main() {}\n",
    # the binding is a Cargo workspace of its own, outside the root one (dynamo's lib/bindings/python)
    "lib/bindings/python/Cargo.toml": """
        [package]
        name = "app-py"
        version = "1.1.0"
        edition = "2021"
        [lib]
        crate-type = ["cdylib"]
        [dependencies]
        app-runtime = { path = "../../runtime" }
        [workspace]
    """,
    "lib/bindings/python/src/lib.rs": "",
    "lib/bindings/python/pyproject.toml": """
        [build-system]
        requires = ["maturin>=1.8,<2"]
        build-backend = "maturin"
        [project]
        name = "ai-app-runtime"
        version = "1.1.0"
    """,
    "lib/gpu/pyproject.toml": """
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"
        [project]
        name = "gpu-service"
        version = "0.9.0"
    """,
    "deploy/operator/go.mod": "module github.com/acme/app/deploy/operator\n\ngo 1.22\n",
    "deploy/operator/cmd/main.go": "package main\n\nfunc main() {}\n",
}


def _dynamo_shape(workspace, **extra: str):
    root = workspace({**DYNAMO_SHAPE, **extra})
    (root / "pyproject.toml").write_text(ROOT_PYPROJECT)
    return root


def test_a_repository_discovery_understands_gets_no_config(workspace):
    root = _dynamo_shape(workspace)
    _commit_all(root)
    proc = run_polybuild("init", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert "no config needed" in proc.stderr and "nothing written" in proc.stderr
    assert (root / "pyproject.toml").read_text() == ROOT_PYPROJECT
    assert not (root / "polybuild.toml").exists()
    assert (root / ".gitignore").read_text() == "/dist/\n"
    # the graph, as `polybuild graph` prints it, and the next commands by their real names
    graph = run_polybuild("graph", cwd=root).stdout
    assert graph.strip() in proc.stdout
    assert "py:ai-app-runtime  (maturin, lib/bindings/python)\n    -> rust:app-runtime" in proc.stdout
    assert "py:ai-app  (pep517, .)\n    -> py:ai-app-runtime" in proc.stdout
    for command in ("polybuild build", "polybuild ci matrix", "polybuild deny", "polybuild attributions"):
        assert f"\n  {command} " in proc.stdout
    # what init leaves and what polybuild writes later are all ignored once .gitignore is committed
    _commit_all(root)
    (root / "dist").mkdir()
    (root / "dist" / "ai_app-1.1.0-py3-none-any.whl").write_bytes(b"wheel")
    assert run_polybuild("graph", cwd=root).returncode == 0
    assert _git(root, "status", "--porcelain", "--untracked-files=all") == ""


CLASHING_SERVERS = {
    # Two Go modules that each build `server` (they would publish one dist path), and a Python package with the
    # name of one of them: `[targets.beta]` would be ambiguous, so the table is keyed by the id.
    "svc/alpha/go.mod": "module example.com/alpha\n\ngo 1.22\n",
    "svc/alpha/cmd/server/main.go": "package main\n\nfunc main() {}\n",
    "svc/beta/go.mod": "module example.com/beta\n\ngo 1.22\n",
    "svc/beta/cmd/server/main.go": "package main\n\nfunc main() {}\n",
    "python/beta/pyproject.toml": """
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"
        [project]
        name = "beta"
        version = "1.1.0"
    """,
}


def test_targets_publishing_one_dist_path_get_a_subdir_in_the_root_pyproject(workspace):
    root = _dynamo_shape(workspace, **CLASHING_SERVERS)
    before = run_polybuild("build", "--dry-run", cwd=root)
    assert before.returncode == 2 and "go:alpha and go:beta would both publish dist/server" in before.stderr
    proc = run_polybuild("init", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert "wrote pyproject.toml ([tool.polybuild] appended)" in proc.stderr
    text = (root / "pyproject.toml").read_text()
    assert text.startswith(ROOT_PYPROJECT + "\n\n# Written by `polybuild init`")  # the user's text untouched
    data = tomllib.loads(text)
    assert data["tool"]["polybuild"] == {"targets": {"go:beta": {"dist-subdir": "svc/beta"}}}
    assert data["tool"]["ruff"] == {"line-length": 120} and data["project"]["name"] == "ai-app"
    after = run_polybuild("build", "--dry-run", cwd=root)
    assert after.returncode == 0, after.stderr
    assert run_polybuild("graph", cwd=root).returncode == 0
    # a second init refuses, naming the file, and changes nothing
    again = run_polybuild("init", cwd=root)
    assert again.returncode == 2
    assert "pyproject.toml already configures polybuild here" in again.stderr and "hint: " in again.stderr
    assert (root / "pyproject.toml").read_text() == text
    # nor does it start a workspace inside the configured one
    inner = run_polybuild("init", "python/beta", cwd=root)
    assert inner.returncode == 2 and "is inside the workspace configured by" in inner.stderr
    assert not (root / "python" / "beta" / "polybuild.toml").exists()



GO_SERVERS = {k: v for k, v in CLASHING_SERVERS.items() if k.startswith("svc/")}


def test_the_pyproject_keeps_its_line_endings_and_an_inline_tool_table_gets_a_polybuild_toml(workspace):
    root = workspace(GO_SERVERS)
    crlf = b'[project]\r\nname = "acme"\r\nversion = "1.0"\r\n'
    (root / "pyproject.toml").write_bytes(crlf)
    assert run_polybuild("init", cwd=root).returncode == 0
    text = (root / "pyproject.toml").read_bytes()
    assert text.startswith(crlf + b"\r\n# Written by") and b"\n" not in text.replace(b"\r\n", b"")
    assert tomllib.loads(text.decode())["tool"]["polybuild"]["targets"] == {"beta": {"dist-subdir": "beta"}}
    # `tool` as an inline table cannot take [tool.polybuild] appended: the config goes into polybuild.toml
    inline = 'tool = { ruff = { line-length = 100 } }\n\n[project]\nname = "acme"\nversion = "1.0"\n'
    (root / "pyproject.toml").write_text(inline)
    proc = run_polybuild("init", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert (root / "pyproject.toml").read_text() == inline
    assert tomllib.loads((root / "polybuild.toml").read_text()) == {"targets": {"beta": {"dist-subdir": "beta"}}}


def test_a_dependency_on_a_name_two_packages_share_is_discoverys_error(workspace):
    package = '[project]\nname = "shared"\nversion = "1.0"\n'
    root = workspace({"a/pyproject.toml": package, "b/pyproject.toml": package,
                      "app/pyproject.toml": '[project]\nname = "app"\nversion = "1.0"\ndependencies = ["shared"]\n'})
    proc = run_polybuild("init", cwd=root)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "'shared' is the name of 2 packages of this workspace: a/pyproject.toml, b/pyproject.toml" in proc.stderr
    assert not (root / "polybuild.toml").exists()

VIRTUAL_WORKSPACE = {
    # a Cargo virtual workspace at the root (no root package to name the workspace after) and dynamo's gateway
    **DYNAMO_GATEWAY,
    "Cargo.toml": '[workspace]\nmembers = ["crates/cli"]\nresolver = "2"\n',
    "crates/cli/Cargo.toml": '[package]\nname = "cli"\nversion = "0.1.0"\nedition = "2021"\n',
    "crates/cli/src/main.rs": "fn main() {}\n",
}


def test_no_root_package_and_a_cgo_link_by_path_get_a_polybuild_toml(workspace):
    root = workspace(VIRTUAL_WORKSPACE)
    (root / ".gitignore").write_text("target\n*.log")  # no trailing newline
    refused = run_polybuild("build", "go:inference-gateway", cwd=root)
    assert refused.returncode == 2 and "links libdynamo_llm_capi.a by a path" in refused.stderr
    check = run_polybuild("init", "--check", cwd=root)
    assert check.returncode == 0 and "would write polybuild.toml" in check.stderr
    assert not (root / "polybuild.toml").exists() and (root / ".gitignore").read_text() == "target\n*.log"
    proc = run_polybuild("init", cwd=root)
    assert proc.returncode == 0, proc.stderr
    config = tomllib.loads((root / "polybuild.toml").read_text())
    assert config == {"name": "ws", "targets": {"inference-gateway": {"cgo-stage": True}}}
    assert (root / ".gitignore").read_text() == "target\n*.log\n/dist/\n"
    graph = run_polybuild("graph", cwd=root)
    assert graph.returncode == 0 and "go:inference-gateway  (go, deploy/inference-gateway/epp)\n" \
        "    -> rust:libdynamo_llm" in graph.stdout
    again = run_polybuild("init", cwd=root)
    assert again.returncode == 2 and "polybuild.toml already configures polybuild here" in again.stderr


def test_gitignore_lines_already_there_are_not_repeated(workspace):
    root = workspace({"pyproject.toml": '[project]\nname = "tool"\nversion = "1.0"\n', "tool/__init__.py": ""})
    (root / ".gitignore").write_bytes(b"# build outputs\r\ndist/\r\n")  # CRLF, and an unanchored dist/
    _commit_all(root)
    assert run_polybuild("init", cwd=root).returncode == 0
    assert (root / ".gitignore").read_bytes() == b"# build outputs\r\ndist/\r\n"
    (root / ".gitignore").write_bytes(b"# build outputs\r\n")
    assert run_polybuild("init", cwd=root).returncode == 0  # zero-config still: init can run again
    assert (root / ".gitignore").read_bytes() == b"# build outputs\r\n/dist/\r\n"


def test_a_state_directory_an_older_polybuild_made_gets_its_gitignore_from_init(workspace):
    root = workspace({"pyproject.toml": '[project]\nname = "tool"\nversion = "1.0"\n', "tool/__init__.py": ""})
    _commit_all(root)
    (root / ".polybuild").mkdir()
    (root / ".polybuild" / "records.json").write_text("{}")  # made before the state directory ignored itself
    assert "?? .polybuild/" in _git(root, "status", "--porcelain")
    proc = run_polybuild("init", cwd=root)
    assert proc.returncode == 0 and "wrote .polybuild/.gitignore" in proc.stderr, proc.stderr
    assert ".polybuild" not in _git(root, "status", "--porcelain", "--untracked-files=all")


def test_an_empty_directory_is_a_clear_error(tmp_path):
    proc = run_polybuild("init", cwd=tmp_path)
    assert proc.returncode == 2 and "no packages found" in proc.stderr and "Traceback" not in proc.stderr


def test_the_state_directory_polybuild_creates_ignores_itself(workspace):
    root = workspace({"pyproject.toml": '[project]\nname = "app"\nversion = "1.0"\n', "app/__init__.py": ""})
    _commit_all(root)  # no .gitignore at all: a repository that never heard of polybuild
    proc = run_polybuild("graph", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert (root / ".polybuild").is_dir()
    assert _git(root, "status", "--porcelain", "--untracked-files=all") == ""
    assert (root / ".polybuild" / ".gitignore").read_text().splitlines()[-1] == "*"


def test_a_state_directory_polybuild_did_not_create_is_left_alone(workspace):
    root = workspace({"pyproject.toml": '[project]\nname = "app"\nversion = "1.0"\n[tool.polybuild]\n'
                      'state-dir = "work"\n', "app/__init__.py": "", "work/notes.txt": "mine\n"})
    _commit_all(root)
    assert run_polybuild("graph", cwd=root).returncode == 0
    assert not (root / "work" / ".gitignore").exists()
