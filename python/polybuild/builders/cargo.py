"""Rust crates with `cargo build` (binaries and cdylibs), and `cargo test`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polybuild.builders import BuildContext, Builder, Step
from polybuild.support.toolchains import require

if TYPE_CHECKING:
    from polybuild.plan import Task
    from polybuild.support.platforms import Platform


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f'"{value}"' if isinstance(value, str) else str(value)


def profile_args(ctx: BuildContext, task: Task) -> list[str]:
    """`--profile` plus `--config` overrides from [rust], and path remapping so outputs do not embed our paths."""
    rust = ctx.config["rust"]
    profile = rust["profile"]
    args = ["--profile", profile]
    for key in ("lto", "codegen-units", "strip"):
        if rust[key] is not None:
            args += ["--config", f"profile.{profile}.{key}={_toml(rust[key])}"]
    remaps = [f"--remap-path-prefix={ctx.ws.root}=."]
    cargo_home = os.environ.get("CARGO_HOME") or str(Path.home() / ".cargo")
    remaps.append(f"--remap-path-prefix={cargo_home}=/cargo")
    target_dir = task.target.info.target_dir
    if target_dir and not Path(target_dir).is_relative_to(ctx.ws.root):
        remaps.append(f"--remap-path-prefix={target_dir}=/target")
    args += ["--config", "build.rustflags=[" + ", ".join(_toml(r) for r in remaps) + "]"]
    if rust["locked"]:
        args.append("--locked")
    if task.platform and task.platform != ctx.host:
        args += ["--target", task.platform.rust_triple]
    if task.features:
        args += ["--features", ",".join(task.features)]
    return args


def profile_dir(profile: str) -> str:
    return "debug" if profile in ("dev", "test") else profile


class CargoBuilder(Builder):
    name = "cargo"
    required_tools = ("cargo",)
    key_toolchains = ("rustc", "cargo")
    env_inputs = ("RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CC", "CXX", "CFLAGS", "CXXFLAGS", "LDFLAGS")
    platform_sensitive = True
    weight = 8.0

    def config_slice(self, task: Task, ctx: BuildContext) -> dict[str, Any]:
        return {"rust": ctx.config["rust"]}

    def steps(self, task: Task, ctx: BuildContext, out: Path) -> list[Step]:
        t = task.target
        cargo = require("cargo", t.id)
        argv = [cargo, "build", "--manifest-path", str(t.manifest), "-p", t.info.crate, *profile_args(ctx, task)]
        if t.info.bins:
            argv.append("--bins")
        if t.info.cdylibs or t.info.staticlibs:
            argv.append("--lib")
        return [
            Step(argv, cwd=Path(t.info.cargo_workspace)),
            Step(action=lambda: self._collect(task, ctx, out), describe=f"copy artifacts of {t.id} to dist"),
        ]

    def _collect(self, task: Task, ctx: BuildContext, out: Path) -> None:
        t = task.target
        base = Path(t.info.target_dir)
        if task.platform and task.platform != ctx.host:
            base /= task.platform.rust_triple
        base /= profile_dir(ctx.config["rust"]["profile"])
        out.mkdir(parents=True, exist_ok=True)
        for name in self.published_names(task, ctx.host):
            shutil.copy2(base / name, out / name)

    def published_names(self, task: Task, host: Platform) -> list[str]:
        t, plat = task.target, task.platform or host
        return [*(b + plat.exe_suffix for b in built_bins(task)),
                *(_cdylib_file(c, plat.os) for c in t.info.cdylibs),
                *(staticlib_file(s, plat.os) for s in t.info.staticlibs)]


def built_bins(task: Task) -> list[str]:
    """The crate's bins that `cargo build --bins` builds: those whose `required-features` the build enables (the
    default features and the variant's, with what they enable in turn)."""
    info = task.target.info
    requires = info.bin_requires
    if not requires:
        return info.bins
    table = info.feature_table
    enabled: set[str] = set()
    pending = ["default", *task.features] if "default" in table else list(task.features)
    while pending:
        feature = pending.pop()
        if feature not in enabled:
            enabled.add(feature)
            pending += table.get(feature, [])
    return [b for b in info.bins if set(requires.get(b, ())) <= enabled]


def _cdylib_file(lib: str, os_name: str) -> str:
    lib = lib.replace("-", "_")
    return {"darwin": f"lib{lib}.dylib", "windows": f"{lib}.dll"}.get(os_name, f"lib{lib}.so")


def staticlib_file(lib: str, os_name: str) -> str:
    return f"{lib}.lib" if os_name == "windows" else f"lib{lib}.a"


class CargoTestBuilder(Builder):
    name = "cargo-test"
    required_tools = ("cargo",)
    key_toolchains = ("rustc", "cargo")
    weight = 8.0

    def steps(self, task: Task, ctx: BuildContext, out: Path) -> list[Step]:
        t = task.target
        argv = [require("cargo", t.id), "test", "--manifest-path", str(t.manifest), "-p", t.info.crate]
        if task.features:
            argv += ["--features", ",".join(task.features)]
        return [Step(argv, cwd=Path(t.info.cargo_workspace))]
