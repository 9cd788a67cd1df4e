"""Container images: `dockerfile` renders the image's template and builds it with an engine; `assemble` layers
artifacts onto a base with polybuild's Go helper (no engine, no daemon, bit-identical output).

Both take their artifacts from the tasks they depend on, never from whatever lies in dist/, so an image cannot
contain a stale wheel; both leave `images/<name>.oci.tar` (an OCI layout) and `images/<name>.json` (digest, tags).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polybuild.builders import BuildContext, Builder, Step, ToolProbe
from polybuild.support.errors import UserError

if TYPE_CHECKING:
    from polybuild.container.templates import Rendered
    from polybuild.plan import Task
    from polybuild.support.platforms import Platform
    from polybuild.workspace import Workspace


def image_platforms(task: Task, ctx: BuildContext) -> list[Platform]:
    """The platforms one image task builds: its own (a Dockerfile build), else the image's configured ones."""
    from polybuild.support.platforms import Platform

    if task.platform:
        return [task.platform]
    names = task.target.info.spec["platforms"]
    return [Platform.parse(n) for n in names] if names else [linux(ctx.host)]


def linux(platform: Platform) -> Platform:
    from polybuild.support.platforms import Platform

    return Platform("linux", platform.arch)


def artifacts(task: Task, ctx: BuildContext, platform: Platform) -> tuple[list[Path], list[Path]]:
    """(wheels, binaries) built by the tasks this image depends on, for `platform`."""
    wheels, binaries = [], []
    for dep in sorted(task.deps):
        dep_platform = ctx.tasks[dep].platform
        if dep_platform is not None and linux(dep_platform) != platform:
            continue
        for path in ctx.artifacts.get(dep, []):
            if path.suffix == ".whl":
                wheels.append(path)
            elif path.suffix in ("", ".exe") and os.access(path, os.X_OK):
                binaries.append(path)
    return wheels, binaries


def labels(task: Task, ctx: BuildContext) -> dict[str, str]:
    from polybuild.workspace.files import head_revision

    found = {"org.opencontainers.image.title": task.target.name, "org.opencontainers.image.version": ctx.version}
    revision = head_revision(ctx.ws.root)
    if revision:
        found["org.opencontainers.image.revision"] = revision
    return {**found, **task.target.info.spec["labels"]}


def tags(task: Task, ctx: BuildContext) -> list[str]:
    return [t.replace("{version}", ctx.version) for t in task.target.info.spec["tags"]]


def ref_name(task: Task, ctx: BuildContext) -> str:
    return f"{task.target.name}:{ctx.version}"


def render(task: Task, ws: Workspace, platform: Platform) -> Rendered:
    """The image's Dockerfile for `platform`, its combination of choices checked first."""
    from polybuild.container import templates

    spec = task.target.info.spec
    context = templates.variables(task.target.name, spec, chosen(task), builtins(task, ws, platform))
    return templates.render(ws.root, spec["template"], context)


def builtins(task: Task, ws: Workspace, platform: Platform) -> dict[str, str]:
    spec = task.target.info.spec
    return {"image": task.target.name, "version": ws.release_version, "platform": platform.name, "os": platform.os,
            "arch": platform.arch, "variant": task.variant.name if task.variant else "",
            "target": spec["target"] or ""}


def chosen(task: Task) -> dict[str, str]:
    """The choices this task fixes: the one that follows the build variant (`variant = "device"`: the cuda build
    renders device=cuda, the default build the choice's first value), then the command line's `--var`."""
    spec = task.target.info.spec
    follows = spec["variant"]
    by_variant = {follows: task.variant.name if task.variant else spec["choices"][follows][0]} if follows else {}
    return {**by_variant, **spec.get("set", {})}


def not_in_matrix(task: Task, ws: Workspace, platform: Platform) -> str | None:
    """Why this variant and platform make no image, as a matrix's `exclude` would say: the variant is not a value
    of the choice that follows it, or the combination is excluded."""
    from polybuild.container import templates

    spec = task.target.info.spec
    follows = spec["variant"]
    if follows and task.variant and task.variant.name not in spec["choices"][follows]:
        return (f"variant '{task.variant.name}' is not one of its {follows} choices "
                f"({', '.join(spec['choices'][follows])})")
    values = {**{var: values[0] for var, values in spec["choices"].items()}, **builtins(task, ws, platform),
              **chosen(task)}
    combo = templates.excluded(spec["exclude"], values)
    return f"{templates.describe(combo)} is excluded in its config" if combo else None


def _copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def context_files(task: Task, ctx: BuildContext) -> list[str]:
    return ctx.inputs.files(task.target) if task.target.info.spec["files"] else []


def engine_identity(python: str, extra: tuple[str, ...]) -> str | list[str]:
    """The container engine (`extra`: the configured one) that builds Dockerfile images: its `--version`."""
    from polybuild.container.engines import detect

    engine = detect(extra[0])
    return "no container engine" if engine is None else [engine.path, "--version"]


def helper_identity(python: str, extra: tuple[str, ...]) -> str:
    """polybuild's Go helper that assembles images: the digest of its binary."""
    import hashlib

    from polybuild.container import helper
    from polybuild.support.cachedir import default_dir

    with open(helper.find(default_dir()), "rb") as f:
        return "polybuild-helper " + hashlib.file_digest(f, "sha256").hexdigest()


class _ImageBuilder(Builder):
    """What both image builders share: the layout becomes one archive plus a small JSON description."""

    builds_image = True

    def target_key_slice(self, task: Task, ctx: BuildContext) -> dict[str, Any]:
        return {"image": task.target.info.spec, "version": ctx.version, "labels": labels(task, ctx)}

    def finish(self, task: Task, ctx: BuildContext, layout: Path, out: Path, platforms: list[Platform]) -> Step:
        def action() -> None:
            from polybuild.container.layout import digest, pack, write_json

            dest = out / "images"
            dest.mkdir(parents=True, exist_ok=True)
            pack(layout, dest / f"{task.target.name}.oci.tar")
            write_json(dest / f"{task.target.name}.json", {
                "image": task.target.name, "digest": digest(layout), "tags": tags(task, ctx),
                "platforms": [p.name for p in platforms], "ref": ref_name(task, ctx)})

        return Step(action=action, describe="pack the OCI layout")


class DockerfileBuilder(_ImageBuilder):
    """One task per platform, each a Dockerfile build with the engine."""

    name = "dockerfile"
    key_toolchains = ("container-engine",)
    weight = 5.0

    def toolchain_probe(self, tool: str, task: Task) -> ToolProbe:
        return ToolProbe(tool, (task.target.info.engine,), engine_identity)

    def unavailable(self, task: Task, ws: Workspace) -> str | None:
        """An optional image needs an installed engine and base images that are present or can be pulled."""
        import shlex
        import subprocess

        from polybuild.container import engines, lint
        from polybuild.support.platforms import Platform, host

        platform = task.platform or Platform("linux", host().arch)
        outside = not_in_matrix(task, ws, platform)
        if outside or not task.target.info.spec["optional"]:
            return outside
        engine = engines.detect(task.target.info.engine)
        if engine is None:
            return "no container engine is installed (buildah, docker with buildx, or podman)"
        try:
            text = render(task, ws, platform).text
        except UserError:
            return None  # a template error is not a reason to skip: preflight reports it
        for base in lint.base_images(text):
            proc = subprocess.run(engine.pull_argv(base), capture_output=True, text=True, timeout=300)
            if proc.returncode != 0:
                return (f"base image {base} cannot be pulled: {_pull_error(proc.stderr)} "
                        f"(`{shlex.join([engine.name, 'pull', base])}` shows the engine's full message)")
        return None

    def preflight(self, task: Task, ctx: BuildContext) -> None:
        from polybuild.container import engines, lint

        engines.require(task.target.info.engine, task.target.id)
        spec = task.target.info.spec
        for secret_id, var in spec["secrets"].items():
            if var not in ctx.env:
                raise UserError(f"{task.target.id}: secret '{secret_id}' reads ${var}, which is not set",
                                hint=f"export {var} before building (its value never enters logs or caches)")
        for platform in image_platforms(task, ctx):
            stages = lint.stages(render(task, ctx.ws, platform).text)
            if spec["target"] and spec["target"] not in stages:
                raise UserError(f"{task.target.id}: unknown stage '{spec['target']}'",
                                hint=f"stages in {spec['template']}: {', '.join(stages)}")

    def steps(self, task: Task, ctx: BuildContext, out: Path) -> list[Step]:
        from polybuild.container import engines

        spec = task.target.info.spec
        engine = engines.require(task.target.info.engine, task.target.id)
        platform = image_platforms(task, ctx)[0]
        work = out.parent / "image"
        request = engines.BuildRequest(
            dockerfile=work / "Dockerfile", context=work / "context", layout=work / "layout",
            ref=ref_name(task, ctx), platform=platform.name, timestamp=ctx.env["SOURCE_DATE_EPOCH"],
            target=spec["target"], tags=tags(task, ctx), build_args=spec["build-args"], secrets=spec["secrets"],
            no_cache=bool(spec.get("no-cache")))
        scratch_tag = f"localhost/polybuild-scratch/{task.target.name}:{uuid.uuid4().hex[:12]}"

        def assemble() -> None:
            request.context.mkdir(parents=True)
            request.dockerfile.write_text(render(task, ctx.ws, platform).text)
            wheels, binaries = artifacts(task, ctx, platform)
            for wheel in wheels:
                _copy(wheel, request.context / "wheelhouse" / wheel.name)
            for binary in binaries:
                _copy(binary, request.context / "bin" / binary.name)
            for rel in context_files(task, ctx):
                _copy(ctx.ws.root / rel, request.context / rel)

        steps = [Step(action=assemble, describe="render the Dockerfile and assemble the build context")]
        steps += [Step(argv, cwd=work) for argv in engine.build_steps(request, scratch_tag)]
        return [*steps, self.finish(task, ctx, request.layout, out, [platform])]


class AssembleBuilder(_ImageBuilder):
    """One task for all the image's platforms: the helper writes one multi-platform index."""

    name = "assemble"
    key_toolchains = ("polybuild-helper",)
    all_platforms_in_one_task = True
    weight = 2.0

    def toolchain_probe(self, tool: str, task: Task) -> ToolProbe:
        return ToolProbe(tool, identify=helper_identity)

    def unavailable(self, task: Task, ws: Workspace) -> str | None:
        """An optional assembled image needs polybuild's Go helper: installed, or built from polybuild's checkout."""
        from polybuild.container import helper

        if not task.target.info.spec["optional"]:
            return None
        try:
            helper.find(_helper_cache(ws))
        except UserError as exc:  # one line: the message's first and last (a failed `go build`'s cause)
            lines = [line.strip() for line in exc.message.splitlines() if line.strip()]
            reason = lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1]}"
            return f"{reason} ({exc.hint})" if exc.hint else reason
        return None

    def preflight(self, task: Task, ctx: BuildContext) -> None:
        from polybuild.container import helper

        helper.find(_helper_cache(ctx.ws))
        if any(d.startswith("py:") for d in task.deps) and not task.target.info.spec["site-packages"]:
            raise UserError(f"{task.target.id}: the image holds wheels but does not say where to install them",
                            hint='set site-packages, e.g. "/usr/local/lib/python3.11/site-packages"')

    def steps(self, task: Task, ctx: BuildContext, out: Path) -> list[Step]:
        from polybuild.container import helper

        work = out.parent / "image"
        platforms = image_platforms(task, ctx)
        spec_path, layout = work / "spec.json", work / "layout"

        def prepare() -> None:
            from polybuild.container.layout import write_json

            work.mkdir(parents=True)
            write_json(spec_path, self.spec(task, ctx, platforms, work))

        binary = helper.find(_helper_cache(ctx.ws))
        return [Step(action=prepare, describe="install wheels and describe the layers"),
                Step([binary, "image", "build", "--spec", str(spec_path), "--layout", str(layout)], cwd=work),
                self.finish(task, ctx, layout, out, platforms)]

    def spec(self, task: Task, ctx: BuildContext, platforms: list[Platform], work: Path) -> dict[str, Any]:
        """The Go helper's image spec: one set of layers per platform (binaries, installed wheels, files)."""
        conf = task.target.info.spec
        per_platform = []
        for platform in platforms:
            wheels, binaries = artifacts(task, ctx, platform)
            layers = []
            if wheels:
                root = work / "wheels" / platform.slug
                install_wheels(wheels, root, conf)
                layers.append({"comment": "wheels: " + ", ".join(w.name for w in wheels),
                               "entries": [{"src": str(root), "dest": "/"}]})
            if binaries:
                layers.append({"comment": "binaries", "entries": [
                    {"src": str(b), "dest": f"/usr/local/bin/{b.name}", "mode": 0o755} for b in binaries]})
            files = context_files(task, ctx)
            if files:
                workdir = conf["workdir"] or "/"
                layers.append({"comment": "files", "entries": [
                    {"src": str(ctx.ws.root / f), "dest": f"{workdir.rstrip('/')}/{f}"} for f in files]})
            per_platform.append({"platform": platform.name, "layers": layers})
        return {
            "name": ref_name(task, ctx), "base": _base(conf["from"], ctx.ws.root),
            "created": int(ctx.env["SOURCE_DATE_EPOCH"]), "platforms": per_platform,
            # An unset entrypoint or cmd is left out, so the base's own stays.
            "config": {"entrypoint": conf["entrypoint"] or None, "cmd": conf["cmd"] or None, "env": conf["env"],
                       "workdir": conf["workdir"] or "", "labels": labels(task, ctx)},
        }


def _base(base: str, root: Path) -> str:
    if base.startswith("oci:") and not Path(base[4:]).is_absolute():
        return f"oci:{root / base[4:]}"
    return base


def install_wheels(wheels: list[Path], root: Path, conf: dict[str, Any]) -> None:
    """Install wheels under `root` laid out as in the image, so RECORD and scripts hold the image's paths."""
    from installer import install
    from installer.destinations import SchemeDictionaryDestination
    from installer.sources import WheelFile

    site = conf["site-packages"]
    inside = {"purelib": site, "platlib": site, "scripts": "/usr/local/bin", "data": "/usr/local",
              "headers": "/usr/local/include"}
    scheme = {k: str(root / v.lstrip("/")) for k, v in inside.items()}
    destination = SchemeDictionaryDestination(scheme, interpreter=conf["python"], script_kind="posix")
    for wheel in wheels:
        with WheelFile.open(wheel) as source:
            install(source, destination, {"INSTALLER": b"polybuild\n"})


def _helper_cache(ws: Workspace) -> Path:
    """Where the Go helper is built when it is not installed: the workspace's cache (also with --no-cache)."""
    from polybuild.support.cachedir import for_workspace

    return for_workspace(ws.root, ws.config["cache-dir"])


def _pull_error(stderr: str) -> str:
    """One line of an engine's failed pull: the innermost three causes of its last line (the engines' errors are Go
    chains such as `Error: initializing source docker://python:3.11: pinging container registry
    registry-1.docker.io: Get "https://...": dial tcp: lookup registry-1.docker.io: no such host`)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return "no error output"
    return ": ".join(lines[-1].removeprefix("Error: ").split(": ")[-3:])
