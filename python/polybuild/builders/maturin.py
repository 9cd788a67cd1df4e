"""PyO3 extension wheels with `maturin build`: the configured profile (LTO, codegen-units), the variant's Cargo
features, the target interpreter, and the platform's Rust target. maturin picks abi3 tags from the crate's pyo3
features itself."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from polybuild.builders import BuildContext, Builder, Step, python_settings, wheel_pattern
from polybuild.builders.cargo import profile_args
from polybuild.support.toolchains import require

if TYPE_CHECKING:
    from polybuild.plan import Task
    from polybuild.workspace import Target


class MaturinBuilder(Builder):
    name = "maturin"
    required_tools = ("cargo", "maturin")
    key_toolchains = ("rustc", "cargo", "maturin", "python")
    env_inputs = ("RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CC", "CXX", "CFLAGS", "LDFLAGS", "MACOSX_DEPLOYMENT_TARGET")
    platform_sensitive = True
    binary_wheel = True
    weight = 10.0
    published_names = staticmethod(wheel_pattern)

    def config_slice(self, task: Task, ctx: BuildContext) -> dict[str, Any]:
        return {"rust": ctx.config["rust"], "python": python_settings(ctx)}

    def is_abi3(self, target: Target) -> bool:
        return target.info.abi3

    def import_names(self, target: Target) -> tuple[str, ...]:
        """The extension's module (`[tool.maturin] module-name`, else the crate's name)."""
        module = target.info.module_name or target.info.crate.replace("-", "_")
        return (module.split(".", 1)[0],)

    def steps(self, task: Task, ctx: BuildContext, out: Path) -> list[Step]:
        t = task.target
        maturin = require("maturin", t.id)
        argv = [
            maturin, "build", "--manifest-path", t.info.crate_manifest, "--interpreter", ctx.python,
            "--out", str(out), *profile_args(ctx, task),
        ]
        if ctx.config["python"]["sdist"] or t.settings.get("sdist"):
            argv.append("--sdist")
        return [
            Step(argv, cwd=t.dir),
            Step(action=lambda: _remap(out, ctx), describe="remove build paths from the wheel's SBOM"),
        ]


def _remap(out: Path, ctx: BuildContext) -> None:
    from polybuild.builders.wheels import remap_sbom_paths

    for wheel in out.glob("*.whl"):
        remap_sbom_paths(wheel, ctx.ws.root)
