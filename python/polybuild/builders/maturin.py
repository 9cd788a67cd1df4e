"""PyO3 extension wheels with `maturin build`: the configured profile (LTO, codegen-units), the variant's Cargo
features, the target interpreter, and the platform's Rust target. maturin picks abi3 tags from the crate's pyo3
features itself."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from polybuild.builders import (
    BuildContext,
    Builder,
    Step,
    ToolProbe,
    provision_steps,
    provisioned_for,
    python_settings,
    wheel_pattern,
)
from polybuild.builders.cargo import profile_args
from polybuild.support.toolchains import find, require

if TYPE_CHECKING:
    from polybuild.plan import Task
    from polybuild.workspace import Target


class MaturinBuilder(Builder):
    name = "maturin"
    required_tools = ("cargo",)  # maturin: on PATH, or provisioned (`preflight`)
    key_toolchains = ("rustc", "cargo", "maturin", "python")
    env_inputs = ("RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CC", "CXX", "CFLAGS", "LDFLAGS", "MACOSX_DEPLOYMENT_TARGET")
    platform_sensitive = True
    binary_wheel = True
    weight = 10.0
    published_names = staticmethod(wheel_pattern)

    def config_slice(self, task: Task, ctx: BuildContext) -> dict[str, Any]:
        return {"rust": ctx.config["rust"], "python": python_settings(ctx)}

    def toolchain_probe(self, tool: str, task: Task) -> ToolProbe:
        """maturin can be provisioned from the package's [build-system] requires (its version pins)."""
        if tool == "maturin":
            return ToolProbe(tool, provision=maturin_requirements(task.target), present=maturin_on_path)
        return ToolProbe(tool)

    def preflight(self, task: Task, ctx: BuildContext) -> None:
        if not provisioned_for(task, ctx, self.toolchain_probe("maturin", task)):
            require("maturin", f"{task.target.id} ({task.builder})")

    def is_abi3(self, target: Target) -> bool:
        return target.info.abi3

    def import_names(self, target: Target) -> tuple[str, ...]:
        """The extension's module (`[tool.maturin] module-name`, else the crate's name)."""
        module = target.info.module_name or target.info.crate.replace("-", "_")
        return (module.split(".", 1)[0],)

    def steps(self, task: Task, ctx: BuildContext, out: Path) -> list[Step]:
        t = task.target
        tool_env = ctx.toolchains.provisioned(self.toolchain_probe("maturin", task))
        maturin = tool_env.bin("maturin") if tool_env else require("maturin", t.id)
        argv = [
            maturin, "build", "--manifest-path", t.info.crate_manifest, "--interpreter", ctx.python,
            "--out", str(out), *profile_args(ctx, task),
        ]
        if ctx.config["python"]["sdist"] or t.settings.get("sdist"):
            argv.append("--sdist")
        return [
            *provision_steps(tool_env),
            Step(argv, cwd=t.dir),
            Step(action=lambda: _remap(out, ctx), describe="remove build paths from the wheel's SBOM"),
        ]


def maturin_requirements(target: Target) -> tuple[str, ...]:
    """What a provisioned maturin is installed from: the package's [build-system] requires (which name maturin,
    with the versions the package supports), or maturin alone."""
    from polybuild.builders.pep517 import requirement_names

    requires = tuple(target.info.build_requires)
    return requires if "maturin" in requirement_names(list(requires)) else (*requires, "maturin")


def maturin_on_path(python: str, requirements: tuple[str, ...]) -> bool:
    """Whether a maturin is installed (on PATH or beside polybuild's interpreter): `auto` uses that one."""
    return find("maturin") is not None


def _remap(out: Path, ctx: BuildContext) -> None:
    from polybuild.builders.wheels import remap_sbom_paths

    for wheel in out.glob("*.whl"):
        remap_sbom_paths(wheel, ctx.ws.root)
