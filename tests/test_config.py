"""Config validation: every mistake is reported with file, line and a way to fix it, and exits 2."""

from __future__ import annotations

import pytest

from conftest import run_polybuild
from polybuild.config.model import load_config
from polybuild.config.model import reference as config_reference
from polybuild.support.errors import ConfigError
from polybuild.support.tomlfile import locate

PY_HEAD = """
[project]
name = "app"
version = "1.0.0"

"""


def error_of(root) -> str:
    with pytest.raises(ConfigError) as exc:
        load_config(root)
    return str(exc.value)


def test_malformed_toml_names_file_line_and_column(workspace):
    root = workspace({"polybuild.toml": "[rust]\nlto = \n"})
    proc = run_polybuild("graph", cwd=root)
    assert proc.returncode == 2
    assert "polybuild.toml:2:" in proc.stderr
    assert "invalid TOML" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_key_suggests_the_right_one_with_its_line(workspace):
    root = workspace({"pyproject.toml": PY_HEAD + "[tool.polybuild]\ndist-dir = 'out'\n\n[tool.polybuild.rust]\n"
                      "profile = 'release'\nltto = 'fat'\n"})
    message = error_of(root)
    assert message.startswith("pyproject.toml:10: unknown key 'ltto' in [tool.polybuild.rust]")
    assert "did you mean 'lto'?" in message


def test_unknown_key_in_inline_table_is_located(workspace):
    root = workspace({"polybuild.toml": "[variants]\ncuda = { features = ['cuda'], platfroms = [] }\n"})
    message = error_of(root)
    assert message.startswith("polybuild.toml:2: unknown key 'platfroms'")
    assert "did you mean 'platforms'?" in message


def test_wrong_type_is_an_error(workspace):
    root = workspace({"polybuild.toml": "jobs = 'four'\n"})
    assert error_of(root) == "polybuild.toml:1: 'jobs' must be an integer, not a string"


def test_list_items_are_type_checked(workspace):
    root = workspace({"polybuild.toml": "[targets.app.tasks.test]\ncmd = ['pytest', 3]\n"})
    assert "'targets.app.tasks.test.cmd[1]' must be a string, not an integer" in error_of(root)


def test_bad_choice_lists_the_valid_ones(workspace):
    root = workspace({"polybuild.toml": "[rust]\nlto = 'fast'\n"})
    message = error_of(root)
    assert message.startswith("polybuild.toml:2: 'rust.lto' is 'fast'; expected one of")
    assert "did you mean 'fat'?" in message


def test_unknown_platform_in_variant(workspace):
    root = workspace({"polybuild.toml": "[variants.cuda]\nfeatures = ['cuda']\nplatforms = ['linux/x86_64']\n"})
    message = error_of(root)
    assert message.startswith("polybuild.toml:3: unknown platform 'linux/x86_64'")


def test_two_default_variants_are_rejected(workspace):
    root = workspace({"polybuild.toml": "[variants.a]\ndefault = true\n[variants.b]\ndefault = true\n"})
    assert "more than one default variant" in error_of(root)


def test_defaults_fill_missing_keys(workspace):
    root = workspace({"polybuild.toml": "[rust]\nlto = 'thin'\n"})
    config = load_config(root)
    assert config["dist-dir"] == "dist"
    assert config["rust"] == {"profile": "release", "lto": "thin", "codegen-units": None, "strip": None,
                              "locked": False}
    assert config["go"]["version-variable"] == "main.version"


def test_pyproject_without_tool_table_gets_defaults(workspace):
    root = workspace({"pyproject.toml": PY_HEAD})
    assert load_config(root)["python-roots"] == ["."]


def test_locate_handles_headers_dotted_keys_and_quotes():
    text = '[tool.polybuild]\nrust.lto = "fat"\n\n[tool.polybuild.targets."my-app".tasks.test]\ncmd = []\n'
    assert locate(text, ["tool", "polybuild", "rust", "lto"]) == 2
    assert locate(text, ["tool", "polybuild", "targets", "my-app", "tasks", "test", "cmd"]) == 5
    assert locate(text, ["tool", "polybuild", "targets", "my-app", "tasks", "test", "missing"]) == 4


def test_every_key_is_documented():
    from pathlib import Path

    reference = (Path(__file__).parent.parent / "docs" / "config-reference.md").read_text(encoding="utf-8")
    assert reference == config_reference(), (
        "docs/config-reference.md is stale: regenerate it with `polybuild config-reference > "
        "docs/config-reference.md`")
