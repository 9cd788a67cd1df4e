"""Composed configuration: `include`, the merge rules, polybuild.lock and `polybuild lock upgrade`."""

from __future__ import annotations

import subprocess
import time
import tomllib
from pathlib import Path

import pytest

from conftest import polybuild_env, run_polybuild, write_tree
from polybuild.config import includelock
from polybuild.config.model import load_config
from polybuild.support.errors import UserError

BASE = """
    platforms = ["linux/amd64", "linux/arm64", "darwin/arm64"]
    dist-dir = "base-dist"

    [rust]
    profile = "release"
    lto = "thin"

    [go]
    tags = ["netgo", "osusergo"]

    [variants.cuda]
    features = ["cuda"]
    platforms = ["linux/amd64"]

    [tasks.lint]
    cmd = ["ruff", "check"]
    env = { LOG = "info", MODE = "base" }
"""

CI = """
    dist-dir = "ci-dist"
    jobs = 4

    [go]
    tags = ["ci"]

    [variants.cpu]
    default = true

    [tasks.lint.env]
    MODE = "ci"
"""

COMPOSER = """
    include = [
        { path = "../shared/polybuild-base.toml", name = "base" },
        { path = "../shared/ci.toml" },
    ]
    platforms = ["linux/amd64"]

    [rust]
    lto = "fat"

    [targets.app]
    skip = true
"""


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def composed(tmp_path: Path) -> Path:
    """A workspace whose polybuild.toml includes two shared files; returns the workspace root."""
    write_tree(tmp_path, {"shared/polybuild-base.toml": BASE, "shared/ci.toml": CI, "ws/polybuild.toml": COMPOSER,
                          # one target, left out of builds: `polybuild build` reads the config and has nothing to do
                          "ws/app/pyproject.toml": '[project]\nname = "app"\nversion = "0.1.0"\n'})
    return tmp_path / "ws"


def test_merge_rules(composed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = load_config(composed)
    assert config["rust"]["profile"] == "release"  # tables merge key by key: from the include...
    assert config["rust"]["lto"] == "fat"  # ...and the composer's key wins over it
    assert config["platforms"] == ["linux/amd64"]  # an allow-list is replaced, never unioned
    assert config["go"]["tags"] == ["ci"]  # the later include's array replaces the earlier one's whole
    assert config["dist-dir"] == "ci-dist"  # the later include wins
    assert config["jobs"] == 4
    assert set(config["variants"]) == {"cuda", "cpu"}  # named entries from every file are kept
    assert config["variants"]["cuda"]["platforms"] == ["linux/amd64"]
    assert config["tasks"]["lint"]["env"] == {"LOG": "info", "MODE": "ci"}  # deep merge inside entries
    assert config["tasks"]["lint"]["cmd"] == ["ruff", "check"]
    assert "locked 'base'" in capsys.readouterr().err


def test_lock_records_every_include_deterministically(composed: Path) -> None:
    load_config(composed)
    text = (composed / "polybuild.lock").read_text()
    lock = tomllib.loads(text)
    assert lock["version"] == 1 and lock["composer"] == "polybuild.toml"
    assert sorted(lock["include"]) == ["base", "ci"]
    base = lock["include"]["base"]
    assert base["source"] == {"path": "../shared/polybuild-base.toml"}
    assert base["content"] == (composed.parent / "shared/polybuild-base.toml").read_text()
    (composed / "polybuild.lock").unlink()
    load_config(composed)
    assert (composed / "polybuild.lock").read_text() == text  # same includes, same bytes


def test_lock_snapshot_reads_back_exactly() -> None:
    tricky = 'a = "quote \\" and backslash \\\\"\nb = \'\'\'lit\'\'\'\n\ttab\r\nctl \x01 é\n'
    for content in (tricky, "plain\n", "ends with a quote'"):
        entry = includelock.Entry(includelock.Descriptor("x.toml"), "x.toml", "0" * 64, content)
        lock = includelock.parse(includelock.render(includelock.LockFile("polybuild.toml", {"x": entry})), "l")
        assert lock.entries["x"] == entry


def test_changed_include_stops_the_build_until_upgraded(composed: Path) -> None:
    first = run_polybuild("build", cwd=composed)
    assert first.returncode == 0, first.stderr
    assert "locked 'base'" in first.stderr and "locked 'ci'" in first.stderr
    again = run_polybuild("build", cwd=composed)
    assert again.returncode == 0 and "locked" not in again.stderr  # said once

    base = composed.parent / "shared/polybuild-base.toml"
    base.write_text(base.read_text().replace('profile = "release"', 'profile = "dev"'))
    stopped = run_polybuild("build", cwd=composed)
    assert stopped.returncode == 2
    assert "../shared/polybuild-base.toml: include 'base' changed since polybuild.lock was written" in stopped.stderr
    assert '-profile = "release"' in stopped.stderr and '+profile = "dev"' in stopped.stderr  # the change shown
    assert "polybuild lock upgrade base" in stopped.stderr
    assert "Traceback" not in stopped.stderr

    upgraded = run_polybuild("lock", "upgrade", "base", cwd=composed)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "upgraded 'base'" in upgraded.stderr
    assert run_polybuild("build", cwd=composed).returncode == 0
    assert load_config(composed)["rust"]["profile"] == "dev"
    assert "already locked" in run_polybuild("lock", "upgrade", "--all", cwd=composed).stdout


def test_the_no_op_fast_path_notices_a_changed_include(composed: Path) -> None:
    env = polybuild_env(POLYBUILD_FAST_PATH="1")
    time.sleep(2.1)  # the fixture's files are too fresh for a no-op summary (the racy-clean rule)
    assert run_polybuild("build", cwd=composed, env=env).returncode == 0  # writes polybuild.lock
    time.sleep(2.1)
    assert run_polybuild("build", cwd=composed, env=env).returncode == 0  # records the summary
    assert "nothing changed" in run_polybuild("build", cwd=composed, env=env).stderr
    base = composed.parent / "shared/polybuild-base.toml"  # outside the workspace: not among its files
    base.write_text(base.read_text().replace('profile = "release"', 'profile = "dev"'))
    stopped = run_polybuild("build", cwd=composed, env=env)
    assert stopped.returncode == 2 and "polybuild lock upgrade base" in stopped.stderr


def test_editing_the_composers_include_needs_an_upgrade(composed: Path) -> None:
    load_config(composed)
    (composed / "polybuild.toml").write_text(COMPOSER.replace("../shared/ci.toml", "../shared/ci.toml\", "
                                                              "name = \"ci\", rev = \"x"))
    with pytest.raises(UserError, match="has `rev` but no `git`"):
        load_config(composed)
    other = composed.parent / "shared/other/ci.toml"
    other.parent.mkdir()
    other.write_text("jobs = 1\n")
    (composed / "polybuild.toml").write_text(COMPOSER.replace("../shared/ci.toml", "../shared/other/ci.toml"))
    with pytest.raises(UserError, match=r"(?s)^polybuild\.toml: include 'ci' is now \.\./shared/other/ci\.toml, "
                                        r"polybuild\.lock has \.\./shared/ci\.toml.*lock upgrade ci`"):
        load_config(composed)
    with pytest.raises(UserError, match="no include named 'nope'"):
        load_config(composed, upgrade=frozenset({"nope"}))
    assert load_config(composed, upgrade=frozenset({"ci"}))["jobs"] == 1


def test_error_in_an_included_file_names_that_file_and_line(composed: Path) -> None:
    base = composed.parent / "shared/polybuild-base.toml"
    base.write_text(base.read_text().replace('lto = "thin"', 'lto = "thinn"'))
    with pytest.raises(UserError, match=r"^\.\./shared/polybuild-base\.toml:6: 'rust\.lto' is 'thinn'"):
        load_config(composed)
    base.write_text(base.read_text().replace('lto = "thinn"', 'lto = "thin"').replace("darwin/arm64", "darwn/arm64"))
    # checked after merging, still located in the file the value came from
    (composed / "polybuild.toml").write_text(COMPOSER.replace('platforms = ["linux/amd64"]', ""))
    with pytest.raises(UserError, match=r"^\.\./shared/polybuild-base\.toml:1: unknown platform 'darwn/arm64'"):
        load_config(composed)


def test_missing_include_file(composed: Path) -> None:
    (composed.parent / "shared/ci.toml").unlink()
    with pytest.raises(UserError, match=r"^polybuild\.toml:3: include 'ci': \.\./shared/ci\.toml does not exist"):
        load_config(composed)
    assert not (composed / "polybuild.lock").exists()  # nothing half-written


def test_include_cycle_is_shown(tmp_path: Path) -> None:
    write_tree(tmp_path, {
        "ws/polybuild.toml": 'include = [{ path = "../shared/a.toml" }]\n',
        "shared/a.toml": 'include = [{ path = "b.toml" }]\n',
        "shared/b.toml": 'jobs = 2\ninclude = [{ path = "a.toml" }]\n',
    })
    result = run_polybuild("graph", cwd=tmp_path / "ws")
    assert result.returncode == 2
    assert ("../shared/b.toml:2: include cycle: ../shared/a.toml -> ../shared/b.toml -> ../shared/a.toml"
            in result.stderr)


def test_nested_includes_and_their_own_lock(tmp_path: Path) -> None:
    write_tree(tmp_path, {
        "ws/pyproject.toml": '[tool.polybuild]\ninclude = [{ path = "../shared/team.toml" }]\njobs = 3\n',
        "shared/team.toml": 'include = [{ path = "core/core.toml" }]\ndist-dir = "team"\n[rust]\nlto = "thin"\n',
        "shared/core/core.toml": '[rust]\nprofile = "dist"\nlto = "fat"\n',
    })
    ws, team = tmp_path / "ws", tmp_path / "shared/team.toml"
    with pytest.raises(UserError, match=r"include 'team' \(\.\./shared/team\.toml\) has includes of its own but "
                                        r"no lock \(\.\./shared/team\.lock\)"):
        load_config(ws)
    load_config(team.parent, team)  # what the team file's owner does: lock it (team.lock)
    assert tomllib.loads(team.with_suffix(".lock").read_text())["include"]["core"]["file"] == "core/core.toml"

    config = load_config(ws)
    assert (config["jobs"], config["dist-dir"], config["rust"]["profile"], config["rust"]["lto"]) == \
        (3, "team", "dist", "thin")  # a file wins over what it includes
    assert sorted(tomllib.loads((ws / "polybuild.lock").read_text())["include"]) == ["team", "team/core"]

    core = tmp_path / "shared/core/core.toml"
    core.write_text(core.read_text().replace("dist", "release"))
    # the team's own lock is stale now: refused, even when upgrading the workspace's lock
    for upgrade in (None, frozenset({"team"})):
        with pytest.raises(UserError, match=r"include 'team' is refused: its own lock is out of date: 'core' "
                                            r"\(\.\./shared/core/core\.toml\) changed"):
            load_config(ws, upgrade=upgrade)
    load_config(team.parent, team, upgrade=frozenset({"core"}))  # the owner accepts it
    with pytest.raises(UserError, match="polybuild lock upgrade team/core"):
        load_config(ws)  # the workspace still pins the old content
    assert load_config(ws, upgrade=frozenset({"team"}))["rust"]["profile"] == "release"


def test_git_include_is_pinned_to_a_commit(tmp_path: Path) -> None:
    repo = write_tree(tmp_path / "policy", {"ci/polybuild-base.toml": 'jobs = 5\ndist-dir = "v1"\n'})
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "v1")
    _git(repo, "tag", "v1")
    ws = write_tree(tmp_path / "ws", {"polybuild.toml": """
        include = [{ git = "../policy", rev = "main", path = "ci/polybuild-base.toml", name = "policy" }]
        jobs = 2
    """})
    config = load_config(ws)
    assert (config["jobs"], config["dist-dir"]) == (2, "v1")
    locked = tomllib.loads((ws / "polybuild.lock").read_text())["include"]["policy"]
    assert locked["commit"] == _git(repo, "rev-parse", "v1")
    assert locked["source"] == {"git": "../policy", "rev": "main", "path": "ci/polybuild-base.toml"}

    (repo / "ci/polybuild-base.toml").write_text('dist-dir = "v2"\n')
    _git(repo, "commit", "-qam", "v2")  # the branch moves...
    assert load_config(ws)["dist-dir"] == "v1"  # ...and changes nothing until upgraded
    assert load_config(ws, upgrade=frozenset({"policy"}))["dist-dir"] == "v2"
    assert tomllib.loads((ws / "polybuild.lock").read_text())["include"]["policy"]["commit"] == \
        _git(repo, "rev-parse", "main")

    (ws / "polybuild.toml").write_text(
        'include = [{ git = "../policy", rev = "v1", path = "ci/nope.toml", name = "policy" }]\n')
    with pytest.raises(UserError, match=r"polybuild\.toml:1: include 'policy': \.\./policy@v1:ci/nope\.toml does "
                                        "not exist"):
        load_config(ws, upgrade=frozenset({"policy"}))


def test_git_include_with_includes_of_its_own(tmp_path: Path) -> None:
    repo = write_tree(tmp_path / "policy", {
        "base.toml": 'include = [{ path = "common/common.toml" }]\ndist-dir = "base"\n',
        "common/common.toml": 'jobs = 7\ndist-dir = "common"\n',
    })
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "no lock")
    ws = write_tree(tmp_path / "ws", {"polybuild.toml": 'include = [{ git = "../policy", rev = "main", '
                                                        'path = "base.toml" }]\n'})
    with pytest.raises(UserError, match=r"include 'base' \(\.\./policy@main:base\.toml\) has includes of its own "
                                        r"but no lock"):
        load_config(ws)
    load_config(repo, repo / "base.toml")  # the repository's owner locks base.toml (base.lock) and commits it
    _git(repo, "add", "base.lock")
    _git(repo, "commit", "-qm", "lock")
    config = load_config(ws)
    assert (config["jobs"], config["dist-dir"]) == (7, "base")
    lock = tomllib.loads((ws / "polybuild.lock").read_text())["include"]
    assert lock["base/common"]["commit"] == lock["base"]["commit"] == _git(repo, "rev-parse", "HEAD")
    (repo / "common/common.toml").write_text("jobs = 1\n")
    _git(repo, "commit", "-qam", "common changed, base.lock not")
    assert load_config(ws)["jobs"] == 7  # pinned
    with pytest.raises(UserError, match="include 'base' is refused: its own lock is out of date: 'common'"):
        load_config(ws, upgrade=frozenset({"base"}))


def test_an_upgraded_include_affects_every_target(composed: Path) -> None:
    load_config(composed)
    _git(composed, "init", "-q")
    _git(composed, "add", ".")
    _git(composed, "commit", "-qm", "locked")
    ci = composed.parent / "shared/ci.toml"
    ci.write_text(ci.read_text().replace("jobs = 4", "jobs = 2"))
    load_config(composed, upgrade=frozenset({"ci"}))
    result = run_polybuild("affected", "--since", "HEAD", "--json", cwd=composed)
    assert result.returncode == 0, result.stderr
    assert "py:app" in result.stdout  # the lock changed: the config every target is built with changed
