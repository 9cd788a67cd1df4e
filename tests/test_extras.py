"""Extras isolation (`polybuild check-extras`) on the demo's client/server package, with real builds and real
environments (uv): the demo passes, and each way of breaking the split is reported naming the package, the extras
set and the fix."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from conftest import copy_example, polybuild_env, run_polybuild
from polybuild import api
from polybuild.extras import check_extras

pytestmark = pytest.mark.e2e

CLIENT = "components/client"


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One cache for the module: every copy of the demo rebuilds only what its edit changed."""
    return tmp_path_factory.mktemp("extras-cache")


@pytest.fixture(scope="module")
def built(tmp_path_factory, cache: Path) -> Path:
    """The demo with the client and the wheels it needs built once."""
    root = copy_example("serving", tmp_path_factory.mktemp("extras") / "serving")
    proc = run_polybuild("build", "serving-client", cwd=root, env=polybuild_env(POLYBUILD_CACHE_DIR=str(cache)))
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture
def demo(built: Path, tmp_path: Path) -> Path:
    """A private copy of the built demo, to break."""
    return Path(shutil.copytree(built, tmp_path / "serving", symlinks=True))


@pytest.fixture
def check(cache: Path):
    """`polybuild check-extras ARGS` in a demo copy, as a user runs it."""
    def run(root: Path, *args: str):
        return run_polybuild("check-extras", *args, cwd=root, env=polybuild_env(POLYBUILD_CACHE_DIR=str(cache)))
    return run


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def problems(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def test_demo_client_passes_on_the_built_wheels(built: Path):
    loaded = api.load(built)
    wheels = sorted((built / "dist").glob("*.whl"))
    start = time.monotonic()
    report = check_extras(loaded, wheels, ["serving-client"])
    elapsed = time.monotonic() - start
    print(f"\ncheck-extras serving-client: {len(report.durations)} environments in {elapsed:.2f}s wall; "
          + ", ".join(f"{k} {v:.2f}s" for k, v in sorted(report.durations.items())))
    assert report.problems == []
    assert sorted(report.durations) == ["serving-client", "serving-client[all]", "serving-client[server]"]
    base, every, server = report.checked  # one line per extras set, for the release report
    assert base.startswith("serving-client 0.3.0 (base install): installed alone (")
    assert base.endswith("; import serving_client; serving-client --help; extra-only serving, serving-runtime "
                         "checked against the base closure; `serving-client serve --check` exits 1 without the "
                         "extra 'server', naming it")
    assert every.startswith("serving-client[all] 0.3.0: brings serving, serving-runtime beyond the base install")
    assert server.startswith("serving-client[server] 0.3.0: brings serving, serving-runtime beyond the base install")
    assert server.endswith("`serving-client serve --check` exits 0 with the extra 'server'")


def test_cli_passes_and_reports_json(built: Path, check):
    proc = check(built, "serving-client", "--json")
    assert proc.returncode == 0, proc.stderr
    assert '"ok": true' in proc.stdout and '"problems": []' in proc.stdout


def test_client_dependency_only_under_the_extra_breaks_the_base_install(demo: Path, check):
    # the client starts using serving's ranking at import time, but serving is listed only under [server]
    edit(demo / CLIENT / "src/serving_client/__init__.py", '__version__ = "0.3.0"\n',
         '__version__ = "0.3.0"\n\nfrom serving.cli import rank  # noqa: E402,F401\n')
    proc = check(demo, "serving-client")
    assert proc.returncode == 1, proc.stderr
    assert problems(proc.stderr) == [
        "error: serving-client 0.3.0 (base install): `import serving_client` fails: ModuleNotFoundError: No module "
        "named 'serving'"]  # the console script and the serve command die of the same import: reported once
    assert "fix: 'serving' comes from serving, listed only under the extras all, server: add serving to " \
           "[project].dependencies of serving-client" in proc.stderr


def test_server_only_package_leaking_into_the_base_closure_is_reported(demo: Path, check):
    edit(demo / CLIENT / "pyproject.toml", "dependencies = []", 'dependencies = ["serving-runtime==0.3.0"]')
    proc = check(demo, "serving-client")
    assert proc.returncode == 1, proc.stderr
    assert problems(proc.stderr) == [
        "error: serving-client 0.3.0 (base install): installs serving-runtime, which [extras.serving-client] "
        "extra-only keeps out of the base install (pulled in by serving-client -> serving-runtime)"]
    assert "fix: move the requirement that brings it to an extra" in proc.stderr


def test_server_command_that_exits_0_without_the_extra_is_reported(demo: Path, check):
    edit(demo / CLIENT / "src/serving_client/cli.py", '({exc})", file=sys.stderr)\n        return 1',
         '({exc})", file=sys.stderr)\n        return 0')
    proc = check(demo, "serving-client")
    assert proc.returncode == 1, proc.stderr
    assert problems(proc.stderr) == [
        "error: serving-client 0.3.0 (base install): `serving-client serve --check` exits 0 without the extra "
        "'server'"]
    assert "pip install 'serving-client[server]'" in proc.stderr


def test_server_command_that_does_not_name_the_extra_is_reported(demo: Path, check):
    edit(demo / CLIENT / "src/serving_client/cli.py",
         "SERVER_EXTRA_MESSAGE = \"the 'serve' command needs the server extra: pip install 'serving-client[server]'\"",
         'SERVER_EXTRA_MESSAGE = "cannot start"')
    proc = check(demo, "serving-client")
    assert proc.returncode == 1, proc.stderr
    (line,) = problems(proc.stderr)
    assert re.match(r"error: serving-client 0\.3\.0 \(base install\): `serving-client serve --check` fails without "
                    r"the extra 'server' but does not name it: cannot start \(No module named 'serving", line)


def test_an_all_extra_that_forgets_an_extra_is_reported(demo: Path, check):
    edit(demo / CLIENT / "pyproject.toml", 'all = ["serving-client[server]"]', "all = []")
    proc = check(demo, "serving-client")
    assert proc.returncode == 1, proc.stderr
    found = problems(proc.stderr)
    assert "error: serving-client[all] 0.3.0: does not install serving, which serving-client[server] does" in found
    assert "fix: add 'serving-client[server]' to the all extra" in proc.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["serving-clinet"], "no target named 'serving-clinet'"),
    (["operator"], "go:operator is not a Python package; check-extras checks wheels"),
])
def test_bad_package_exits_2(built: Path, check, args: list[str], message: str):
    proc = check(built, *args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_config_naming_an_undeclared_extra_exits_2_with_its_line(demo: Path, check):
    edit(demo / "polybuild.toml", '--check" = "server"', '--check" = "sever"')
    proc = check(demo, "serving-client")
    assert proc.returncode == 2, proc.stderr
    assert re.search(r"polybuild\.toml:\d+: 'serving-client serve --check' needs extra 'sever', which "
                     r"serving-client 0\.3\.0 does not declare \(declared: all, server\)", proc.stderr), proc.stderr


def test_pip_fallback_gives_the_same_verdict(built: Path, check):
    proc = check(built, "serving-client", "--installer", "pip")
    assert proc.returncode == 0, proc.stderr
    assert "3 environments" in proc.stderr


def test_a_plugin_that_loads_with_no_extras_set_is_reported(demo: Path, check):
    # an entry point (a plugin for some host program) whose dependency is declared nowhere: the host would skip it
    # without a word; the one that needs only the server extra loads with every extra installed and is fine
    edit(demo / CLIENT / "pyproject.toml", "[tool.hatch.build.targets.wheel]",
         '[project.entry-points."serving.plugins"]\nserver = "serving_client.server:Handler"\n'
         'metrics = "serving_client.metrics:collect"\n\n[tool.hatch.build.targets.wheel]')
    (demo / CLIENT / "src/serving_client/metrics.py").write_text("import prometheus_client\n\n\ndef collect(): ...\n")
    proc = check(demo, "serving-client")
    assert proc.returncode == 1, proc.stderr
    assert problems(proc.stderr) == [
        "error: serving-client[all] 0.3.0: plugin serving.plugins:metrics does not load even with every extra "
        "installed: ModuleNotFoundError: No module named 'prometheus_client'"]
    assert "; plugin serving.plugins:server loads" in proc.stderr
