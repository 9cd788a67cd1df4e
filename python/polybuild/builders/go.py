"""Go binaries with `go build -trimpath`, the version stamped through -ldflags -X; and `go test ./...`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from polybuild.builders import BuildContext, Builder, Step
from polybuild.toolchains import require

if TYPE_CHECKING:
    from polybuild.plan import Task


class GoBuilder(Builder):
    name = "go"
    tools = ("go",)

    def steps(self, task: Task, ctx: BuildContext, out: Path) -> list[Step]:
        t = task.target
        go = require("go", t.id)
        conf = ctx.config["go"]
        cgo = t.settings.get("cgo")
        plat = task.platform or ctx.host
        env = {
            "CGO_ENABLED": "1" if (conf["cgo"] if cgo is None else cgo) else "0",
            "GOOS": plat.os,
            "GOARCH": plat.arch,
        }
        ldflags = go_quoted(["-X", f"{conf['version-variable']}={ctx.version}", *conf["ldflags"]])
        steps = []
        for binary, pkg in t.info["binaries"].items():
            argv = [go, "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags]
            if conf["tags"]:
                argv += ["-tags", ",".join(conf["tags"])]
            argv += ["-o", str(out / (binary + plat.exe_suffix)), "./" + pkg if pkg != "." else "."]
            steps.append(Step(argv, cwd=t.dir, env=env))
        return steps


def go_quoted(args: list[str]) -> str:
    """One -ldflags string that `go build` splits back into exactly `args` (cmd/internal/quoted's rules): an
    argument with a space or quote is quoted, so no value (a version, an ldflags entry) can become several flags."""
    from polybuild.errors import UserError

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
    tools = ("go",)

    def steps(self, task: Task, ctx: BuildContext, out: Path) -> list[Step]:
        return [Step([require("go", task.target.id), "test", "./..."], cwd=task.target.dir)]
