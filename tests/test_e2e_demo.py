"""End to end on the demo monorepo (examples/serving) with the real cargo, maturin, hatchling and go."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import REPO, copy_example, polybuild_env, run_polybuild
from containers import path_without

pytestmark = pytest.mark.e2e

# --- the documents' walkthroughs, run as a reader would (doctest-style) -------------------------------------------
#
# Every ```console block of these documents is run: each `$ COMMAND` line (a trailing `# comment` dropped) runs from
# a directory shaped like this repository (examples/serving copied into it), in document order, with one cache.
# `polybuild` is this checkout's; any other command runs as written (an argv, no shell). The lines under a command,
# up to the next `$` line or the end of the block, are what it shows; they must match what it prints (stdout, then
# stderr), after this normalisation of both sides:
#   - a line that is only `...` stands for any number of lines, and `...` inside a line for any text;
#   - what differs from machine to machine or run to run is replaced by a placeholder: wall times (`41.2s`), file
#     sizes (`1,853,440 bytes`), digests (`sha256:` and hex digits), the glibc version of a manylinux tag, and
#     the host's architecture (`x86_64`/`aarch64`, `linux/amd64`/`linux/arm64`).
# A command that shows `error:` must exit non-zero, any other must exit 0. The walkthrough runs without a
# container engine on PATH (so the demo's frontend image is skipped the same way everywhere, and nothing pulls
# gigabytes of CUDA base), which is the case the README describes: the operator image builds anyway.
DOCUMENTS = ("README.md", "docs/usage.md", "docs/containers.md")
DEMO_BUILD = "polybuild -C examples/serving build --variant cpu --variant cuda"
NORMALISE = [
    (re.compile(r"sha256:[0-9a-f]{12,64}"), "sha256:<digest>"),
    (re.compile(r"\b\d[\d,]* bytes\b"), "<size> bytes"),
    (re.compile(r"\b\d+(\.\d+)?s\b"), "<time>"),
    (re.compile(r"manylinux_\d+_\d+"), "manylinux_<glibc>"),
    (re.compile(r"(?<![A-Za-z0-9])(x86_64|aarch64)\b"), "<arch>"),
    (re.compile(r"\blinux/(amd64|arm64)\b"), "linux/<arch>"),
]


@dataclass
class Example:
    """One `$ command` of a document's console block, and the lines shown under it."""

    where: str  # document:line
    command: str
    shown: list[str] = field(default_factory=list)


def console_examples(document: str) -> list[Example]:
    examples: list[Example] = []
    block: list[Example] | None = None
    for number, line in enumerate((REPO / document).read_text().splitlines(), 1):
        if line.startswith("```"):
            block = [] if block is None and line == "```console" else None
        elif block is not None and line.startswith("$ "):
            block.append(Example(f"{document}:{number}", line[2:]))
            examples.append(block[-1])
        elif block:
            block[-1].shown.append(line)
    for example in examples:
        while example.shown and not example.shown[-1].strip():
            example.shown.pop()
    return examples


def normalise(line: str) -> str:
    for pattern, placeholder in NORMALISE:
        line = pattern.sub(placeholder, line)
    return line


def shows(shown: list[str], printed: list[str]) -> bool:
    """Whether the printed lines are what the document shows (doctest's ELLIPSIS, after `normalise`)."""
    pattern = "".join(r"(?:.*\n)*?" if line.strip() == "..." else
                      re.escape(normalise(line)).replace(re.escape("..."), ".*?") + "\n" for line in shown)
    return re.fullmatch(pattern, "".join(normalise(line) + "\n" for line in printed)) is not None


def run_example(example: Example, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = shlex.split(example.command, comments=True)
    if argv[0] == "polybuild":
        argv = [sys.executable, "-m", "polybuild", *argv[1:]]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)


@dataclass
class Walkthrough:
    root: Path  # the demo's copy
    ran: list[tuple[Example, subprocess.CompletedProcess[str]]]  # every example, in order, and what it printed
    build_report: dict  # the report the README's build wrote (later commands build again and rewrite it)

    def printed(self, command: str) -> subprocess.CompletedProcess[str]:
        proc = next((proc for example, proc in self.ran if example.command.startswith(command)), None)
        assert proc is not None, f"the documents no longer show `$ {command}`"
        return proc


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory) -> Walkthrough:
    """Every console example of the documents run in order (see above), and what each printed."""
    top = tmp_path_factory.mktemp("walkthrough")
    root = copy_example("serving", top / "examples" / "serving")
    env = {**demo_env(root), "PATH": path_without(top, "buildah", "podman", "docker")}
    ran, report = [], {}
    for example in (e for document in DOCUMENTS for e in console_examples(document)):
        ran.append((example, run_example(example, top, env)))
        if example.command == DEMO_BUILD:
            report = json.loads((root / "dist" / "build-report.json").read_text())
    return Walkthrough(root, ran, report)


@pytest.fixture(scope="module")
def demo_build(walkthrough) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The demo built once, cpu and cuda variants, from outside its directory (`-C`), as the README does it, and
    what the build printed."""
    proc = walkthrough.printed(DEMO_BUILD)
    assert proc.returncode == 0, proc.stderr
    return walkthrough.root, proc


@pytest.fixture(scope="module")
def demo(demo_build) -> Path:
    return demo_build[0]


def demo_env(root: Path) -> dict[str, str]:
    """The demo's own cache, shared by the tests of this module (each test otherwise gets an empty one)."""
    return polybuild_env(POLYBUILD_CACHE_DIR=str(root.parent / "cache"))


def wheel(dist: Path, pattern: str) -> Path:
    (found,) = dist.glob(pattern)
    return found


def install(wheels: list[Path], site: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target",
                    str(site), *map(str, wheels)], check=True)
    return site


def python_in(site: Path, code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, cwd=site)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_artifacts_have_the_right_names_and_tags(demo):
    dist = demo / "dist"
    cpu = wheel(dist, "serving_runtime-0.3.0-cp310-abi3-*linux*_x86_64.whl")
    cuda = wheel(dist / "cuda", "serving_runtime-0.3.0-cp310-abi3-*linux*_x86_64.whl")
    assert cpu.name == cuda.name and cpu.read_bytes() != cuda.read_bytes()  # same name, never the same path
    pure = wheel(dist, "serving-0.3.0-py3-none-any.whl")
    with zipfile.ZipFile(pure) as z:
        metadata = z.read("serving-0.3.0.dist-info/METADATA").decode()
    assert "Requires-Dist: serving-runtime==0.3.0" in metadata
    assert "Provides-Extra: server" in metadata
    with zipfile.ZipFile(cpu) as z:
        assert any(n.startswith("serving_runtime/_native") and n.endswith(".so") for n in z.namelist())


def test_extension_imports_and_works_per_variant(demo, tmp_path):
    dist = demo / "dist"
    code = "import serving_runtime as s; print(s.top_k([1.0, 3.0, 2.0], 2), s.device(), s.__version__)"
    cpu_site = install([wheel(dist, "serving_runtime-*.whl"), wheel(dist, "serving-*.whl")], tmp_path / "cpu")
    assert python_in(cpu_site, code) == "[(1, 3.0), (2, 2.0)] cpu 0.3.0"
    cuda_site = install([wheel(dist / "cuda", "serving_runtime-*.whl")], tmp_path / "cuda")
    assert python_in(cuda_site, code).endswith("cuda 0.3.0")
    # the pure package runs on top of the extension wheel it pins
    assert python_in(cpu_site, "from serving.cli import main; main(['rank', '1.0', '3.0', '2.0', '--k', '2'])"
                     ).split() == ["1", "2"]


def test_go_binary_runs_with_the_stamped_version(demo):
    out = subprocess.run([str(demo / "dist" / "operator"), "version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "operator 0.3.0"


def test_rust_binary_is_built_per_variant(demo):
    for sub, device in (("", "cpu"), ("cuda", "cuda")):
        binary = demo / "dist" / sub / "servingctl"
        out = subprocess.run([str(binary), "version"], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == f"servingctl 0.3.0 ({device})"
    out = subprocess.run([str(demo / "dist" / "servingctl"), "top-k", "2", "1.0", "3.0", "2.0"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "2"]


def test_documents_print_what_they_show(walkthrough):
    """The README's walkthrough (and the console examples of docs/usage.md and docs/containers.md): each command
    prints what the document shows under it, and fails exactly when it shows an error."""
    assert sum(e.where.startswith("README.md") and e.shown != [] for e, _ in walkthrough.ran) >= 3
    drifted = []
    for example, proc in walkthrough.ran:
        printed = proc.stdout.splitlines() + proc.stderr.splitlines()
        expect_error = any("error:" in line for line in example.shown)
        if not shows(example.shown, printed) or (proc.returncode != 0) != expect_error:
            drifted.append(f"{example.where}: $ {example.command}  (exit {proc.returncode})\n  shown:\n"
                           + "\n".join(f"    {line}" for line in example.shown) + "\n  printed:\n"
                           + "\n".join(f"    {line}" for line in printed))
    assert not drifted, "the documents drifted from what the commands print:\n" + "\n".join(drifted)


def test_a_drifted_walkthrough_is_caught():
    """The comparison fails on what matters (a count, an artifact, its order) and not on what the normalisation
    allows (times, sizes, digests, the machine's glibc and architecture)."""
    shown = ["...", "polybuild: 9 built in 41.2s", "  dist/operator  3,175,186 bytes  sha256:5805e01aa6d4de4c",
             "  dist/serving_runtime-0.3.0-cp310-abi3-manylinux_2_34_x86_64.whl  ...", "  report: ..."]
    printed = ["[0/9] start  go:operator", "[1/9] done   go:operator  0.3s", "polybuild: 9 built in 62.1s",
               "  dist/operator  3,180,001 bytes  sha256:0123456789abcdef",
               "  dist/serving_runtime-0.3.0-cp310-abi3-manylinux_2_39_aarch64.whl  230,892 bytes  sha256:18c0",
               "  report: dist/build-report.json"]
    assert shows(shown, printed)
    assert not shows(shown, [line.replace("9 built", "8 built") for line in printed])
    assert not shows(shown, [printed[0], *printed[2:4], printed[5]])  # an artifact gone
    assert not shows(shown, [*printed[:3], printed[4], printed[3], printed[5]])  # another order
    assert not shows(shown, [*printed, "  dist/images/operator-image.oci.tar  1 bytes  sha256:0123456789ab"])


def test_sdist_is_built_on_request(demo):
    with tarfile.open(demo / "dist" / "serving-0.3.0.tar.gz") as sdist:
        assert "serving-0.3.0/src/serving/cli.py" in sdist.getnames()


def test_build_report_lists_every_artifact_with_its_digest(walkthrough):
    demo, report = walkthrough.root, walkthrough.build_report
    assert report["status"] == "ok"
    by_path = {a["path"]: a for a in report["artifacts"]}
    assert sorted(p.split("/")[-1].split("-")[0] for p in by_path) == [
        "operator", "operator", "operator", "serving", "serving", "serving_client", "serving_runtime",
        "serving_runtime", "servingctl", "servingctl"]
    assert any(p.startswith("dist/cuda/") and a["variant"] == "cuda" for p, a in by_path.items())
    for path, entry in by_path.items():
        data = (demo / path).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["size"] == len(data)
    tasks = {t["id"]: t for t in report["tasks"]}
    assert set(tasks) == {"go:operator", "py:serving", "py:serving-client", "py:serving-runtime",
                          "py:serving-runtime [cuda]", "rust:serving-cli", "rust:serving-cli [cuda]",
                          "image:operator-image"}
    assert all(t["status"] == "built" and t["duration_s"] > 0 for t in tasks.values())
    assert tasks["py:serving-runtime"]["inputs_sha256"] == tasks["py:serving-runtime [cuda]"]["inputs_sha256"]
    assert len({t["inputs_sha256"] for t in tasks.values() if t["inputs_sha256"]}) == 5  # one per target with files
    # the image the demo builds anywhere (no engine here), with the digest it is pushed by
    (image,) = report["images"]
    described = json.loads((demo / "dist/images/operator-image.json").read_text())
    assert image == {"image": "operator-image", "target": "image:operator-image",
                     "path": "dist/images/operator-image.oci.tar", "digest": described["digest"],
                     "platforms": described["platforms"], "tags": []}


def test_invalid_variant_for_platform_is_rejected_before_anything_runs(demo):
    proc = run_polybuild("build", "--variant", "metal", cwd=demo)
    assert proc.returncode == 2
    assert "variant 'metal' cannot be built for linux/amd64" in proc.stderr
    assert "'metal' is valid for: darwin/arm64" in proc.stderr
    assert "start" not in proc.stderr


def test_tests_run_in_graph_order_against_built_wheels(walkthrough):
    """The README's `run test`, after its build."""
    demo, proc = walkthrough.root, walkthrough.printed("polybuild -C examples/serving run test")
    assert proc.returncode == 0, proc.stderr
    for task in ("rust:serving-core:test", "rust:serving-cli:test", "go:api:test", "go:operator:test",
                 "py:serving:test", "py:serving-client:test"):
        assert f"done   {task}" in proc.stderr
    pytest_log = (demo / ".polybuild" / "logs" / "py_serving_test.log").read_text()
    assert " passed" in pytest_log


def test_custom_task_runs(demo):
    proc = run_polybuild("run", "lint", cwd=demo, env=demo_env(demo))
    assert proc.returncode == 0, proc.stderr
    assert "done   py:serving:lint" in proc.stderr


def test_clean_builds_in_two_directories_are_bit_identical(demo, tmp_path):
    other = copy_example("serving", tmp_path / "elsewhere" / "serving")
    proc = run_polybuild("build", "--no-cache", cwd=other)
    assert proc.returncode == 0, proc.stderr
    for rel in ("operator", "servingctl", "serving-0.3.0.tar.gz"):
        assert (other / "dist" / rel).read_bytes() == (demo / "dist" / rel).read_bytes()
    for pattern in ("serving_runtime-*.whl", "serving-*.whl"):
        assert wheel(other / "dist", pattern).read_bytes() == wheel(demo / "dist", pattern).read_bytes()
    # the operator image too: the same archive, so the same digest (each build made its own Go helper)
    archive = "dist/images/operator-image.oci.tar"
    assert (other / archive).read_bytes() == (demo / archive).read_bytes()
    digests = [json.loads((root / "dist/images/operator-image.json").read_text())["digest"] for root in (other, demo)]
    assert digests[0] == digests[1] and digests[0].startswith("sha256:")
