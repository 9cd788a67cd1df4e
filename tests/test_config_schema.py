"""The JSON Schema of the config (docs/*.schema.json), for editors: generated from the same schema as the validator
and the reference, accepting every config the validator accepts and rejecting the mistakes it rejects."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conftest import run_polybuild
from polybuild.config.model import EDITOR_SUPPORT, SCHEMA, config_prefix
from polybuild.support.errors import ConfigError
from polybuild.support.schema import Validator
from polybuild.support.tomlfile import TomlFile

REPO = Path(__file__).parent.parent
SHAPES = {"polybuild.toml": REPO / "docs" / "polybuild.schema.json",
          "pyproject.toml": REPO / "docs" / "pyproject.schema.json"}


def _schema(shape: str) -> dict[str, Any]:
    return json.loads(SHAPES[shape].read_text(encoding="utf-8"))


@pytest.mark.parametrize("shape", SHAPES)
def test_the_committed_json_schema_is_generated_from_schema_py(shape, tmp_path):
    generated = run_polybuild("config-reference", "--json-schema", shape, cwd=tmp_path).stdout
    path = SHAPES[shape].relative_to(REPO)
    assert SHAPES[shape].read_text(encoding="utf-8") == generated, (
        f"{path} is stale: regenerate it with `polybuild config-reference --json-schema {shape} > {path}`")
    jsonschema.Draft7Validator.check_schema(json.loads(generated))


def _accepted_by_polybuild(name: str, text: str) -> dict[str, Any] | None:
    """The parsed document when polybuild's own validator accepts it as `name`, else None."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None
    prefix = config_prefix(Path(name))
    raw: Any = data
    for key in prefix:
        raw = raw.get(key, {})
    try:
        Validator(TomlFile(Path(name), data, text), prefix).check(SCHEMA, raw, ())
    except ConfigError:
        return None
    return data


def _configs_in_tests() -> list[tuple[str, str]]:
    """Every config the tests write as a literal (`{"polybuild.toml": "..."}`): (file name, text)."""
    found = []
    for module in sorted((REPO / "tests").glob("test_*.py")):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Dict):
                found += [(key.value, value.value) for key, value in zip(node.keys, node.values, strict=True)
                          if isinstance(key, ast.Constant) and key.value in SHAPES
                          and isinstance(value, ast.Constant) and isinstance(value.value, str)]
    return found


def test_every_config_in_the_repository_satisfies_the_json_schema():
    files = [REPO / "pyproject.toml", *sorted(REPO.glob("examples/*/polybuild.toml"))]
    configs = [(path.name, path.read_text(encoding="utf-8"), str(path.relative_to(REPO))) for path in files]
    configs += [(name, text, f"a {name} in tests") for name, text in _configs_in_tests()]
    checked = 0
    for name, text, where in configs:
        data = _accepted_by_polybuild(name, text)
        if data is None:  # a test's deliberately bad config
            continue
        errors = [e.message for e in jsonschema.Draft7Validator(_schema(name)).iter_errors(data)]
        assert not errors, f"{where} is valid for polybuild but not for the JSON Schema: {errors}\n{text}"
        checked += 1
    assert checked >= 20, "the tests' configs were not found"


BAD = {
    "an unknown key": ('jbos = 4\n', ["jbos"]),
    "an unknown key in a table": ('[rust]\nltoo = "fat"\n', ["rust", "ltoo"]),
    "an unknown key in a named entry": ('[targets.app.tasks.test]\ncmdd = ["pytest"]\n', ["cmdd"]),
    "a wrong type": ('jobs = "4"\n', ["jobs"]),
    "a boolean for a number": ('jobs = true\n', ["jobs"]),
    "a wrong item type": ('exclude = ["a", 1]\n', ["exclude"]),
    "a bad choice": ('[rust]\nlto = "thick"\n', ["rust", "lto"]),
    "a number out of bounds": ('jobs = 0\n', ["jobs"]),
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("case", BAD)
def test_the_json_schema_rejects_what_polybuild_rejects(shape, case):
    body, names = BAD[case]
    text = body if shape == "polybuild.toml" else "[project]\nname = 'app'\n\n" + _under_tool(body)
    assert _accepted_by_polybuild(shape, text) is None
    errors = list(jsonschema.Draft7Validator(_schema(shape)).iter_errors(tomllib.loads(text)))
    assert errors, f"the JSON Schema accepts {case}: {text}"
    said = " ".join(f"{list(e.absolute_path)} {e.message}" for e in errors)
    assert all(name in said for name in names), said


def _under_tool(body: str) -> str:
    """A polybuild.toml body as the [tool.polybuild] part of a pyproject.toml."""
    return "[tool.polybuild]\n" + "\n".join("[tool.polybuild." + line[1:] if line.startswith("[") else line
                                             for line in body.splitlines()) + "\n"


def test_a_pyproject_keeps_its_other_tables():
    text = "[project]\nname = 'app'\n\n[tool.ruff]\nline-length = 120\n\n[tool.polybuild]\njobs = 4\n"
    assert _accepted_by_polybuild("pyproject.toml", text) is not None
    jsonschema.validate(tomllib.loads(text), _schema("pyproject.toml"), cls=jsonschema.Draft7Validator)


@pytest.fixture(scope="module")
def taplo(tmp_path_factory) -> Path:
    """Taplo's command line, the engine of Even Better TOML and of Taplo's language server, from the npm registry."""
    if not shutil.which("npm"):
        pytest.skip("npm is not installed: Taplo's command line comes from the npm registry")
    prefix = tmp_path_factory.mktemp("taplo")
    subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(prefix),
                    "@taplo/cli@0.7.0"], check=True, capture_output=True, timeout=600)
    return prefix / "node_modules" / ".bin" / "taplo"


def test_taplo_checks_the_configs_wired_as_the_reference_says(taplo, tmp_path):
    directive, taplo_toml = re.findall(r"```toml\n(.*?)```", EDITOR_SUPPORT, re.S)
    shutil.copytree(REPO / "docs", tmp_path / "docs")

    def check(name: str, text: str) -> subprocess.CompletedProcess[str]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
        return subprocess.run([str(taplo), "check", name], cwd=tmp_path, capture_output=True, text=True, timeout=120)

    pyproject_directive = directive.replace("polybuild.schema.json", "pyproject.schema.json")
    example = (REPO / "examples" / "serving" / "polybuild.toml").read_text(encoding="utf-8")
    assert check("polybuild.toml", directive + example).returncode == 0
    assert check("pyproject.toml", pyproject_directive + (REPO / "pyproject.toml").read_text()).returncode == 0
    bad = check("polybuild.toml", directive + 'jbos = 4\n[rust]\nlto = "thick"\n')
    assert bad.returncode == 1 and "'jbos' was unexpected" in bad.stderr and '"thick" is not one of' in bad.stderr
    bad = check("pyproject.toml", pyproject_directive + "[project]\nname = 'app'\n[tool.polybuild.rust]\nltoo = 1\n")
    assert bad.returncode == 1 and "'ltoo' was unexpected" in bad.stderr
    (tmp_path / ".taplo.toml").write_text(taplo_toml, encoding="utf-8")  # every polybuild.toml, no directive
    assert check("lib/polybuild.toml", 'jobs = 4\n[rust]\nlto = "fat"\n').returncode == 0
    bad = check("lib/polybuild.toml", 'jobs = "4"\n')
    assert bad.returncode == 1 and '"4" is not of type "integer"' in bad.stderr
