#!/usr/bin/env python3
"""Benchmark the license pass (issue 5): scan, check and write everything for a workspace the size of MISSION.md
3.1 (about 800 crates, 200 Python distributions and 300 Go modules) from a warm local cache, under 10 s on 2 cores.

The workspace is real, not synthetic: its manifests depend on popular third-party packages, so the inventory reads
real `cargo metadata`, real `.dist-info` directories and real `go list` output, and detection sees real license
texts. It is created once in `$TMPDIR/polybuild-bench-licenses/ws` (the network is needed only then: crates.io,
PyPI and the Go module proxy) and reused afterwards; every timed run is offline (`CARGO_NET_OFFLINE=true`,
`GOPROXY=off`).

Timed, median of `--reps`, each with the native core and with `POLYBUILD_NO_NATIVE=1`, interleaved; wall time
and the CPU time of the process with the tools it waited for (the machine is shared: CPU time is the steadier one):

  cli deny / attributions / sbom-cyclonedx / sbom-spdx   `python -m polybuild ...` as users run it
  in-process                                            scan() + check + every writer in one process, per stage

The code under test is one commit's python/polybuild and native core (`--rev`, default HEAD; `--worktree` for the
work tree), copied and built once at the start, so that concurrent edits cannot change it mid-run.

    python bench/licenses.py                 # set up (first time: downloads), build the native core, measure
    python bench/licenses.py --reps 3 --no-profile --worktree

Results: bench/results/licenses-<timestamp>.json (every sample) and .md (what bench/README.md quotes), the
all-threads cProfile of one in-process run per mode (-profile-<mode>.txt) and the resolved versions (-pins.txt).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"

# --------------------------------------------------------------------------------------- the workspace's contents

# Cargo members and what each depends on, as `cargo add` arguments: heavy, popular trees (async server, cloud SDKs,
# SQL, data frames, git) so that Cargo.lock reaches the ~800 crates of MISSION.md 3.1.
CARGO_MEMBERS: dict[str, list[list[str]]] = {
    "server": [
        ["tokio", "-F", "full"], ["axum", "-F", "macros,ws,multipart"], ["tower-http", "-F", "full"],
        ["hyper", "-F", "full"], ["tonic"], ["prost"], ["serde", "-F", "derive"], ["serde_json"],
        ["reqwest", "-F", "json,stream,gzip,brotli,zstd,deflate,cookies,blocking,multipart,socks"],
        ["tracing"], ["tracing-subscriber", "-F", "env-filter,json"], ["opentelemetry"], ["opentelemetry_sdk"],
        ["opentelemetry-otlp"], ["metrics"], ["metrics-exporter-prometheus"],
    ],
    "cli": [
        ["clap", "-F", "derive,env"], ["regex"], ["rayon"], ["indicatif"], ["anyhow"], ["thiserror"],
        ["tera"], ["handlebars"], ["chrono", "-F", "serde"], ["uuid", "-F", "v4,serde"], ["gix"],
        ["image"], ["tantivy"], ["lettre"],
    ],
    "cloud": [
        ["aws-config"], ["aws-sdk-s3"], ["aws-sdk-dynamodb"], ["aws-sdk-sqs"], ["object_store", "-F", "aws,gcp,azure"],
    ],
    "data": [
        ["sqlx", "-F", "runtime-tokio,postgres,mysql,sqlite,chrono,uuid,json"],
        ["polars", "-F", "lazy,parquet,csv,json"], ["arrow"],
    ],
}

# The Python package's requirements: heavy, popular trees, with a server extra, toward ~200 distributions.
PY_DEPENDENCIES = ["jupyter", "sphinx", "boto3", "pandas", "scikit-learn", "matplotlib", "sqlalchemy", "requests",
                   "pydantic", "httpx", "aiohttp", "black", "django", "flask", "pytest", "rich", "typer"]
PY_EXTRAS = {"server": ["fastapi[all]", "celery", "uvicorn", "gunicorn", "redis"]}

# Go modules and the packages their main imports: Kubernetes, Helm, registries, cloud SDKs (each AWS and
# Azure service is a module of its own), observability, so that the compiled graph reaches ~300 modules.
GO_MODULES: dict[str, list[str]] = {
    "operator": [
        "k8s.io/client-go/kubernetes", "k8s.io/client-go/tools/clientcmd", "sigs.k8s.io/controller-runtime",
        "helm.sh/helm/v3/pkg/action", "github.com/spf13/cobra", "github.com/spf13/viper",
        "github.com/prometheus/client_golang/prometheus/promhttp",
    ],
    "registry": [
        "github.com/google/go-containerregistry/pkg/v1/remote", "github.com/google/go-containerregistry/pkg/authn",
        "github.com/sigstore/cosign/v2/pkg/cosign", "google.golang.org/grpc",
        "go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc",
    ],
    "cloud": [
        "github.com/aws/aws-sdk-go-v2/config", *(f"github.com/aws/aws-sdk-go-v2/service/{s}" for s in (
            "s3", "dynamodb", "sqs", "sns", "ec2", "iam", "sts", "lambda", "kms", "secretsmanager", "ecr", "eks",
            "cloudwatch", "route53", "rds", "ecs", "cloudformation", "athena", "glue", "kinesis", "firehose",
            "elasticache", "ssm", "organizations", "cognitoidentityprovider")),
        "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob", "github.com/Azure/azure-sdk-for-go/sdk/azidentity",
        "github.com/hashicorp/vault/api", "go.etcd.io/etcd/client/v3", "github.com/redis/go-redis/v9",
        "gorm.io/gorm", "gorm.io/driver/postgres", "github.com/nats-io/nats.go",
    ],
}

# The policy: the licenses these trees use, allowed; multiple versions only warn.
DENY_TOML = """\
[graph]
all-features = true

[licenses]
allow = [
    "Apache-2.0", "Apache-2.0 WITH LLVM-exception", "MIT", "MIT-0", "BSD-2-Clause", "BSD-3-Clause", "ISC",
    "Unicode-3.0", "Unicode-DFS-2016", "Zlib", "MPL-2.0", "CC0-1.0", "Unlicense", "BSL-1.0", "PSF-2.0",
    "Python-2.0", "CDLA-Permissive-2.0", "OpenSSL", "LGPL-2.1-or-later", "0BSD", "BlueOak-1.0.0", "EPL-2.0",
]
confidence-threshold = 0.9
private = { ignore = true }
unused-allowed-license = "allow"

[bans]
multiple-versions = "warn"

[sources]
unknown-registry = "deny"
unknown-git = "deny"
"""

def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run a setup command; on failure show its output (setup errors are otherwise opaque)."""
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} (in {cwd}) failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


# ------------------------------------------------------------------------------------------ workspace: creation


def ensure_workspace(work: Path) -> Path:
    """The benchmark workspace under `work`. Each ecosystem's part is created (and its cache warmed) only when
    missing or when its spec above changed, so a failed or edited setup does not download everything again."""
    ws = work / "ws"
    ws.mkdir(parents=True, exist_ok=True)
    venv = work / "venv"
    write_config(ws, venv)
    parts = [(CARGO_MEMBERS, [ws / "crates", ws / "Cargo.toml", ws / "Cargo.lock"], create_cargo, (ws,)),
             ((PY_DEPENDENCIES, PY_EXTRAS), [ws / "python", venv], create_python, (ws, venv)),
             (GO_MODULES, [ws / "go"], create_go, (ws,))]
    # The three only wait on downloads and tools: side by side.
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(ensure_part, ws, spec, paths, create, *create_args)
                   for spec, paths, create, create_args in parts]
        for future in futures:
            future.result()
    commit(ws)
    return ws


def ensure_part(ws: Path, spec: Any, paths: list[Path], create: Any, *create_args: Any) -> None:
    """Run `create` unless a marker records that it completed for this very spec (else start from scratch)."""
    marker = ws / ".bench" / create.__name__
    wanted = json.dumps(spec, sort_keys=True)
    if marker.is_file() and marker.read_text() == wanted:
        return
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    create(*create_args)
    marker.parent.mkdir(exist_ok=True)
    marker.write_text(wanted)


def write_config(ws: Path, venv: Path) -> None:
    """polybuild.toml (the build interpreter is the venv holding the Python dependencies) and deny.toml."""
    (ws / "polybuild.toml").write_text(f'[python]\ninterpreter = "{venv / "bin" / "python"}"\n')
    (ws / "deny.toml").write_text(DENY_TOML)
    (ws / ".gitignore").write_text("target/\n/ATTRIBUTIONS*.md\n/sbom*.json\n.polybuild/\n.bench/\n.bench-out/\n")


def create_cargo(ws: Path) -> None:
    """A Cargo workspace of library members, dependencies added with `cargo add` (latest releases), locked and
    fetched so that `cargo metadata --offline --locked` works afterwards."""
    (ws / "Cargo.toml").write_text('[workspace]\nresolver = "2"\nmembers = ["crates/*"]\n')
    for member, deps in CARGO_MEMBERS.items():
        log(f"cargo: crates/{member}")
        run(["cargo", "new", "--lib", "--vcs", "none", "--name", f"bench-{member}", f"crates/{member}"], cwd=ws)
        for dep in deps:
            run(["cargo", "add", "-q", *dep], cwd=ws / "crates" / member)
    run(["cargo", "generate-lockfile"], cwd=ws)
    log("cargo fetch")
    run(["cargo", "fetch", "--locked"], cwd=ws)


def create_python(ws: Path, venv: Path) -> None:
    """A hatchling project with dependencies and a server extra, all installed into a fresh venv (the build
    environment the inventory introspects)."""
    project = ws / "python" / "app"
    (project / "src" / "bench_app").mkdir(parents=True)
    (project / "src" / "bench_app" / "__init__.py").write_text('"""The benchmark\'s Python package."""\n')
    extras = "".join(f"{name} = {json.dumps(reqs)}\n" for name, reqs in PY_EXTRAS.items())
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
        f'[project]\nname = "bench-app"\nversion = "0.1.0"\nlicense = "MIT"\n'
        f"dependencies = {json.dumps(PY_DEPENDENCIES)}\n\n[project.optional-dependencies]\n{extras}"
    )
    log(f"python: venv {venv} and pip install ({len(PY_DEPENDENCIES)} requirements + extras)")
    shutil.rmtree(venv, ignore_errors=True)
    run([sys.executable, "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    run([*pip, *PY_DEPENDENCIES, *(r for reqs in PY_EXTRAS.values() for r in reqs)])


def create_go(ws: Path) -> None:
    """Go modules whose `main` imports the heavy packages; `go mod tidy` picks the latest releases and fills the
    module cache, `go mod download` makes sure every listed module is there."""
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
    for name, imports in GO_MODULES.items():
        module = ws / "go" / name
        module.mkdir(parents=True)
        lines = "".join(f'\t_ "{path}"\n' for path in imports)
        (module / "main.go").write_text(f"package main\n\nimport (\n{lines})\n\nfunc main() {{}}\n")
        log(f"go: go/{name} (go mod tidy, go mod download)")
        run(["go", "mod", "init", f"example.com/bench/{name}"], cwd=module, env=env)
        run(["go", "mod", "tidy"], cwd=module, env=env)
        run(["go", "mod", "download"], cwd=module, env=env)


def commit(ws: Path) -> None:
    """A git repository, as a real workspace is (discovery lists files with `git ls-files`)."""
    run(["git", "init", "-q"], cwd=ws)
    run(["git", "add", "-A"], cwd=ws)
    if not run(["git", "status", "--porcelain"], cwd=ws).strip():
        return
    run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-q", "-m", "bench"],
        cwd=ws)


# ------------------------------------------------------------------------------------------ polybuild under test


@dataclass
class Polybuild:
    """The code under test: a snapshot of python/polybuild and the native core; PYTHONPATHs for both modes."""

    native_path: str  # snapshot + native core
    fallback_path: str  # snapshot only (and POLYBUILD_NO_NATIVE=1)
    info: dict[str, Any] = field(default_factory=dict)


def prepare_polybuild(work: Path, rev: str | None, build_native: bool) -> Polybuild:
    """The Python code and the native core of one commit (`rev`), or of the work tree (`rev` None), taken once at
    the start: other sessions edit the work tree concurrently, and the Python side and the native core must be of
    the same state (their interface changes along)."""
    source = work / "src"
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    paths = ["python/polybuild", "rust", "Cargo.toml", "Cargo.lock"]
    rev = rev and run(["git", "rev-parse", "--short", rev], cwd=REPO).strip()  # fixed now: HEAD may move
    described = rev or run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO).strip()
    if rev:
        archive = subprocess.run(["git", "archive", rev, *paths], cwd=REPO, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    else:
        for path in paths:
            if (REPO / path).is_dir():
                shutil.copytree(REPO / path, source / path, ignore=shutil.ignore_patterns("__pycache__", "target"))
            else:
                shutil.copy2(REPO / path, source / path)
    # Installed packages have their bytecode; with PYTHONDONTWRITEBYTECODE set, every run would compile again.
    run([sys.executable, "-m", "compileall", "-q", str(source / "python")])
    site = work / f"pbcore-site-{described if rev else 'worktree'}"
    if build_native or not (site / "polybuild_core").is_dir():
        build_native_core(work, source, site)
    pb = Polybuild(f"{source / 'python'}{os.pathsep}{site}", str(source / "python"))
    pb.info = {
        "commit": described,
        "dirty": [] if rev else run(["git", "status", "--porcelain", "--", *paths], cwd=REPO).splitlines(),
        "native": backends(pb.native_path, native=True),
        "fallback": backends(pb.fallback_path, native=False),
    }
    if not pb.info["native"]["hashing"].startswith("native"):
        raise SystemExit(f"the native core is not active with PYTHONPATH={pb.native_path}: {pb.info['native']}")
    return pb


def build_native_core(work: Path, source: Path, site: Path) -> None:
    """`maturin build --release` of the snapshot's core (its own target directory), installed into `site`."""
    log(f"building the native core of {source} (maturin build --release)")
    wheels = work / "pbcore"
    shutil.rmtree(wheels, ignore_errors=True)
    shutil.rmtree(site, ignore_errors=True)
    env = {**os.environ, "CARGO_TARGET_DIR": str(work / "target")}
    run(["maturin", "build", "--release", "-m", str(source / "rust/polybuild-core/Cargo.toml"), "-o", str(wheels)],
        env=env)
    run([sys.executable, "-m", "pip", "install", "-q", "--target", str(site), *map(str, wheels.glob("*.whl"))])


def backends(pythonpath: str, *, native: bool) -> dict[str, str]:
    """Which implementation hashing and license detection use in that mode (the core may predate detection)."""
    code = ("import json; from polybuild.support import fingerprint as f; from polybuild.licenses import detect as d\n"
            "print(json.dumps({'hashing': f.backend(), 'detection': d.backend()}))")
    return json.loads(run([sys.executable, "-c", code], env=polybuild_env(pythonpath, native=native)))


def polybuild_env(pythonpath: str, *, native: bool) -> dict[str, str]:
    """The environment of every timed run: offline for cargo and go, the chosen backend."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYBUILD_")}
    env.update(PYTHONPATH=pythonpath, CARGO_NET_OFFLINE="true", GOPROXY="off", GOTOOLCHAIN="local")
    if not native:
        env["POLYBUILD_NO_NATIVE"] = "1"
    return env


# ----------------------------------------------------------------------------------------------- measurements

CLI_COMMANDS: dict[str, list[str]] = {
    "deny": ["deny"],
    "attributions": ["attributions"],
    "sbom-cyclonedx": ["sbom", "--format", "cyclonedx", "-o", "sbom.cdx.json"],
    "sbom-spdx": ["sbom", "--format", "spdx", "-o", "sbom.spdx.json"],
}
MODES = ("native", "fallback")


@dataclass
class Samples:
    """The timings of one (mode, measurement): wall seconds of the CLI, or one dict of stage seconds per run."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # user + system of the process and its tools (cargo, go, ...)
    stages: list[dict[str, float]] = field(default_factory=list)

    def median(self) -> float:
        return statistics.median(self.wall)

    def cpu_median(self) -> float:
        return statistics.median(self.cpu)

    def stage_medians(self) -> dict[str, float]:
        names = self.stages[0].keys() if self.stages else []
        return {name: statistics.median(s[name] for s in self.stages) for name in names}


def time_cli(ws: Path, args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """One `python -m polybuild ...`: (wall seconds from start to exit, CPU seconds, stderr). The CPU time counts
    the tools it waits for too (cargo, go, the build interpreter) and, unlike the wall time, hardly depends on
    what else the machine runs."""
    cpu = child_cpu()
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "polybuild", *args], cwd=ws, env=env, capture_output=True,
                          text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1) or (proc.returncode == 1 and args[0] != "deny"):
        raise SystemExit(f"polybuild {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return elapsed, child_cpu() - cpu, proc.stderr


def child_cpu() -> float:
    """User + system seconds of every finished child process (and the descendants each one waited for)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_in_process(ws: Path, env: dict[str, str], profile: Path | None = None) -> dict[str, Any]:
    """One in-process run of the whole pass in a fresh interpreter (`--stages`): its stage times, its CPU time
    (with the tools it ran) and its counts."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--stages", str(ws)]
    if profile:
        argv += ["--profile", str(profile)]
    cpu = child_cpu()
    result = json.loads(run(argv, cwd=ws, env=env))
    result["cpu"] = child_cpu() - cpu
    return result


def measure(ws: Path, pb: Polybuild, reps: int) -> tuple[dict[str, dict[str, Samples]], dict[str, Any]]:
    """Every measurement `reps` times, modes and commands interleaved in each repetition, after one untimed native
    round (page cache, the Go build cache's list data). Returns samples[mode][name] and the counts."""
    samples = {mode: {name: Samples() for name in [*CLI_COMMANDS, "in-process"]} for mode in MODES}
    details: dict[str, Any] = {}
    for rep in range(-1, reps):
        for mode in MODES if rep >= 0 else MODES[:1]:  # the file caches are shared: one mode warms them
            env = polybuild_env(pb.native_path if mode == "native" else pb.fallback_path, native=mode == "native")
            for name, args in CLI_COMMANDS.items():
                elapsed, cpu, stderr = time_cli(ws, args, env)
                if rep >= 0:
                    samples[mode][name].wall.append(elapsed)
                    samples[mode][name].cpu.append(cpu)
                if name == "deny":
                    details[f"deny-{mode}"] = stderr.strip().splitlines()[-1]
            result = time_in_process(ws, env)
            details[f"in-process-{mode}"] = result["counts"]
            if rep >= 0:
                samples[mode]["in-process"].wall.append(result["stages"]["total"])
                samples[mode]["in-process"].cpu.append(result["cpu"])
                samples[mode]["in-process"].stages.append(result["stages"])
        log(f"repetition {rep + 1}/{reps} done" if rep >= 0 else "warm-up round done")
    return samples, details


# ------------------------------------------------------------------------- the in-process run (a child process)


class Stages(dict[str, float]):
    """Stage name -> seconds; `wrap` times every call of a module function under a stage name, so that the real
    `scan()` runs unchanged (its scanners side by side in threads) while each part is still attributed."""

    def wrap(self, module: Any, function: str, stage: str) -> None:
        original = getattr(module, function)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self[stage] = self.get(stage, 0.0) + time.perf_counter() - start

        setattr(module, function, timed)

    def time(self, stage: str, start: float) -> float:
        now = time.perf_counter()
        self[stage] = now - start
        return now


def run_stages(ws_dir: Path) -> dict[str, Any]:
    """scan() + check + every writer, as the three CLI commands do them but over one scan; stage times and counts.
    Inventory stages overlap (the scanners run side by side); `scan` is their wall time plus resolution."""
    stages = Stages()
    start = begin = time.perf_counter()
    from polybuild import api
    from polybuild.licenses import cargo, detect, go, inventory, policy, pypi, resolve
    from polybuild.licenses import scan as passes
    from polybuild.support.fs import write_atomic

    begin = stages.time("import", begin)
    ws = api.load(ws_dir).ws
    begin = stages.time("load workspace", begin)
    for module, function, stage in ((policy, "load_policy", "policy"), (cargo, "packages", "inventory: cargo"),
                                    (pypi, "packages", "inventory: pypi"), (go, "packages", "inventory: go"),
                                    (inventory, "inventory", "inventory (wall)"),
                                    (resolve, "resolve_all", "resolve (wall, with detection)"),
                                    (detect, "detect_many", "detection"),
                                    (detect, "_store", "detection: fallback store")):
        stages.wrap(module, function, stage)
    result = passes.scan(ws)
    begin = stages.time("scan", begin)
    violations = result.violations()
    begin = stages.time("check", begin)
    files = passes.attribution_files(result)
    begin = stages.time("writer: attributions", begin)
    files["sbom.cdx.json"] = json.dumps(passes.sbom(result, "cyclonedx"), indent=2) + "\n"
    begin = stages.time("writer: cyclonedx", begin)
    files["sbom.spdx.json"] = json.dumps(passes.sbom(result, "spdx"), indent=2) + "\n"
    begin = stages.time("writer: spdx", begin)
    for name, content in files.items():
        write_atomic(ws_dir / ".bench-out" / name, content)
    stages.time("write files", begin)
    stages["total"] = time.perf_counter() - start
    return {"stages": dict(stages), "counts": counts(result, violations, files)}


def counts(result: Any, violations: list[Any], files: dict[str, str]) -> dict[str, Any]:
    """What the pass saw: packages per ecosystem (third-party and own), license texts, how licenses were chosen,
    violations, and the size of what it wrote."""
    packages = result.inventory.packages
    third = [p for p in packages if not p.workspace]
    by_how: dict[str, int] = {}
    for r in result.resolved:
        by_how[r.how] = by_how.get(r.how, 0) + 1
    return {
        "third_party": {eco: sum(p.ecosystem == eco for p in third) for eco in ("cargo", "pypi", "golang")},
        "workspace": {eco: sum(p.ecosystem == eco and p.workspace for p in packages)
                      for eco in ("cargo", "pypi", "golang")},
        "license_files": sum(f.kind == "license" for p in packages for f in p.files),
        "notice_files": sum(f.kind == "notice" for p in packages for f in p.files),
        "resolved_by": dict(sorted(by_how.items())),
        "violations": {sev: sum(v.severity == sev for v in violations) for sev in ("deny", "warn")},
        "written_bytes": {name: len(content.encode()) for name, content in sorted(files.items())},
    }


def profiled_stages(ws_dir: Path, out: Path) -> dict[str, Any]:
    """`run_stages` under cProfile in every thread (the scanners run in a pool); the merged stats go to `out`."""
    import cProfile
    import pstats
    import threading

    profiles = [cProfile.Profile()]
    original_run = threading.Thread.run

    def profiled_run(thread: threading.Thread) -> None:
        profile = cProfile.Profile()
        profiles.append(profile)
        profile.runcall(original_run, thread)

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    result = profiles[0].runcall(run_stages, ws_dir)
    stats = pstats.Stats(profiles[0])
    for profile in profiles[1:]:
        stats.add(profile)
    stats.dump_stats(out)
    return result


# ------------------------------------------------------------------------------------------------- the report

TARGET_SECONDS = 10.0


def machine() -> dict[str, Any]:
    """Where and with what the numbers were taken; the load says how much other work shared the cores."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "system": f"{platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu})",
        "python": platform.python_version(),
        "cargo": run(["cargo", "--version"]).strip(),
        "go": run(["go", "version"]).strip(),
    }


def profile_text(prof: Path, top: int = 30) -> str:
    """The merged profile as text: top functions by cumulative, then by own time."""
    import io
    import pstats

    out = io.StringIO()
    stats = pstats.Stats(str(prof), stream=out).strip_dirs()
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def summary(samples: dict[str, dict[str, Samples]]) -> dict[str, Any]:
    """Medians per mode: each CLI command, the four commands one after another, and the in-process stages."""
    out: dict[str, Any] = {}
    for mode, by_name in samples.items():
        cli = {name: by_name[name].median() for name in CLI_COMMANDS}
        cli_cpu = {name: by_name[name].cpu_median() for name in CLI_COMMANDS}
        out[mode] = {"cli": cli, "cli_cpu": cli_cpu, "cli_sum": sum(cli.values()), "cli_cpu_sum": sum(cli_cpu.values()),
                     "in_process": by_name["in-process"].median(), "in_process_cpu": by_name["in-process"].cpu_median(),
                     "stages": by_name["in-process"].stage_medians()}
    return out


def markdown(info: dict[str, Any], counts_: dict[str, Any], medians: dict[str, Any], reps: int) -> str:
    """The result as the tables bench/README.md quotes."""
    third, own = counts_["third_party"], counts_["workspace"]
    lines = [f"# License pass benchmark, {info['machine']['date']}", "",
             f"{info['machine']['system']}; Python {info['machine']['python']}; {info['machine']['cargo']}; "
             f"{info['machine']['go']}. polybuild {info['polybuild']['commit']}"
             f"{' (work tree with uncommitted changes)' if info['polybuild']['dirty'] else ''}; "
             + "; ".join(f"{mode}: {info['polybuild'][mode]['hashing']} hashing, "
                         f"{info['polybuild'][mode]['detection']} detection" for mode in MODES)
             + f". Load average (1, 5, 15 min) before: {info['load_before']}, after: {info['load_after']}. "
             f"Median of {reps}.", "",
             f"Workspace: {third['cargo']} crates, {third['pypi']} Python distributions and {third['golang']} Go "
             f"modules (third-party; plus {own['cargo']} + {own['pypi']} + {own['golang']} of the workspace's own); "
             f"{counts_['license_files']} license texts, {counts_['notice_files']} NOTICE texts. Resolved by: "
             f"{', '.join(f'{k} {v}' for k, v in counts_['resolved_by'].items())}. Violations: "
             f"{counts_['violations']['deny']} deny, {counts_['violations']['warn']} warn.", "",
             "Wall time, and in parentheses the CPU time of the process and the tools it ran (cargo, go, the build "
             "interpreter); both medians.", "",
             "| measurement | native | fallback (POLYBUILD_NO_NATIVE=1) |", "|---|---|---|"]
    for name in CLI_COMMANDS:
        lines.append(f"| `polybuild {' '.join(CLI_COMMANDS[name][:3])}` | "
                     + " | ".join(_wall_cpu(medians[m]["cli"][name], medians[m]["cli_cpu"][name]) for m in MODES)
                     + " |")
    lines.append("| the four commands, one after another | "
                 + " | ".join(_wall_cpu(medians[m]["cli_sum"], medians[m]["cli_cpu_sum"]) for m in MODES) + " |")
    lines.append("| **in-process: scan + check + every writer** | "
                 + " | ".join(f"**{_wall_cpu(medians[m]['in_process'], medians[m]['in_process_cpu'])}**"
                              for m in MODES) + " |")
    lines += ["", "In-process stages (medians; the three inventory stages overlap, `scan` is their wall time plus "
              "resolution):", "", "| stage | native | fallback |", "|---|---|---|"]
    for stage in medians["fallback"]["stages"]:
        lines.append(f"| {stage} | {_s(medians['native']['stages'].get(stage))} | "
                     f"{_s(medians['fallback']['stages'][stage])} |")
    met = {mode: medians[mode]["in_process"] < TARGET_SECONDS for mode in MODES}
    lines += ["", f"Target (< {TARGET_SECONDS:.0f} s for scan, check and every file): native "
              f"{'met' if met['native'] else 'NOT met'}, fallback {'met' if met['fallback'] else 'NOT met'}."]
    return "\n".join(lines) + "\n"


def _wall_cpu(wall: float, cpu: float) -> str:
    return f"{wall:.2f} s ({cpu:.2f} s)"


def _s(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:.2f} s"


def pins(ws: Path, venv: Path) -> str:
    """Every third-party version the workspace resolved to (setup takes the latest releases, so a later setup
    may differ): Cargo.lock's packages, the venv's distributions and each Go module's requirements."""
    import tomllib

    lock = tomllib.loads((ws / "Cargo.lock").read_text())
    lines = [f"cargo {p['name']} {p['version']}" for p in lock["package"] if "source" in p]
    freeze = run([str(venv / "bin" / "python"), "-m", "pip", "freeze", "--all", "--disable-pip-version-check"])
    lines += [f"pypi {line}" for line in freeze.splitlines() if line]
    for go_mod in sorted((ws / "go").glob("*/go.mod")):  # after `go mod tidy` it lists every module needed
        required = json.loads(run(["go", "mod", "edit", "-json"], cwd=go_mod.parent)).get("Require", [])
        lines += [f"go {go_mod.parent.name} {r['Path']} {r['Version']}" for r in required]
    return "\n".join(lines) + "\n"


def write_results(info: dict[str, Any], counts_: dict[str, Any], samples: dict[str, dict[str, Samples]],
                  reps: int, profiles: dict[str, Path], pinned: str) -> Path:
    """bench/results/licenses-<timestamp>.{json,md}, the profiles as text and the pinned versions; returns the
    .md path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"licenses-{stamp}-pins.txt").write_text(pinned)
    medians = summary(samples)
    data = {"info": info, "counts": counts_, "reps": reps, "medians": medians,
            "samples": {mode: {name: {"wall": s.wall, "cpu": s.cpu, "stages": s.stages} for name, s in by_name.items()}
                        for mode, by_name in samples.items()}}
    (RESULTS / f"licenses-{stamp}.json").write_text(json.dumps(data, indent=2) + "\n")
    for mode, prof in profiles.items():
        (RESULTS / f"licenses-{stamp}-profile-{mode}.txt").write_text(profile_text(prof))
    md = RESULTS / f"licenses-{stamp}.md"
    md.write_text(markdown(info, counts_, medians, reps))
    return md


# --------------------------------------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "polybuild-bench-licenses")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rev", default="HEAD", help="the commit whose python/polybuild and native core are measured")
    ap.add_argument("--worktree", action="store_true", help="measure the work tree as it is instead of --rev")
    ap.add_argument("--build-native", action="store_true", help="rebuild the native core even if one is there")
    ap.add_argument("--no-profile", action="store_true", help="skip the cProfile runs")
    ap.add_argument("--stages", type=Path, metavar="WS", help=argparse.SUPPRESS)  # the child of time_in_process
    ap.add_argument("--profile", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stages:
        result = profiled_stages(args.stages, args.profile) if args.profile else run_stages(args.stages)
        print(json.dumps(result))
        return 0
    args.workdir.mkdir(parents=True, exist_ok=True)
    ws = ensure_workspace(args.workdir)
    pb = prepare_polybuild(args.workdir, None if args.worktree else args.rev, args.build_native)
    info: dict[str, Any] = {"machine": machine(), "polybuild": pb.info, "workspace": str(ws),
                            "load_before": [round(x, 2) for x in os.getloadavg()]}
    log(f"measuring ({args.reps} repetitions; load {info['load_before']})")
    samples, details = measure(ws, pb, args.reps)
    info["load_after"] = [round(x, 2) for x in os.getloadavg()]
    info["details"] = details
    profiles: dict[str, Path] = {}
    if not args.no_profile:
        for mode in MODES:
            profiles[mode] = args.workdir / f"profile-{mode}.prof"
            env = polybuild_env(pb.native_path if mode == "native" else pb.fallback_path, native=mode == "native")
            time_in_process(ws, env, profiles[mode])
    pinned = pins(ws, args.workdir / "venv")
    md = write_results(info, details["in-process-native"], samples, args.reps, profiles, pinned)
    print(md.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
