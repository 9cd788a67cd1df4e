"""Builders own their facts: a builder the rest of polybuild has never heard of, registered with one line, is
planned, keyed, preflighted, built, published and put into the CI matrix through what it declares; and no stage
outside builders/ compares builder names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from conftest import PYTHON_SRC
from polybuild import api, builders
from polybuild.builders import BuildContext, Builder, Step, ToolProbe
from polybuild.cache.keys import key_parts
from polybuild.plan import build_plan, choose_dimensions
from polybuild.support.errors import UserError
from polybuild.support.platforms import host

OTHER = "linux/arm64" if host().name != "linux/arm64" else "linux/amd64"


def tiny_identity(python: str, extra: tuple[str, ...]) -> str:
    return "tiny " + " ".join(extra)


class TinyBuilder(Builder):
    """A small builder defined here, not in builders/: it writes one file whose content is the target's name."""

    name = "tiny"
    required_tools = ("git",)
    key_toolchains = ("python", "tiny")
    env_inputs = ("TINY_FLAGS",)
    platform_sensitive = True
    binary_wheel = True  # so the CI matrix gives it the wheel axes
    weight = 42.0

    def config_slice(self, task, ctx: BuildContext) -> dict[str, Any]:
        return {"tiny": {"sdist": ctx.config["python"]["sdist"]}}

    def toolchain_probe(self, tool: str, task) -> ToolProbe:
        return ToolProbe(tool, ("v1",), tiny_identity) if tool == "tiny" else ToolProbe(tool)

    def published_names(self, task, host) -> list[str]:
        return ["tiny.txt"]

    def steps(self, task, ctx: BuildContext, out: Path) -> list[Step]:
        def write() -> None:
            out.mkdir(parents=True, exist_ok=True)
            (out / "tiny.txt").write_text(task.target.name)

        return [Step(action=write, describe="write tiny.txt")]


class SilentBuilder(TinyBuilder):
    """Builds nothing: a failure unless the builder says it may publish nothing."""

    name = "silent"
    publishes_artifacts = True

    def steps(self, task, ctx: BuildContext, out: Path) -> list[Step]:
        return [Step(action=lambda: None, describe="do nothing")]


class QuietBuilder(SilentBuilder):
    name = "quiet"
    publishes_artifacts = False


@pytest.fixture
def tiny_ws(workspace, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A one-package workspace; the tests hand its target to a builder registered with one line."""
    for builder in (TinyBuilder, SilentBuilder, QuietBuilder):
        monkeypatch.setitem(builders.REGISTRY, builder.name, f"{__name__}:{builder.__name__}")
    return workspace({
        "pyproject.toml": """
            [project]
            name = "tinypkg"
            version = "0.1.0"
            [build-system]
            requires = ["hatchling"]
            build-backend = "hatchling.build"
        """,
        "src/tinypkg/__init__.py": "",
        "polybuild.toml": f'platforms = ["{host().name}", "{OTHER}"]\n',
    })


def loaded_with(root: Path, builder: str) -> api.Loaded:
    loaded = api.load(root)
    loaded.ws.targets["py:tinypkg"].builder = builder  # as discovery would name it
    return loaded


def test_a_registered_builder_is_planned_and_keyed_by_its_facts(tiny_ws: Path) -> None:
    loaded = loaded_with(tiny_ws, "tiny")
    variants, platforms = choose_dimensions(loaded.ws, [], [host().name, OTHER])
    plan = build_plan(loaded.ws, loaded.dag, {"py:tinypkg"}, variants, platforms)
    assert sorted((t.platform.name, t.priority) for t in plan.tasks.values()) == sorted(
        [(host().name, 42.0), (OTHER, 42.0)])  # platform_sensitive, weight

    ctx = api._context(loaded, api.CacheOptions(enabled=False))
    task = next(t for t in plan.tasks.values() if t.platform == host())
    parts = key_parts(task, ctx, {})
    assert set(parts.toolchain) == {"python", "tiny"}
    assert ctx.toolchains.versions()["tiny (v1)"] == "tiny v1"  # its own probe, run by Toolchains
    assert "TINY_FLAGS" in parts.env and parts.config["tiny"] == {"sdist": False}
    ctx.env["TINY_FLAGS"] = "-O3"
    assert key_parts(task, ctx, {}).key != parts.key


def test_a_registered_builder_is_preflighted_built_and_published(tiny_ws: Path, monkeypatch) -> None:
    outcome = api.build(loaded_with(tiny_ws, "tiny"))
    assert outcome.ok, [(r.task.id, r.status, r.failed_step) for r in outcome.results]
    assert (tiny_ws / "dist" / "tiny.txt").read_text() == "tinypkg"

    monkeypatch.setattr(TinyBuilder, "required_tools", ("no-such-tool-for-tiny",))
    with pytest.raises(UserError, match="no-such-tool-for-tiny"):
        api.build(loaded_with(tiny_ws, "tiny"))


def test_a_build_that_publishes_nothing_fails_unless_its_builder_allows_it(tiny_ws: Path) -> None:
    assert [r.status for r in api.build(loaded_with(tiny_ws, "silent")).results] == ["failed"]
    assert [r.status for r in api.build(loaded_with(tiny_ws, "quiet")).results] == ["built"]


def test_the_ci_matrix_gives_a_binary_wheel_builder_the_wheel_axes(tiny_ws: Path) -> None:
    from polybuild.ci.matrix import compute

    (tiny_ws / "polybuild.toml").write_text('[ci]\npython = ["3.11", "3.12"]\nlibc = ["manylinux", "musllinux"]\n')
    include = compute(loaded_with(tiny_ws, "tiny"), platforms=["linux/amd64", "linux/arm64"]).include
    assert sorted((e["platform"], e["libc"], e["python"]) for e in include) == [
        (p, libc, py) for p in ("linux/amd64", "linux/arm64") for libc in ("manylinux", "musllinux")
        for py in ("3.11", "3.12")]


NAME_COMPARE = re.compile(r"""\.builder\s*(==|!=|\bin\b|\bnot in\b)|\bbuilder\s*(==|!=)\s*["']""")


def test_no_stage_outside_builders_compares_builder_names() -> None:
    """What a builder is (platform sensitive, a wheel, an image, ...) is asked of the builder, so that adding one
    is its module plus one registry line."""
    package = PYTHON_SRC / "polybuild"
    found = [f"{path.relative_to(package)}:{n}: {line.strip()}"
             for path in sorted(package.rglob("*.py")) if "builders" not in path.relative_to(package).parts
             for n, line in enumerate(path.read_text().splitlines(), 1) if NAME_COMPARE.search(line)]
    assert found == []
