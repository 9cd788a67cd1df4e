"""Go builds on the remote executor (`[remote] execute = ["go"]`), giving the local build's binary, byte for byte.

The action holds what the local `go build` reads, and nothing of where it is:
- its input root, all in `.polybuild-go/`: in `src/`, the workspace files of the module (its key inputs), of the
  modules it reaches through local `replace`s and, in a go.work workspace, of every module go.work uses (go loads
  them all); in `proxy/`, as a module proxy, the files of the local module download cache that the go.sum and
  go.work.sum among them name (`<module>/@v/<version>.mod` and `.zip`), unless the modules are vendored. Before the
  action, `go mod download` runs here, so that the cache has what the build needs (it fetches nothing when it has).
  The worker needs no network: go verifies each module it reads against go.sum, exactly as here.
- its command: `/bin/sh -c` with a fixed script that points the settings go wants absolute (GOPROXY=file://...,
  GOMODCACHE, GOCACHE, GOTMPDIR) into `.polybuild-go`, wherever the worker put the input root, enters the module's
  directory and runs the local build's `go build` arguments, its `-o` relative to there.
- its environment: the key's variables that go reads (GOFLAGS, GOAMD64, GOEXPERIMENT, any GO* of `env-inputs`;
  no other, which could be a secret), the target's `env`, CGO_ENABLED=0, GOOS, GOARCH,
  GOENV=off (no `go env -w` of the worker's), GOTOOLCHAIN pinned to the local go's version (a worker with another
  Go fails with go's "toolchain not available" rather than build another binary) and a PATH that looks in the Go
  distribution's install directory (/usr/local/go/bin) first.
With -trimpath the paths of the sources, of the module cache and of the toolchain stay out of the binary.

A build with cgo stays here: the action carries no C toolchain, headers or libraries.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from polybuild.builders import DEFAULT_PATH, RemoteCommand, Step, env_names
from polybuild.graph import reach
from polybuild.support.errors import UserError
from polybuild.support.process import run_tool

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import BinaryIO

    from polybuild.builders import BuildContext
    from polybuild.plan import Task

# The one directory of the input root, and the action's working directory: the workspace's files in src/, the
# module proxy in proxy/, the binary in out/, go's caches while it runs. Nothing else at the top, where a worker
# that makes the input root its sandbox's / mounts its system (/usr, /lib, /dev, ...), over a workspace's `lib`.
SCRATCH = ".polybuild-go"
SCRIPT = ('export GOPROXY="file://$PWD/proxy" GOMODCACHE="$PWD/mod" GOCACHE="$PWD/cache" GOTMPDIR="$PWD"; '
          'cd "src/$1" && shift && exec "$@"')
GO_PATH = f"/usr/local/go/bin:{DEFAULT_PATH}"
CGO = "builds with cgo (CGO_ENABLED=1), and a remote action carries no C toolchain or libraries"
SUM_FILES = ("go.sum", "go.work.sum")
_RELEASE = re.compile(r"\bgo version (go\d+\.\d+(?:\.\d+)?(?:(?:rc|beta)\d+)?) ")


def source_files(task: Task, ctx: BuildContext) -> list[str]:
    """The workspace files the module's build reads: its own inputs and those of the modules it replaces by a
    local path, or, with a go.work, of every module the workspace uses."""
    ws, t = ctx.ws, task.target
    own = ctx.inputs.files(t)
    if "go.work" in own:
        modules = {tid for tid, target in ws.targets.items() if target.kind == "go"}
    else:
        modules = reach([t.id], lambda tid: [d for d in ws.targets[tid].deps if ws.targets[d].kind == "go"])
    return sorted({f for tid in modules for f in ctx.inputs.files(ws.targets[tid])})


def sums(ctx: BuildContext, files: list[str]) -> list[tuple[str, str, str]]:
    """(module, version, ".mod" or ".zip") of each checksum line in the go.sum and go.work.sum among `files`."""
    found = []
    for rel in files:
        if rel.rpartition("/")[2] not in SUM_FILES:
            continue
        try:
            text = (ctx.ws.root / rel).read_text(encoding="utf-8", errors="replace")
        except OSError:  # left out by a sparse checkout: go cannot read it here either
            continue
        for line in text.splitlines():
            fields = line.split()
            if len(fields) == 3:
                module, version = fields[0], fields[1]
                go_mod = version.endswith("/go.mod")
                found.append((module, version.removesuffix("/go.mod"), ".mod" if go_mod else ".zip"))
    return found


def vendored(task: Task, ctx: BuildContext, files: list[str]) -> bool:
    """Whether go builds the module from its vendor directory (the module's, or the go.work workspace's), which is
    among the files: then it reads no module cache, and `go mod download` would only fetch what it does not need."""
    base = "." if "go.work" in files else ctx.ws.rel(task.target.dir)
    return ("vendor/modules.txt" if base == "." else f"{base}/vendor/modules.txt") in files


def download_step(go: str, files: list[str], task: Task, ctx: BuildContext, env: dict[str, str]) -> list[Step]:
    """`go mod download` here, first, when go.sum names modules (and they are not vendored): the module cache then
    has what the action's proxy serves."""
    if vendored(task, ctx, files) or not sums(ctx, files):
        return []
    return [Step([go, "mod", "download"], cwd=task.target.dir, env=env)]


def remote(go: str, task: Task, ctx: BuildContext, files: list[str], build: tuple[list[str], Path, str],
           env: dict[str, str]) -> Callable[[BinaryIO], int | None]:
    """For Step.remote: `go <args> -o <output> <package>` (`build`) with the step's environment `env`."""
    executor, ws = ctx.executor, ctx.ws
    assert executor is not None
    args, output, package = build
    module_dir = ws.rel(task.target.dir)
    out = f"out/{output.name}"  # relative to SCRATCH, and so from the module's directory:
    up = "../" * (1 + (0 if module_dir == "." else len(module_dir.split("/"))))
    argv = ["/bin/sh", "-c", SCRIPT, "polybuild-go", module_dir, "go", *args, "-o", up + out, package]
    target_env = {k: str(v) for k, v in task.target.settings.get("env", {}).items()}
    keyed = [n for n in env_names(task, ctx.config) if n.startswith("GO") and n in ctx.env]  # what go reads
    variables = {**{n: ctx.env[n] for n in keyed}, **target_env, **env,
                 "GOENV": "off", "GOTOOLCHAIN": toolchain(ctx), "PATH": GO_PATH}

    def run(log: BinaryIO) -> int | None:
        inputs = {f"{SCRATCH}/src/{rel}": ws.root / rel for rel in files}
        try:
            inputs.update(module_proxy(go, task, ctx, files, {**ctx.env, **target_env, **env}))
        except UserError as exc:  # go cannot say where its module cache is: the build here will say more
            log.write(f"[polybuild] not run remotely: {exc.message}\n".encode())
            return None
        command = RemoteCommand(argv=argv, env=variables, workdir=SCRATCH, files=inputs, outputs={out: output})
        return executor.run(command, log)

    return run


def toolchain(ctx: BuildContext) -> str:
    """GOTOOLCHAIN for the action: the local go's release (`go1.26.0`), so only that Go builds it; `local` for
    a development build of go, which has no release to name."""
    found = _RELEASE.search(ctx.toolchains.versions().get("go", ""))
    return found[1] if found else "local"


def module_proxy(go: str, task: Task, ctx: BuildContext, files: list[str], env: dict[str, str]) -> dict[str, Path]:
    """The files of the local module download cache that go.sum names (those it has), by their path in the
    action's module proxy (`env`: the local build's environment, which says where the cache is)."""
    wanted = [] if vendored(task, ctx, files) else sums(ctx, files)
    if not wanted:
        return {}
    proc = run_tool([go, "env", "GOMODCACHE"], f"{task.target.id}: go env GOMODCACHE", cwd=task.target.dir, env=env)
    download = Path(proc.stdout.strip()) / "cache" / "download"
    proxy = {}
    for module, version, ext in wanted:
        rel = f"{escape(module)}/@v/{escape(version)}{ext}"
        if all(part not in ("", ".", "..") for part in rel.split("/")) and (download / rel).is_file():
            proxy[f"{SCRATCH}/proxy/{rel}"] = download / rel
    return proxy


def escape(path: str) -> str:
    """A module path or version as the module cache spells it (golang.org/x/mod/module.EscapePath): each upper
    case letter as `!` and its lower case."""
    return re.sub(r"[A-Z]", lambda m: "!" + m[0].lower(), path)
