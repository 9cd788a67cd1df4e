"""Go binaries with `go build -trimpath`, the version stamped through -ldflags -X; and `go test ./...`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from polybuild.builders import BuildContext, Builder, Step, cgo, goremote
from polybuild.support.errors import UserError
from polybuild.support.toolchains import require

if TYPE_CHECKING:
    from polybuild.plan import Task
    from polybuild.support.platforms import Platform


class GoBuilder(Builder):
    name = "go"
    required_tools = ("go",)
    key_toolchains = ("go",)
    env_inputs = ("GOFLAGS", "GOEXPERIMENT", "GOAMD64", "GOARM64", "CC", "CGO_CFLAGS", "CGO_LDFLAGS")
    platform_sensitive = True
    stamps_version = True  # -ldflags -X [go] version-variable=<version>
    weight = 2.0
    remote_executable = True  # without cgo (goremote.py)

    def config_slice(self, task: Task, ctx: BuildContext) -> dict[str, Any]:
        return {"go": ctx.config["go"], "version": ctx.go_stamp(task.target.id)}

    def preflight(self, task: Task, ctx: BuildContext) -> None:
        clashes = task.target.info.binary_clashes
        if clashes:
            name, pkgs = next(iter(clashes.items()))
            raise UserError(f"{task.target.id}: the main packages {' and '.join(pkgs)} would both be built as "
                            f"{name}, one overwriting the other",
                            hint="rename one package's directory, or move it into a module of its own")
        cgo.check_links(task, ctx)
        ctx.go_stamp(task.target.id)  # a module versioned on its own that declares no version stops here

    def steps(self, task: Task, ctx: BuildContext, out: Path) -> list[Step]:
        t = task.target
        go = require("go", t.id)
        conf = ctx.config["go"]
        plat = task.platform or ctx.host
        with_cgo = cgo.cgo_enabled(t, ctx.ws.targets, conf)
        env = {
            "CGO_ENABLED": "1" if with_cgo else "0",
            "GOOS": plat.os,
            "GOARCH": plat.arch,
        }
        lib_dir = out.parent / "cgo-lib"
        env.update(cgo.environment(task, ctx, lib_dir))
        version = ctx.go_stamp(t.id)
        ldflags = [*(["-X", f"{conf['version-variable']}={version}"] if version else []), *conf["ldflags"]]
        steps = []
        cwd = t.dir
        if cgo.linked_crates(task, ctx):  # the libraries' paths enter Go's build ID: without one it is reproducible
            ldflags.append("-buildid=")
        if "CGO_LDFLAGS" in env:
            steps.append(Step(action=lambda: cgo.collect_libraries(task, ctx, lib_dir),
                              describe=f"copy the static libraries {t.id} links into {lib_dir}"))
        if t.settings.get("cgo-stage") and cgo.path_links(task, ctx):
            stage_root = out.parent / "src"
            cwd = stage_root / ctx.ws.rel(t.dir)
            env["GOWORK"] = "off"
            steps.append(Step(action=lambda: cgo.stage_module(task, ctx, stage_root),
                              describe=f"copy {t.id} into {stage_root} with the static libraries it links by path"))
        remote_files = self._remote_files(task, ctx, with_cgo)
        if remote_files is not None:
            steps += goremote.download_step(go, remote_files, task, ctx, env)
        for pkg, file_name in zip(t.info.binaries.values(), self.published_names(task, ctx.host), strict=True):
            args = ["build", "-trimpath", "-buildvcs=false", "-ldflags", go_quoted(ldflags)]
            if conf["tags"]:
                args += ["-tags", ",".join(conf["tags"])]
            package = "./" + pkg if pkg != "." else "."
            step = Step([go, *args, "-o", str(out / file_name), package], cwd=cwd, env=env)
            if remote_files is not None:
                step.remote = goremote.remote(go, task, ctx, remote_files, (args, out / file_name, package), env)
            steps.append(step)
        return steps

    def _remote_files(self, task: Task, ctx: BuildContext, with_cgo: bool) -> list[str] | None:
        """The workspace files of the remote action, when `[remote] execute` has Go builds and this one may run
        there (not with cgo: it says why, once per run)."""
        if ctx.executor is None or self.name not in ctx.executor.builders:
            return None
        if with_cgo:
            ctx.executor.decline(task.id, goremote.CGO)
            return None
        return goremote.source_files(task, ctx)

    def published_names(self, task: Task, host: Platform) -> list[str]:
        suffix = (task.platform or host).exe_suffix
        return [binary + suffix for binary in task.target.info.binaries]


def go_quoted(args: list[str]) -> str:
    """One -ldflags string that `go build` splits back into exactly `args` (cmd/internal/quoted's rules): an
    argument with a space or quote is quoted, so no value (a version, an ldflags entry) can become several flags."""
    from polybuild.support.errors import UserError

    quoted = []
    for arg in args:
        if arg and not any(c.isspace() or c in "'\"" for c in arg):
            quoted.append(arg)
        elif "'" not in arg:
            quoted.append(f"'{arg}'")
        elif '"' not in arg:
            quoted.append(f'"{arg}"')
        else:
            raise UserError(f"-ldflags argument {arg!r} holds both kinds of quote, which go cannot pass",
                            hint="[go] ldflags: drop one kind of quote")
    return " ".join(quoted)


class GoTestBuilder(Builder):
    name = "go-test"
    required_tools = ("go",)
    key_toolchains = ("go",)
    weight = 2.0

    def steps(self, task: Task, ctx: BuildContext, out: Path) -> list[Step]:
        return [Step([require("go", task.target.id), "test", "./..."], cwd=task.target.dir)]
