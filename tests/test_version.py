"""One version stamped everywhere: PEP 440 <-> SemVer conversion, and `polybuild version` on the serving demo."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import copy_example, run_polybuild
from polybuild.versioning.convert import VersionError, parse_version, pep440_to_semver, semver_to_pep440

TABLE = [  # (PEP 440, SemVer)
    ("1.2.0", "1.2.0"),
    ("1.2.0rc1", "1.2.0-rc.1"),
    ("1.2.0a1", "1.2.0-alpha.1"),
    ("1.2.0b2", "1.2.0-beta.2"),
    ("0.9.0.post1", "0.9.0-post.1"),
    ("1.2.0.dev3", "1.2.0-dev.3"),
    ("1.2.0rc1.dev2", "1.2.0-rc.1.dev.2"),
    ("1.2.0b1.post2.dev3", "1.2.0-beta.1.post.2.dev.3"),
]


@pytest.mark.parametrize(("pep440", "semver"), TABLE)
def test_conversion_both_ways(pep440: str, semver: str) -> None:
    assert pep440_to_semver(pep440) == semver
    assert semver_to_pep440(semver) == pep440
    assert parse_version(pep440) == parse_version(semver)


@pytest.mark.parametrize(("loose", "pep440"), [
    ("0.9.0-post1", "0.9.0.post1"),  # MISSION 3.1's Cargo spelling
    ("1.2.0-rc1", "1.2.0rc1"),
    ("1.2.0-RC.1", "1.2.0rc1"),
    ("1.2.0-c.1", "1.2.0rc1"),
    ("1.2", "1.2.0"),
    ("v1.2.0", "1.2.0"),
    ("1.2.0-rc.01", "1.2.0rc1"),
    ("1.2.0.RC1", "1.2.0rc1"),
    ("1.2.0-dev3", "1.2.0.dev3"),
])
def test_loose_spellings_are_read(loose: str, pep440: str) -> None:
    assert parse_version(loose).pep440 == pep440


@pytest.mark.parametrize(("text", "why"), [
    ("1!2.0", "epoch"),
    ("1.2.0+abc", "build metadata"),
    ("1.2.3.4", "4 release numbers"),
    ("1.2.0-foo.1", "'foo' has no PEP 440 equivalent"),
    ("1.2.0-rc", "needs a number"),
    ("1.2.0-dev.1.rc.1", "out of order"),
    ("1.2.0-rc.1.rc.2", "out of order or repeated"),
    ("banana", "not a valid version"),
    ("", "not a valid version"),
])
def test_inexpressible_versions_say_why(text: str, why: str) -> None:
    with pytest.raises(VersionError, match=why):
        parse_version(text)


def test_pep440_local_label_is_refused() -> None:
    with pytest.raises(VersionError, match="local label"):
        pep440_to_semver("1.2.0+abc")


def test_semver_that_is_not_semver() -> None:
    with pytest.raises(VersionError, match="not a SemVer version"):
        semver_to_pep440("1.2")


@pytest.fixture
def serving(tmp_path: Path) -> Path:
    return copy_example("serving", tmp_path / "serving")


def _manifests(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.name in ("Cargo.toml", "Cargo.lock", "pyproject.toml", "polybuild.toml")}


def test_version_lists_every_place(serving: Path) -> None:
    out = run_polybuild("version", cwd=serving)
    assert out.returncode == 0, out.stderr
    for place in ("Cargo.toml:6: [workspace.package] version: 0.3.0", "Cargo.toml:13: pin serving-core: 0.3.0",
                  "Cargo.lock:", "lock serving-core: 0.3.0",
                  "components/serving/pyproject.toml:7: serving: 0.3.0",
                  "components/serving/pyproject.toml:13: pin serving-runtime==: 0.3.0",
                  "go:operator: -ldflags -X main.version=0.3.0 (derived"):
        assert place in out.stdout
    assert "lib/bindings/pyproject.toml" not in out.stdout  # dynamic version: maturin reads Cargo's
    assert "lib/runtime/Cargo.toml" not in out.stdout  # version.workspace = true: inherited


def test_set_stamps_each_spelling_and_keeps_comments(serving: Path) -> None:
    out = run_polybuild("version", "set", "0.4.0rc1", cwd=serving)
    assert out.returncode == 0, out.stderr
    cargo = (serving / "Cargo.toml").read_text()
    assert 'version = "0.4.0-rc.1"\nedition' in cargo
    assert 'serving-core = { path = "lib/runtime", version = "0.4.0-rc.1" }' in cargo
    assert "# Internal crates are pinned to the workspace version so a release bumps them together." in cargo
    lock = (serving / "Cargo.lock").read_text()
    assert 'name = "serving-core"\nversion = "0.4.0-rc.1"' in lock
    assert 'name = "pyo3"\nversion = "0.30.1"' in lock  # third-party entries untouched
    pyproject = (serving / "components/serving/pyproject.toml").read_text()
    assert 'version = "0.4.0rc1"' in pyproject
    assert 'dependencies = ["serving-runtime==0.4.0rc1"]' in pyproject
    assert "# Exact pin on the extension wheel built from lib/bindings in the same release." in pyproject
    check = run_polybuild("version", "check", cwd=serving)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "0.4.0rc1 (PEP 440), 0.4.0-rc.1 (SemVer)" in run_polybuild("version", cwd=serving).stdout


def test_set_accepts_semver_and_keeps_quoting(serving: Path) -> None:
    cargo = serving / "Cargo.toml"
    cargo.write_text(cargo.read_text().replace('version = "0.3.0"\nedition', "version = '0.3.0'\nedition"))
    out = run_polybuild("version", "set", "0.9.0-post1", cwd=serving)
    assert out.returncode == 0, out.stderr
    assert "version = '0.9.0-post.1'\nedition" in cargo.read_text()
    assert 'serving-runtime==0.9.0.post1"' in (serving / "components/serving/pyproject.toml").read_text()


def test_check_names_every_place_that_disagrees(serving: Path) -> None:
    assert run_polybuild("version", "check", cwd=serving).returncode == 0
    pyproject = serving / "components/serving/pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("serving-runtime==0.3.0", "serving-runtime==0.2.9"))
    cargo = serving / "Cargo.toml"
    cargo.write_text(cargo.read_text().replace('version = "0.3.0" }', 'version = "=0.3.1" }'))
    out = run_polybuild("version", "check", cwd=serving)
    assert out.returncode == 1
    assert "components/serving/pyproject.toml:13: pin serving-runtime==: found 0.2.9, expected 0.3.0" in out.stdout
    assert "Cargo.toml:13: pin serving-core: found 0.3.1, expected 0.3.0" in out.stdout
    assert len(out.stdout.splitlines()) == 2


def test_set_repairs_a_hand_edit_and_keeps_the_operator(serving: Path) -> None:
    cargo = serving / "Cargo.toml"
    cargo.write_text(cargo.read_text().replace('version = "0.3.0" }', 'version = "=0.3.1" }'))
    assert run_polybuild("version", "set", "0.3.0", cwd=serving).returncode == 0
    assert 'version = "=0.3.0" }' in cargo.read_text()
    assert run_polybuild("version", "check", cwd=serving).returncode == 0


@pytest.mark.parametrize(("bad", "why"), [("1.2.3.4", "4 release numbers"), ("1!2.0.0", "epoch"),
                                          ("nope", "not a valid version")])
def test_invalid_version_exits_2_and_writes_nothing(serving: Path, bad: str, why: str) -> None:
    before = _manifests(serving)
    out = run_polybuild("version", "set", bad, cwd=serving)
    assert out.returncode == 2
    assert why in out.stderr
    assert _manifests(serving) == before
    assert not [p for p in serving.rglob("*.tmp")]


@pytest.mark.parametrize(("tag", "distance", "expected"), [
    ("1.2.0", 0, "1.2.0"),
    ("1.2.0", 3, "1.2.1.dev3"),
    ("1.2.0rc1", 3, "1.2.0rc2.dev3"),
    ("0.9.0.post1", 2, "0.9.0.post2.dev2"),
    ("1.2", 1, "1.2.1.dev1"),
])
def test_dev_versions_sort_after_their_tag_and_before_the_next_release(tag: str, distance: int,
                                                                       expected: str) -> None:
    from packaging.version import Version

    from polybuild.versioning.convert import parse_version
    from polybuild.versioning.gitversion import next_dev

    found = next_dev(parse_version(tag), distance)
    assert found.pep440 == expected
    assert Version(found.pep440) >= Version(tag)


def test_version_from_git_tags(tmp_path: Path) -> None:
    import subprocess

    from conftest import polybuild_env, run_polybuild, write_tree

    root = write_tree(tmp_path / "ws", {"pyproject.toml": """
        [project]
        name = "app"
        version = "0.0.0"
    """})
    env = {**polybuild_env(), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, env=env)

    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "one")
    untagged = run_polybuild("version", "git", cwd=root)
    assert untagged.returncode == 2 and "no version tag (vX.Y.Z)" in untagged.stderr
    git("tag", "-a", "v1.2.0", "-m", "v1.2.0")
    assert run_polybuild("version", "git", cwd=root).stdout.startswith("1.2.0 (PEP 440), 1.2.0 (SemVer)")
    git("commit", "-q", "--allow-empty", "-m", "two")
    git("commit", "-q", "--allow-empty", "-m", "three")
    assert run_polybuild("version", "git", cwd=root).stdout.startswith("1.2.1.dev2 (PEP 440), 1.2.1-dev.2")
    stamped = run_polybuild("version", "set", "--from-git", cwd=root)
    assert stamped.returncode == 0, stamped.stderr
    assert 'version = "1.2.1.dev2"' in (root / "pyproject.toml").read_text()
