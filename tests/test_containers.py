"""Container images for real: templates rendered and linted, multi-stage Dockerfiles built by buildah on bases
made here, images assembled from artifacts by the Go helper, pushed to and pulled from a real registry."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from conftest import checkout_copy, copy_example, polybuild_env, run_polybuild, write_tree
from containers import (
    BUSYBOX_BASE,
    PYTHON_BASE,
    build_helper,
    buildah,
    buildah_env,
    busybox_rootfs,
    commit_rootfs,
    debian_python_rootfs,
    path_without,
    pip_wheel,
)
from servers import Registry

pytestmark = pytest.mark.e2e

APP_TOML = """
version = "1.2.3"

[images.app]
template = "container/Dockerfile.j2"
artifacts = ["demo-app", "tool"]
files = ["container/pip.whl"]
vars = {{ base = "{base}" }}
choices = {{ flavor = ["runtime", "dev"] }}
exclude = [{{ flavor = "dev", platform = "linux/arm64" }}]
tags = ["localhost/app:{{version}}"]

[images.tool-image]
artifacts = ["tool"]
from = "scratch"
entrypoint = ["/usr/local/bin/tool"]
platforms = ["linux/amd64", "linux/arm64"]
"""

SOURCES = {
    "pkg/pyproject.toml": """
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"

        [project]
        name = "demo-app"
        version = "1.2.3"

        [project.scripts]
        demo-app = "demo_app:main"
    """,
    "pkg/demo_app/__init__.py": """
        def main():
            print("demo-app ok")
    """,
    "tool/go.mod": "module example.com/tool\n\ngo 1.21\n",
    "tool/main.go": """
        package main

        import "fmt"

        var version = "dev"

        func main() { fmt.Println("tool " + version) }
    """,
    "container/Dockerfile.j2": """
        {# The app image: a base stage with the wheels installed, then the chosen flavour. #}
        {% include "stages/base.j2" %}
        {% include "stages/" ~ flavor ~ ".j2" %}
    """,
    "container/stages/base.j2": """
        FROM {{ base }} AS base
        COPY container/pip.whl /tmp/pip.whl
        COPY wheelhouse/ /tmp/wheelhouse/
        RUN python3 /tmp/pip.whl/pip install --break-system-packages --no-index --no-cache-dir \\
            --find-links /tmp/wheelhouse demo-app \\
            && rm -rf /tmp/wheelhouse /tmp/pip.whl
    """,
    "container/stages/runtime.j2": """
        FROM base AS runtime
        COPY bin/tool /usr/local/bin/tool
        ENTRYPOINT ["demo-app"]
    """,
    "container/stages/dev.j2": """
        FROM base AS dev
        RUN echo dev > /etc/flavor
    """,
}


@pytest.fixture(scope="session")
def engine_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """buildah with a private store holding the two base images, and the Go helper built from go/."""
    env = buildah_env(tmp_path_factory.mktemp("buildah"))
    commit_rootfs(env, busybox_rootfs(tmp_path_factory.mktemp("busybox") / "busybox.tar"), BUSYBOX_BASE)
    commit_rootfs(env, debian_python_rootfs(), PYTHON_BASE)
    env["POLYBUILD_HELPER"] = str(build_helper(tmp_path_factory.mktemp("helper")))
    return env


@pytest.fixture
def app(tmp_path: Path) -> Path:
    root = write_tree(tmp_path / "ws", {**SOURCES, "polybuild.toml": APP_TOML.format(base=PYTHON_BASE)})
    shutil.copy(pip_wheel(), root / "container" / "pip.whl")
    return root


def pb(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_polybuild(*args, cwd=root, env=polybuild_env(**env))


def load_image(env: dict[str, str], archive: Path, tmp: Path) -> str:
    """A buildah working container from a built `.oci.tar`."""
    layout = tmp / f"layout-{archive.parent.name}-{len(list(tmp.iterdir()))}"
    with tarfile.open(archive) as tar:
        tar.extractall(layout, filter="data")
    return buildah(env, "from", "--quiet", f"oci:{layout}")


def image_file(archive: Path, path: str) -> bytes | None:
    """A file's content in the top layer that has it, read from the image's layers."""
    with tarfile.open(archive) as outer:
        def blob(digest: str) -> bytes:
            return outer.extractfile(f"blobs/sha256/{digest.split(':')[1]}").read()

        manifest = json.loads(blob(json.loads(outer.extractfile("index.json").read())["manifests"][0]["digest"]))
        if "manifests" in manifest:  # an assembled image: an index, its first platform
            manifest = json.loads(blob(manifest["manifests"][0]["digest"]))
        for layer in reversed(manifest["layers"]):
            with tarfile.open(fileobj=io.BytesIO(blob(layer["digest"]))) as tar:
                member = next((m for m in tar.getmembers() if m.name.lstrip("./") == path), None)
                if member is not None:
                    return tar.extractfile(member).read()
    return None


# --- templates ---------------------------------------------------------------------------------------------------

def test_render_marks_each_template_and_applies_choices(app: Path, engine_env: dict[str, str]) -> None:
    out = pb(app, engine_env, "container", "render", "app", "--check")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "# >>> Dockerfile.j2" in text and "# >>> stages/base.j2" in text and "# <<< stages/runtime.j2" in text
    assert f"FROM {PYTHON_BASE} AS base" in text and "FROM base AS runtime" in text and "dev" not in text
    dev = pb(app, engine_env, "container", "render", "app", "--var", "flavor=dev")
    assert "RUN echo dev > /etc/flavor" in dev.stdout and "runtime" not in dev.stdout


def test_render_errors_name_template_line_and_valid_choices(app: Path, engine_env: dict[str, str]) -> None:
    bad = pb(app, engine_env, "container", "render", "app", "--var", "flavor=gpu")
    assert bad.returncode == 2 and "'gpu' is not a valid flavor" in bad.stderr and "runtime, dev" in bad.stderr
    combo = pb(app, engine_env, "container", "render", "app", "--var", "flavor=dev", "--platform", "linux/arm64")
    assert combo.returncode == 2 and "flavor=dev with platform=linux/arm64" in combo.stderr
    assert "allowed: flavor=runtime" in combo.stderr
    (app / "container/stages/runtime.j2").write_text("FROM base AS runtime\nCOPY bin/tool {{ tool_dir }}/tool\n")
    undefined = pb(app, engine_env, "container", "render", "app")
    assert undefined.returncode == 2, undefined.stderr
    assert "container/stages/runtime.j2:2: undefined variable: 'tool_dir' is undefined" in undefined.stderr
    (app / "container/Dockerfile.j2").write_text('{% include "stages/missing.j2" %}\n')
    missing = pb(app, engine_env, "container", "render", "app")
    assert missing.returncode == 2 and "container/Dockerfile.j2:1: unknown template 'stages/missing.j2'" in \
        missing.stderr
    assert "Traceback" not in undefined.stderr + missing.stderr


DEMO_BASES = {"cpu": "docker.io/library/python:3.11-slim-bookworm",
              "cuda": "docker.io/nvidia/cuda:12.4.1-runtime-ubuntu22.04"}


def frontend_tasks(root: Path, variants: list[str], platforms: list[str]) -> tuple[Any, dict[tuple[str, str], Any]]:
    """The demo's frontend image tasks as `polybuild build --variant ... --platform ...` plans them, by (variant,
    platform), with the loaded workspace and the plan."""
    from polybuild import api
    from polybuild.plan import build_plan, choose_dimensions

    loaded = api.load(root)
    plan = build_plan(loaded.ws, loaded.dag, loaded.dag.needs(["image:frontend"]),
                      *choose_dimensions(loaded.ws, variants, platforms))
    tasks = {(t.variant.name if t.variant else "default", t.platform.name): t for t in plan.tasks.values()
             if t.target.id == "image:frontend"}
    return (loaded, plan), tasks


def test_demo_image_renders_the_base_of_each_variant(tmp_path: Path) -> None:
    """The device choice follows the build variant (`variant = "device"`): each task of the demo's frontend image
    renders its own variant's base, and the combination its config excludes leaves the build saying why."""
    from polybuild.builders.image import not_in_matrix, render
    from polybuild.container.lint import base_images

    root = copy_example("serving", tmp_path / "serving")
    (loaded, _), tasks = frontend_tasks(root, ["cpu", "cuda"], ["linux/amd64", "linux/arm64"])
    assert sorted(tasks) == [("cuda", "linux/amd64"), ("cuda", "linux/arm64"), ("default", "linux/amd64"),
                             ("default", "linux/arm64")]  # cpu changes nothing in the image: the default build
    excluded = tasks.pop(("cuda", "linux/arm64"))
    assert not_in_matrix(excluded, loaded.ws, excluded.platform) == \
        "device=cuda with platform=linux/arm64 is excluded in its config"
    rendered = {key: base_images(render(t, loaded.ws, t.platform).text) for key, t in tasks.items()
                if not not_in_matrix(t, loaded.ws, t.platform)}
    assert rendered == {("cuda", "linux/amd64"): [DEMO_BASES["cuda"]], ("default", "linux/amd64"): [DEMO_BASES["cpu"]],
                        ("default", "linux/arm64"): [DEMO_BASES["cpu"]]}
    # `container render` renders the default build's device; --var picks another, as before
    cuda = run_polybuild("container", "render", "frontend", "--var", "device=cuda", cwd=root)
    assert cuda.returncode == 0 and f"FROM {DEMO_BASES['cuda']} AS base" in cuda.stdout, cuda.stderr


def test_variant_that_is_not_a_device_builds_no_image(tmp_path: Path) -> None:
    """metal is not a device of the frontend: on its own platform (darwin) no image is planned, saying why, and
    nothing only the image would need; where it could run, the image leaves the build saying why."""
    from polybuild.builders.image import not_in_matrix

    root = copy_example("serving", tmp_path / "serving")
    (_, plan), tasks = frontend_tasks(root, ["metal"], ["darwin/arm64"])
    assert tasks == {}
    assert ("image:frontend", "variant 'metal' is built for darwin/arm64, not for linux/arm64") in plan.skipped
    assert not any("linux" in t.id for t in plan.tasks.values())
    config = root / "polybuild.toml"
    config.write_text(config.read_text().replace('platforms = ["darwin/arm64"]', 'platforms = []'))
    (loaded, _), tasks = frontend_tasks(root, ["metal"], ["linux/amd64"])
    (task,) = tasks.values()
    assert task.variant.name == "metal"
    assert not_in_matrix(task, loaded.ws, task.platform) == \
        "variant 'metal' is not one of its device choices (cpu, cuda)"


@pytest.mark.parametrize(("change", "message", "hint"), [
    ('variant = "device"', "variant follows 'device', which is not one of its choices", "choices: flavor"),
    ('variant = "flavor"', "'runtime' is not a variant, and flavor follows the variant", "variants: cpu, cuda"),
])
def test_variant_choice_is_checked(app: Path, change: str, message: str, hint: str) -> None:
    config = app / "polybuild.toml"
    toml = config.read_text().replace('tags = ["localhost/app', f'{change}\ntags = ["localhost/app', 1)
    config.write_text(toml + '\n[variants.cpu]\ndefault = true\n\n[variants.cuda]\n')
    out = run_polybuild("graph", cwd=app)
    assert out.returncode == 2 and "polybuild.toml:" in out.stderr and message in out.stderr, out.stderr
    assert hint in out.stderr and "Traceback" not in out.stderr


def test_check_lints_stages_latest_tags_and_secrets(app: Path, engine_env: dict[str, str]) -> None:
    (app / "container/stages/runtime.j2").write_text(
        "FROM debian AS runtime\nARG HF_TOKEN=abc\nCOPY --from=builder /x /x\nFROM busybox:latest\n")
    out = pb(app, engine_env, "container", "render", "app", "--check")
    assert out.returncode == 1
    problems = [line for line in out.stderr.splitlines() if line.startswith("Dockerfile:")]
    assert len(problems) == 4, out.stderr
    assert "(from stages/runtime.j2): image 'debian' has no tag" in problems[0]
    assert "ARG HF_TOKEN looks like a secret" in problems[1]
    assert "stage 'builder' is not defined" in problems[2]
    assert "image 'busybox:latest' uses the `latest` tag" in problems[3]


# --- Dockerfile images with buildah ------------------------------------------------------------------------------

def test_multistage_image_builds_from_artifacts_and_runs(app: Path, engine_env: dict[str, str],
                                                         tmp_path: Path) -> None:
    out = pb(app, engine_env, "build")
    assert out.returncode == 0, out.stderr
    archive = app / "dist/images/app.oci.tar"
    described = json.loads((app / "dist/images/app.json").read_text())
    assert described["tags"] == ["localhost/app:1.2.3"] and described["digest"].startswith("sha256:")
    container = load_image(engine_env, archive, tmp_path)
    assert buildah(engine_env, "run", container, "--", "demo-app") == "demo-app ok"
    assert buildah(engine_env, "run", container, "--", "tool") == "tool 1.2.3"
    # The wheel was installed by pip inside the image, from the wheelhouse polybuild assembled.
    listing = buildah(engine_env, "run", container, "--", "python3", "-c",
                      "import demo_app, importlib.metadata as m; print(m.version('demo-app'))")
    assert listing == "1.2.3"
    again = pb(app, engine_env, "build", "--json")
    events = [json.loads(line) for line in again.stdout.splitlines()]
    assert {e["task"]: e["status"] for e in events if e["event"] == "finish"}["image:app"] == "cached"
    # A template edit rebuilds the image, and only the image.
    with open(app / "container/stages/runtime.j2", "a") as f:
        f.write('LABEL note="edited"\n')
    edited = pb(app, engine_env, "build", "--json")
    statuses = {e["task"]: e["status"] for e in map(json.loads, edited.stdout.splitlines()) if e["event"] == "finish"}
    assert statuses["image:app"] == "built" and statuses["py:demo-app"] == "cached", statuses


def test_dev_target_and_failing_run_step(app: Path, engine_env: dict[str, str], tmp_path: Path) -> None:
    dev = pb(app, engine_env, "container", "build", "app", "--var", "flavor=dev")
    assert dev.returncode == 0, dev.stderr
    container = load_image(engine_env, app / "dist/images/app.oci.tar", tmp_path)
    assert buildah(engine_env, "run", container, "--", "cat", "/etc/flavor") == "dev"
    (app / "container/stages/dev.j2").write_text("FROM base AS dev\nRUN echo about to fail && exit 3\n")
    failed = pb(app, engine_env, "container", "build", "app", "--var", "flavor=dev")
    assert failed.returncode == 1
    assert "image:app" in failed.stderr and "about to fail" in failed.stderr  # the step's output is shown


def test_image_is_built_per_variant_with_the_choice_that_follows_it(app: Path, engine_env: dict[str, str],
                                                                    tmp_path: Path) -> None:
    """`variant = "flavor"`: one build of both variants gives two images, each rendered with its own flavor, the
    non-default one under dist/<variant>/ (the demo's cuda frontend on its CUDA base, for real, on local bases)."""
    config = app / "polybuild.toml"
    config.write_text(config.read_text().replace('tags = ["localhost/app', 'variant = "flavor"\ntags = ["localhost/app',
                                                 1) + "\n[variants.runtime]\ndefault = true\n\n[variants.dev]\n")
    out = pb(app, engine_env, "build", "image:app", "--variant", "runtime", "--variant", "dev")
    assert out.returncode == 0, out.stderr
    assert "done   image:app [dev]" in out.stderr and "done   image:app " in out.stderr
    dev = load_image(engine_env, app / "dist/dev/images/app.oci.tar", tmp_path)
    assert buildah(engine_env, "run", dev, "--", "cat", "/etc/flavor") == "dev"
    runtime = load_image(engine_env, app / "dist/images/app.oci.tar", tmp_path)
    assert buildah(engine_env, "run", runtime, "--", "demo-app") == "demo-app ok"


def test_target_stage_unknown_stage_and_missing_secret(app: Path, engine_env: dict[str, str], tmp_path: Path) -> None:
    stage = pb(app, engine_env, "container", "build", "app", "--target", "tests")
    assert stage.returncode == 2 and "unknown stage 'tests'" in stage.stderr and "base, runtime" in stage.stderr
    base = pb(app, engine_env, "container", "build", "app", "--target", "base", "--no-cache")
    assert base.returncode == 0, base.stderr
    described = json.loads((app / "dist/images/app.json").read_text())
    layout = tmp_path / "base-layout"
    with tarfile.open(app / "dist/images/app.oci.tar") as tar:
        tar.extractall(layout, filter="data")
    container = buildah(engine_env, "from", "--quiet", f"oci:{layout}")
    assert buildah(engine_env, "run", container, "--", "demo-app") == "demo-app ok"  # the base stage has the wheel
    assert "/usr/local/bin/tool" not in buildah(engine_env, "run", container, "--", "ls", "/usr/local/bin")
    assert described["digest"].startswith("sha256:")
    toml = app / "polybuild.toml"
    toml.write_text(toml.read_text().replace('tags = ["localhost', 'secrets = { pip_token = "PIP_TOKEN" }\ntags = '
                                             '["localhost', 1))
    secret = pb(app, engine_env, "container", "build", "app")
    assert secret.returncode == 2 and "secret 'pip_token' reads $PIP_TOKEN, which is not set" in secret.stderr


def test_secret_mount_reaches_run_but_not_logs_or_image(app: Path, engine_env: dict[str, str],
                                                        tmp_path: Path) -> None:
    toml = app / "polybuild.toml"
    toml.write_text(toml.read_text().replace('tags = ["localhost', 'secrets = { token = "APP_TOKEN" }\ntags = '
                                             '["localhost', 1))
    digest = hashlib.sha256(b"s3cr3t-value").hexdigest()  # the Dockerfile must not hold the value either
    (app / "container/stages/dev.j2").write_text(
        "FROM base AS dev\nRUN --mount=type=secret,id=token test \"$(sha256sum < /run/secrets/token | cut -c1-64)\""
        f" = {digest} && echo secret-seen > /etc/flavor\n")
    out = pb(app, {**engine_env, "APP_TOKEN": "s3cr3t-value"}, "container", "build", "app", "--var", "flavor=dev")
    assert out.returncode == 0, out.stderr
    assert image_file(app / "dist/images/app.oci.tar", "etc/flavor") == b"secret-seen\n"
    logs = "".join(p.read_text(errors="replace") for p in (app / ".polybuild/logs").glob("*.log"))
    assert "s3cr3t-value" not in logs + out.stderr
    assert b"s3cr3t-value" not in (app / "dist/images/app.oci.tar").read_bytes()


def test_missing_engine(app: Path, engine_env: dict[str, str], tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("go", "git"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    env = {**engine_env, "PATH": f"{bin_dir}:{Path(os.sys.executable).parent}"}
    named = pb(app, env, "build", "image:app")
    assert named.returncode == 2 and "no container engine found" in named.stderr
    assert "apt-get install buildah" in named.stderr
    toml = app / "polybuild.toml"
    toml.write_text(toml.read_text().replace('[images.app]\n', '[images.app]\noptional = true\n'))
    everything = pb(app, env, "build")
    assert everything.returncode == 0, everything.stderr
    assert "note: skipped image:app: no container engine is installed" in everything.stderr
    assert (app / "dist/images/tool-image.oci.tar").is_file()  # the assembled image needs no engine


def test_failed_artifact_skips_its_image(app: Path, engine_env: dict[str, str]) -> None:
    (app / "tool/main.go").write_text("package main\n\nfunc main() { undefined() }\n")
    out = pb(app, engine_env, "build", "--keep-going", "image:app")
    assert out.returncode == 1
    assert "go:tool" in out.stderr and "dependency go:tool failed" in out.stderr + out.stdout
    assert not (app / "dist/images/app.oci.tar").exists()


# --- images assembled from artifacts by the Go helper, and a real registry -------------------------------------------

@pytest.fixture
def registry(tmp_path: Path):
    server = Registry(tmp_path / "registry")
    yield server
    server.stop()


def index_platforms(archive: Path, tmp: Path) -> list[str]:
    with tarfile.open(archive) as tar:
        tar.extractall(tmp, filter="data")
    top = json.loads((tmp / "index.json").read_text())["manifests"][0]["digest"].split(":")[1]
    index = json.loads((tmp / "blobs/sha256" / top).read_text())
    return [f"{m['platform']['os']}/{m['platform']['architecture']}" for m in index["manifests"]]


def test_assembled_image_is_bit_identical_across_checkouts(app: Path, engine_env: dict[str, str],
                                                           tmp_path: Path) -> None:
    other = shutil.copytree(app, tmp_path / "elsewhere")
    first = pb(app, engine_env, "build", "image:tool-image")
    os.utime(other / "tool/main.go", (1, 1))  # different mtimes must not matter
    second = pb(other, engine_env, "build", "image:tool-image")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    a = (app / "dist/images/tool-image.oci.tar").read_bytes()
    b = (other / "dist/images/tool-image.oci.tar").read_bytes()
    assert a == b
    assert index_platforms(app / "dist/images/tool-image.oci.tar", tmp_path / "x") == ["linux/amd64", "linux/arm64"]


def test_push_pull_run_and_promote_through_a_registry(app: Path, engine_env: dict[str, str], tmp_path: Path,
                                                      registry: Registry) -> None:
    ref = f"{registry.host}/team/tool:1.2.3"
    pushed = pb(app, engine_env, "container", "push", "tool-image", "--tag", ref)
    assert pushed.returncode == 0, pushed.stderr
    digest = json.loads((app / "dist/images/tool-image.json").read_text())["digest"]
    assert f"pushed {ref}@{digest}" in pushed.stderr
    buildah(engine_env, "pull", "--quiet", "--tls-verify=false", f"docker://{ref}")
    container = buildah(engine_env, "from", "--quiet", "--tls-verify=false", f"docker://{ref}")
    assert buildah(engine_env, "run", container, "--", "/usr/local/bin/tool") == "tool 1.2.3"
    prod = f"{registry.host}/prod/tool:1.2.3"
    promoted = pb(app, engine_env, "container", "promote", ref, prod)
    assert promoted.returncode == 0, promoted.stderr
    assert json.loads(promoted.stdout)["digest"] == digest
    # Every platform came along: the arm64 image is there by the same index.
    arm = buildah(engine_env, "pull", "--quiet", "--tls-verify=false", "--arch", "arm64", f"docker://{prod}")
    assert arm


def test_registry_down_or_refusing_is_a_clear_failure(app: Path, engine_env: dict[str, str],
                                                      registry: Registry) -> None:
    registry.stop()
    down = pb(app, engine_env, "container", "push", "tool-image", "--tag", f"{registry.host}/tool:1")
    assert down.returncode == 1 and f"cannot connect to registry {registry.host}" in down.stderr
    assert "Traceback" not in down.stderr and "goroutine" not in down.stderr
    missing = pb(app, engine_env, "container", "promote", f"{registry.host}/none:1", f"{registry.host}/x:1")
    assert missing.returncode == 1 and registry.host in missing.stderr


def test_assembled_python_image_installs_wheels_on_a_layout_base(app: Path, engine_env: dict[str, str],
                                                                 tmp_path: Path) -> None:
    base = tmp_path / "python-base"
    buildah(engine_env, "push", "--quiet", PYTHON_BASE, f"oci:{base}")
    with open(app / "polybuild.toml", "a") as f:
        f.write(f"""
[images.app-slim]
artifacts = ["demo-app"]
from = "oci:{base}"
python = "/usr/bin/python3"
site-packages = "/usr/local/lib/python3.11/dist-packages"
entrypoint = ["/usr/local/bin/demo-app"]
labels = {{ "org.opencontainers.image.vendor" = "polybuild tests" }}
""")
    out = pb(app, engine_env, "build", "image:app-slim")
    assert out.returncode == 0, out.stderr
    container = load_image(engine_env, app / "dist/images/app-slim.oci.tar", tmp_path)
    assert buildah(engine_env, "run", container, "--", "/usr/local/bin/demo-app") == "demo-app ok"
    config = json.loads(buildah(engine_env, "inspect", "--type", "container", container))["OCIv1"]["config"]
    assert config["Labels"]["org.opencontainers.image.version"] == "1.2.3"
    assert config["Labels"]["org.opencontainers.image.vendor"] == "polybuild tests"
    assert config["Entrypoint"] == ["/usr/local/bin/demo-app"]


def test_build_args_tags_and_push_of_a_dockerfile_image(app: Path, engine_env: dict[str, str],
                                                        registry: Registry) -> None:
    (app / "container/stages/dev.j2").write_text("FROM base AS dev\nARG NOTE\nRUN echo \"$NOTE\" > /etc/flavor\n")
    ref = f"{registry.host}/app:dev"
    out = pb(app, engine_env, "container", "build", "app", "--var", "flavor=dev", "--build-arg", "NOTE=from-arg",
             "--tag", ref, "--push")
    assert out.returncode == 0, out.stderr
    digest = json.loads((app / "dist/images/app.json").read_text())["digest"]
    assert f"pushed {ref}@{digest}" in out.stderr
    container = buildah(engine_env, "from", "--quiet", "--tls-verify=false", f"docker://{ref}")
    assert buildah(engine_env, "run", container, "--", "cat", "/etc/flavor") == "from-arg"


def test_polybuild_builds_its_own_image(engine_env: dict[str, str], tmp_path: Path) -> None:
    """The self-build's image (wheel, native core, Go helper) on a local Python base with pip."""
    container = buildah(engine_env, "from", "--quiet", PYTHON_BASE)
    wheel = f"/tmp/{pip_wheel().name}"
    buildah(engine_env, "copy", container, str(pip_wheel()), wheel)
    buildah(engine_env, "run", container, "--", "python3", f"{wheel}/pip", "install", "--quiet",
            "--break-system-packages", wheel)
    buildah(engine_env, "config", "--env", "PIP_BREAK_SYSTEM_PACKAGES=1", container)
    # polybuild's own dependencies come from the package index, reached here through the host's CA bundle.
    ca = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
    if ca and Path(ca).is_file():
        buildah(engine_env, "copy", container, ca, "/etc/ssl/certs/host-ca.crt")
        buildah(engine_env, "config", "--env", "PIP_CERT=/etc/ssl/certs/host-ca.crt", container)
    buildah(engine_env, "commit", "--quiet", container, "localhost/pbtest/python-pip:3.11")
    root = checkout_copy(tmp_path / "polybuild")
    out = pb(root, engine_env, "container", "build", "polybuild", "--var", "base=localhost/pbtest/python-pip:3.11")
    assert out.returncode == 0, out.stderr
    image = load_image(engine_env, root / "dist/images/polybuild.oci.tar", tmp_path)
    assert buildah(engine_env, "run", image, "--", "polybuild", "--version") == "polybuild 0.1.0"
    assert buildah(engine_env, "run", image, "--", "polybuild-helper", "version").startswith("polybuild-helper")
    assert buildah(engine_env, "run", image, "--", "python3", "-c", "import polybuild_core; print('native')") == \
        "native"


def test_helper_image_builds_without_an_engine_with_one_digest(tmp_path: Path) -> None:
    """This repository's image of its Go helper (assembled on scratch): built on a machine without buildah, podman
    or docker, in two clean checkouts with their own caches, with the same digest; it holds the binary built."""
    from polybuild.support.platforms import host

    path = path_without(tmp_path, "buildah", "podman", "docker")
    digests = []
    for name in ("one", "two"):
        root = checkout_copy(tmp_path / name / "polybuild")
        env = polybuild_env(PATH=path, POLYBUILD_CACHE_DIR=str(tmp_path / name / "cache"))
        env.pop("POLYBUILD_HELPER", None)
        out = run_polybuild("build", "image:helper", cwd=root, env=env)
        assert out.returncode == 0, out.stderr
        (image,) = json.loads((root / "dist/build-report.json").read_text())["images"]
        assert image["path"] == "dist/images/helper.oci.tar" and image["platforms"] == [f"linux/{host().arch}"]
        assert image["tags"] == ["ghcr.io/polybuild/polybuild-helper:0.1.0"]
        assert image_file(root / image["path"], "usr/local/bin/polybuild-helper") == \
            (root / "dist/polybuild-helper").read_bytes()
        digests.append(image["digest"])
    assert digests[0] == digests[1] and digests[0].startswith("sha256:")


def test_optional_assembled_image_without_the_helper_is_skipped_in_one_line(tmp_path: Path) -> None:
    """Where the Go helper is neither installed nor buildable (no Go), an optional assembled image leaves the build
    with the reason and the rest (a wheel) builds; named, it is an error saying what to install."""
    root = write_tree(tmp_path / "ws", {
        "pkg/pyproject.toml": SOURCES["pkg/pyproject.toml"], "pkg/demo_app/__init__.py": "",
        "notes.txt": "hello\n", "polybuild.toml": '[images.notes]\nfiles = ["notes.txt"]\noptional = true\n'})
    env = polybuild_env(PATH=path_without(tmp_path, "go", "polybuild-helper"))
    env.pop("POLYBUILD_HELPER", None)
    out = run_polybuild("build", "image:notes", "--dry-run", cwd=root, env=env)
    assert out.returncode == 2 and "Go is not installed" in out.stderr, out.stderr
    out = run_polybuild("build", cwd=root, env=env)
    assert out.returncode == 0, out.stderr
    [note] = [line for line in out.stderr.splitlines() if "image:notes" in line]
    assert note == ("note: skipped image:notes: polybuild's Go helper is needed to assemble and push images, and Go "
                    "is not installed (install Go, or put a polybuild-helper binary on PATH)")


def test_podman_engine_from_config(app: Path, engine_env: dict[str, str], tmp_path: Path) -> None:
    """The engine chosen in config; podman shares buildah's command line and storage."""
    assert shutil.which("podman"), "podman is not installed: apt-get install podman (or nox -s tests)"
    with open(app / "polybuild.toml", "a") as f:
        f.write('\n[container]\nengine = "podman"\n')
    out = pb(app, engine_env, "build", "--json", "image:app")
    assert out.returncode == 0, out.stderr
    assert "/usr/bin/podman build" in (app / ".polybuild/logs/image_app.log").read_text()
    container = load_image(engine_env, app / "dist/images/app.oci.tar", tmp_path)
    assert buildah(engine_env, "run", container, "--", "demo-app") == "demo-app ok"


def test_container_platform_must_be_linux(app: Path, engine_env: dict[str, str]) -> None:
    out = pb(app, engine_env, "container", "render", "app", "--platform", "darwin/arm64")
    assert out.returncode == 2 and "images are built for Linux platforms" in out.stderr
    assert "linux/amd64, linux/arm64" in out.stderr
