"""polybuild.support.platforms: `Platform.parse` is the one validating parse of an `os/arch` name, wherever the name
was written (config, a command-line option, a record)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_polybuild
from polybuild.config.model import load_config
from polybuild.support.errors import ConfigError, UserError
from polybuild.support.platforms import PLATFORMS, Platform


def test_a_known_platform_parses() -> None:
    assert Platform.parse("linux/arm64") == Platform("linux", "arm64")
    assert [Platform.parse(p).name for p in PLATFORMS] == list(PLATFORMS)


@pytest.mark.parametrize("value", ["linux", "linux/", "/amd64", "linux/x86_64", "Linux/amd64", "linux/amd64/v2"])
def test_anything_else_is_refused_with_the_valid_ones(value: str) -> None:
    with pytest.raises(UserError) as exc:
        Platform.parse(value)
    assert exc.value.message == f"unknown platform '{value}'"
    assert exc.value.hint is not None and exc.value.hint.endswith(f"valid platforms: {', '.join(PLATFORMS)}")


def test_an_option_is_named_as_typed_with_the_closest_match() -> None:
    with pytest.raises(UserError) as exc:
        Platform.parse("linux/amd46", "--platform")
    assert exc.value.message == "--platform linux/amd46: not a known platform"
    assert exc.value.hint is not None and exc.value.hint.startswith("did you mean 'linux/amd64'?")


def test_a_narrowed_choice_says_why() -> None:
    linux = [p for p in PLATFORMS if p.startswith("linux/")]
    with pytest.raises(UserError) as exc:
        Platform.parse("darwin/arm64", "--platform", linux, "images are built for Linux platforms")
    assert (exc.value.message, exc.value.hint) == ("--platform darwin/arm64: images are built for Linux platforms",
                                                   "valid platforms: linux/amd64, linux/arm64")
    with pytest.raises(UserError, match=r"^--platform linux/s390x: not a known platform"):
        Platform.parse("linux/s390x", "--platform", linux, "images are built for Linux platforms")


def test_ci_runners_are_checked_at_their_line(tmp_path: Path) -> None:
    (tmp_path / "polybuild.toml").write_text('[ci]\nshard-size = 1\n\n[ci.runners]\n"linux/amd64" = "ubuntu"\n'
                                             '"linux/x86_64" = "ubuntu"\n')
    proc = run_polybuild("ci", "matrix", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "polybuild.toml:6: unknown platform 'linux/x86_64'" in proc.stderr
    assert "valid platforms: linux/amd64" in proc.stderr


def test_config_platforms_are_located_config_errors(tmp_path: Path) -> None:
    (tmp_path / "polybuild.toml").write_text('name = "x"\nplatforms = ["linux/amd64", "darwin/arm46"]\n')
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path)
    assert str(exc.value).startswith("polybuild.toml:2: unknown platform 'darwin/arm46'\n  hint: did you mean "
                                     "'darwin/arm64'?")
