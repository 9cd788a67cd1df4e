#!/usr/bin/env python3
"""Benchmark polybuild against turbo, moon and a plain shell loop on generated polyglot monorepos.

For each size N (default 100 and 1000) the runner generates a repo (bench/generate.py), then measures, with all
tools interleaved in every repetition:

  cold      caches, state and every out.txt wiped, then a full run (every task executes)
  noop      nothing changed: every task must be a cache hit
  leaf      one source file of a package nothing depends on edited: 1 task executes
  root      one source file of the layer-0 package with the most dependents edited: it and all dependents execute

Each repo is synced and left to settle for a minute after it is generated, and every timed run starts with a `sync`.
Each edit is unique (so no cache can already hold it) and is reverted after the measured run, followed by an
unmeasured run that brings the tool back to its all-cached state. Every measured run is checked: exit status 0,
the number of tasks that executed (parsed from each tool's own summary) equals the expected number, and after cold
runs every out.txt exists with the right content.

The shell floor runs the same `cat` commands with no tool at all: all of them for cold, only the affected ones
for edits (nothing for no-op), sequentially (`xargs -P1`) and layer by layer with `xargs -P<jobs>`.

Also measured: polybuild with POLYBUILD_NO_NATIVE=1 (cold, noop), the tree-digest throughput of both hashing
backends over the largest tree, and (once per size) moon with its default `vcs` walk strategy (noop only).

Results: bench/results/<timestamp>.json and .md (the .md is what bench/README.md quotes).

    python bench/run.py                        # everything, ~20-25 min on 2 cores (turbo's N=1000 cold run ~9 min)
    python bench/run.py --sizes 100 --reps 3   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import generate  # noqa: E402

TURBO_VERSION = "2.11.11"
MOON_VERSION = "2.5.5"
SCENARIOS = ("cold", "noop", "leaf", "root")
ALL_TOOLS = ("polybuild", "polybuild-py", "turbo", "moon", "shell-seq", "shell-par")
# Which scenarios each tool takes part in (the pure-Python fallback only where hashing matters).
TOOL_SCENARIOS = {
    "polybuild": SCENARIOS,
    "polybuild-py": ("cold", "noop"),
    "turbo": SCENARIOS,
    "moon": SCENARIOS,
    "shell-seq": ("cold", "leaf", "root"),
    "shell-par": ("cold", "leaf", "root"),
}
SHELL_TASK = 'cd "$0" && cat src/*.txt > out.txt'


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------------------- setup


@dataclass
class Env:
    work: Path
    tools_bin: Path
    pb_path: str  # PYTHONPATH with the polybuild snapshot and the native core
    pb_python: str  # the interpreter of a virtual environment with polybuild's dependencies, as users run it
    pb_path_nonative: str
    jobs: int
    info: dict = field(default_factory=dict)


def _venv(path: Path) -> str:
    """A virtual environment with polybuild's dependencies (from pyproject.toml), where users run polybuild; it
    also leaves out whatever the machine's own site-packages runs at start-up (.pth files)."""
    python = path / "bin" / "python"
    if not python.exists():
        import tomllib

        deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *deps], check=True, capture_output=True)
    return str(python)


def _startup_ms(python: str) -> float:
    """Median of 7 `python -c pass`: the interpreter's share of every polybuild run."""
    times = []
    for _ in range(7):
        start = time.perf_counter()
        subprocess.run([python, "-c", "pass"], check=True)
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 1)


def sh(argv: list[str], **kw) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw).stdout.strip()


def setup(work: Path, jobs: int, build_native: bool, worktree: bool) -> Env:
    work.mkdir(parents=True, exist_ok=True)
    info: dict = {}
    # polybuild: a snapshot of python/polybuild (HEAD's committed files by default), so that concurrent edits of
    # the source tree cannot change the code under test halfway through the run.
    snap = work / "pbsnap"
    shutil.rmtree(snap, ignore_errors=True)
    snap.mkdir(parents=True)
    info["polybuild_commit"] = sh(["git", "rev-parse", "--short", "HEAD"], cwd=REPO)
    if worktree:
        shutil.copytree(REPO / "python" / "polybuild", snap / "polybuild",
                        ignore=shutil.ignore_patterns("__pycache__"))
        info["polybuild_dirty"] = bool(sh(["git", "status", "--porcelain", "--", "python"], cwd=REPO))
    else:
        archive = subprocess.run(["git", "archive", "HEAD", "python/polybuild"], cwd=REPO, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "--strip-components=1", "-C", str(snap)], input=archive, check=True)
        info["polybuild_dirty"] = False
    if sh(["git", "status", "--porcelain", "--", "rust/polybuild-core"], cwd=REPO):
        log("warning: rust/polybuild-core has uncommitted changes; the native core is built from the work tree")
        info["native_core_dirty"] = True
    site = work / "pbcore-site"
    if build_native or not (site / "polybuild_core").is_dir():
        log("building the native core (maturin build --release)")
        wheels = work / "pbcore"
        shutil.rmtree(wheels, ignore_errors=True)
        shutil.rmtree(site, ignore_errors=True)
        subprocess.run(["maturin", "build", "--release", "-m", str(REPO / "rust/polybuild-core/Cargo.toml"),
                        "-o", str(wheels)], check=True, capture_output=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(site),
                        *map(str, wheels.glob("*.whl"))], check=True, capture_output=True)
    pb_path = f"{snap}{os.pathsep}{site}"
    pb_python = _venv(work / "pbvenv")
    info["python_startup_ms"] = {"polybuild's venv": _startup_ms(pb_python),
                                 "bench's python": _startup_ms(sys.executable)}
    env = {**os.environ, "PYTHONPATH": pb_path}
    backend = sh([pb_python, "-c", "from polybuild.support import fingerprint as f\n"
                  "print(f.backend(), 'stat cache:', getattr(f.StatCache('/nonexistent/statcache'), 'backend', '-'))"],
                 env=env)
    info["native_backend"] = backend
    if not backend.startswith("native"):
        raise SystemExit(f"the native core is not active with PYTHONPATH={pb_path}: {backend}")
    # turbo and moon from the npm registry, into the work directory.
    tools = work / "tools"
    bin_dir = tools / "node_modules" / ".bin"
    if not (bin_dir / "turbo").exists() or not (bin_dir / "moon").exists():
        log(f"npm install turbo@{TURBO_VERSION} @moonrepo/cli@{MOON_VERSION}")
        tools.mkdir(parents=True, exist_ok=True)
        (tools / "package.json").write_text('{"name": "bench-tools", "private": true}\n')
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error",
                        f"turbo@{TURBO_VERSION}", f"@moonrepo/cli@{MOON_VERSION}"], cwd=tools, check=True)
    info.update(
        date=time.strftime("%Y-%m-%d %H:%M %Z"),
        machine=_machine(),
        python=platform.python_version(),
        turbo=sh([str(bin_dir / "turbo"), "--version"], env=_tool_env({})),
        moon=sh([str(bin_dir / "moon"), "--version"]),
        node=sh(["node", "--version"]),
        npm=sh(["npm", "--version"]),
        git=sh(["git", "--version"]),
        jobs=jobs,
    )
    return Env(work, bin_dir, pb_path, pb_python, str(snap), jobs, info)


def _machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = next(int(x.split()[1]) for x in Path("/proc/meminfo").read_text().splitlines()
                   if x.startswith("MemTotal"))
        mem_s = f"{mem / 2**20:.0f} GiB"
    except (OSError, StopIteration):
        mem_s = "?"
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu}), {mem_s}"


def _tool_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TURBO_", "MOON_", "POLYBUILD_"))}
    env.pop("CI", None)
    env.update(TURBO_TELEMETRY_DISABLED="1", DO_NOT_TRACK="1", TURBO_NO_UPDATE_NOTIFIER="1", NO_COLOR="1",
               TURBO_PRINT_VERSION_DISABLED="1")
    env.update(extra)
    return env


# ---------------------------------------------------------------------------------------------------------- tools


class Tree:
    """A generated repo and the commands of every tool on it."""

    def __init__(self, env: Env, root: Path, meta: dict) -> None:
        self.env = env
        self.root = root
        self.meta = meta
        self.n = meta["packages"]
        self.pbcache = root.parent / "pbcache"
        self.logs = root.parent / "logs"
        self.logs.mkdir(exist_ok=True)
        self.lists = root.parent / "lists"
        self.lists.mkdir(exist_ok=True)

    # -- commands
    def command(self, tool: str, scenario: str) -> tuple[list[str], dict[str, str]]:
        j = str(self.env.jobs)
        if tool in ("polybuild", "polybuild-py"):
            extra = {"PYTHONPATH": self.env.pb_path, "POLYBUILD_CACHE_DIR": str(self.pbcache)}
            if tool == "polybuild-py":
                extra.update(PYTHONPATH=self.env.pb_path_nonative, POLYBUILD_NO_NATIVE="1")
            return [self.env.pb_python, "-m", "polybuild", "run", "concat", "-j", j, "--json"], _tool_env(extra)
        if tool == "turbo":
            return [str(self.env.tools_bin / "turbo"), "run", "concat", f"--concurrency={j}", "--daemon=false",
                    "--output-logs=errors-only"], _tool_env({})
        if tool == "moon":
            return [str(self.env.tools_bin / "moon"), "run", ":concat", "-c", j], _tool_env({})
        if tool in ("shell-seq", "shell-par"):
            return ["bash", str(self.shell_script(tool, scenario))], _tool_env({})
        raise ValueError(tool)

    def affected(self, scenario: str, tool: str = "turbo") -> list[str]:
        """The packages whose task `tool` must run. After an edit, turbo and moon rerun every transitive
        dependent (their task hashes chain on dependency task hashes); polybuild keys on dependency *outputs*, and
        since out.txt holds only a package's own sources, only the edited package and its direct dependents get
        new keys (early cutoff). The shell floor runs that minimal set."""
        if scenario == "cold":
            return list(self.meta["topo_order"])
        if scenario == "noop":
            return []
        minimal = tool.startswith("shell")
        return list(self.meta[scenario]["direct" if minimal else "affected"])

    def expected_range(self, scenario: str, tool: str) -> tuple[int, int]:
        """How many tasks `tool` may execute. polybuild: at least the edited package and its direct dependents, at
        most every transitive dependent (a Go module or Rust crate without binaries is a library to polybuild, and
        a library's files are inputs of every target using it, so its edits reach further)."""
        n = len(self.affected(scenario, tool))
        if tool.startswith("polybuild") and scenario in ("leaf", "root"):
            return len(self.meta[scenario]["direct"]), n
        return n, n

    def shell_script(self, tool: str, scenario: str) -> Path:
        todo = set(self.affected(scenario, tool))
        path = self.lists / f"{tool}-{scenario}.sh"
        lines = ["set -e", f"cd {self.root}"]
        if tool == "shell-seq":
            names = [n for n in self.meta["topo_order"] if n in todo]
            (self.lists / f"{scenario}.all").write_text("".join(f"packages/{n}\n" for n in names))
            lines.append(f"xargs -P1 -n1 sh -c '{SHELL_TASK}' < {self.lists}/{scenario}.all")
        else:
            for k, layer in enumerate(self.meta["layers_list"]):
                names = [n for n in layer if n in todo]
                if names:
                    (self.lists / f"{scenario}.{k}").write_text("".join(f"packages/{n}\n" for n in names))
                    lines.append(f"xargs -P{self.env.jobs} -n1 sh -c '{SHELL_TASK}' < {self.lists}/{scenario}.{k}")
        path.write_text("\n".join(lines) + "\n")
        return path

    # -- state
    def wipe(self, tool: str) -> None:
        """Cold state for `tool`: its caches and state gone, and no out.txt anywhere."""
        for p in (self.root / "packages").glob("*/out.txt"):
            p.unlink()
        if tool.startswith("polybuild"):
            shutil.rmtree(self.pbcache, ignore_errors=True)
            shutil.rmtree(self.root / ".polybuild", ignore_errors=True)
        elif tool == "turbo":
            shutil.rmtree(self.root / ".turbo", ignore_errors=True)
            shutil.rmtree(self.root / "node_modules" / ".cache" / "turbo", ignore_errors=True)
        elif tool == "moon":
            shutil.rmtree(self.root / ".moon" / "cache", ignore_errors=True)

    def run(self, tool: str, scenario: str, label: str) -> tuple[float, int | None, str]:
        """(wall seconds, tasks executed as the tool reports it, log path)."""
        argv, env = self.command(tool, scenario)
        log_path = self.logs / f"{tool}-{label}.log"
        os.sync()  # no run pays for writing back what the previous one (or the generator) left dirty
        with open(log_path, "wb") as out:
            start = time.perf_counter()
            proc = subprocess.run(argv, cwd=self.root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)
            wall = time.perf_counter() - start
        text = log_path.read_text(errors="replace")
        if proc.returncode != 0:
            raise RuntimeError(f"{tool} {label} exited {proc.returncode}; see {log_path}:\n{text[-2000:]}")
        return wall, executed(tool, text, len(self.affected(scenario, tool))), str(log_path)

    def check_outputs(self) -> None:
        """Every package's out.txt is the concatenation of its sources."""
        for name in self.meta["topo_order"]:
            d = self.root / "packages" / name
            want = b"".join(p.read_bytes() for p in sorted((d / "src").glob("*.txt")))
            got = (d / "out.txt").read_bytes() if (d / "out.txt").exists() else None
            if got != want:
                raise RuntimeError(f"{d}/out.txt is {'missing' if got is None else 'wrong'}")


def executed(tool: str, text: str, expected: int) -> int | None:
    """How many tasks really ran, from the tool's own report (None where the tool says nothing)."""
    if tool.startswith("polybuild"):
        statuses = [json.loads(line).get("status") for line in text.splitlines()
                    if line.startswith("{") and '"finish"' in line]
        bad = [s for s in statuses if s not in ("built", "cached")]
        if bad:
            raise RuntimeError(f"polybuild tasks not ok: {bad[:5]}")
        return statuses.count("built")
    if tool == "turbo":
        m = re.search(r"Cached:\s+(\d+) cached, (\d+) total", text)
        return int(m[2]) - int(m[1]) if m else None
    if tool == "moon":
        m = re.search(r"Tasks: (\d+) completed(?: \((\d+) cached)?", text)
        return int(m[1]) - int(m[2] or 0) if m else None
    return expected  # the shell loop runs exactly its list


# ---------------------------------------------------------------------------------------------------------- runner


@dataclass
class Cell:
    samples: list[float] = field(default_factory=list)
    executed: list[int | None] = field(default_factory=list)
    expected: tuple[int, int] = (0, 0)
    notes: list[str] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    def to_json(self) -> dict:
        return {"median_s": self.median, "samples_s": [round(s, 4) for s in self.samples],
                "executed": self.executed, "expected_executed": self.expected, "notes": self.notes}


def bench_size(env: Env, n: int, args: argparse.Namespace) -> dict:
    root = env.work / f"n{n}" / "repo"
    log(f"N={n}: generating {root}")
    meta = generate.generate(root, n, args.files, args.layers, args.seed, generate.parse_mix(args.mix),
                             args.file_size)
    settle(args.settle)
    tree = Tree(env, root, meta)
    tools = [t for t in args.tools if t in ALL_TOOLS]
    cells: dict[str, dict[str, Cell]] = {s: {t: Cell() for t in tools if s in TOOL_SCENARIOS[t]} for s in SCENARIOS}
    for s in SCENARIOS:
        for t, c in cells[s].items():
            c.expected = tree.expected_range(s, t)

    def measure(scenario: str, tool: str, rep: int) -> None:
        cell = cells[scenario][tool]
        wall, ran, log_path = tree.run(tool, scenario, f"{scenario}-{rep}")
        cell.samples.append(wall)
        cell.executed.append(ran)
        if ran is not None and not cell.expected[0] <= ran <= cell.expected[1]:
            cell.notes.append(f"rep {rep}: {ran} tasks executed, expected {cell.expected} ({log_path})")
            log(f"  WARNING {tool} {scenario} rep {rep}: executed {ran}, expected {cell.expected}")

    def budget_left(scenario: str, tool: str, max_reps: int) -> bool:
        cell = cells[scenario][tool]
        return len(cell.samples) < max_reps and (not cell.samples or sum(cell.samples) < args.budget)

    # cold
    for rep in range(args.cold_reps):
        for tool in cells["cold"]:
            if not budget_left("cold", tool, args.cold_reps):
                continue
            tree.wipe(tool)
            measure("cold", tool, rep)
            tree.check_outputs()
            log(f"  N={n} cold {tool} rep {rep}: {cells['cold'][tool].samples[-1]:.2f}s")
    # bring every caching tool to its all-cached state (the last cold run of another tool rewrote outputs)
    caching = [t for t in tools if t in ("polybuild", "polybuild-py", "turbo", "moon")]
    for tool in caching:
        tree.run(tool, "noop", "warm")
    # no-op
    for rep in range(args.reps):
        for tool in cells["noop"]:
            if budget_left("noop", tool, args.reps):
                measure("noop", tool, rep)
        log(f"  N={n} noop rep {rep}: " + ", ".join(f"{t} {c.samples[-1]:.2f}s" for t, c in cells["noop"].items()
                                                    if len(c.samples) > rep))
    # edits
    for scenario in ("leaf", "root"):
        pkg = meta[scenario]["name"]
        src = root / "packages" / pkg / "src" / "f000.txt"
        original = src.read_bytes()
        for rep in range(args.reps):
            for tool in cells[scenario]:
                if not budget_left(scenario, tool, args.reps):
                    continue
                marker = f"edit {tool} {rep} {uuid.uuid4().hex}\n".encode()
                src.write_bytes(original + marker)
                try:
                    measure(scenario, tool, rep)
                    out = (root / "packages" / pkg / "out.txt").read_bytes()
                    if marker not in out:
                        raise RuntimeError(f"{tool} {scenario}: {pkg}/out.txt does not contain the edit")
                finally:
                    src.write_bytes(original)
                # back to the all-cached state (the shell loop: outputs of the original sources), unmeasured
                tree.run(tool, "noop" if tool in caching else scenario, f"{scenario}-{rep}-revert")
            log(f"  N={n} {scenario} rep {rep}: " + ", ".join(
                f"{t} {c.samples[-1]:.2f}s" for t, c in cells[scenario].items() if len(c.samples) > rep))
    tree.check_outputs()

    result = {"meta": {k: meta[k] for k in ("packages", "files", "layers", "seed", "mix", "file_size", "edges",
                                            "ecosystems")},
              "root_pkg": meta["root"]["name"], "root_affected": len(meta["root"]["affected"]),
              "root_direct": len(meta["root"]["direct"]),
              "leaf_pkg": meta["leaf"]["name"],
              "cells": {s: {t: c.to_json() for t, c in cells[s].items()} for s in SCENARIOS}}
    if "moon" in tools and args.moon_vcs_check:
        result["moon_vcs_noop"] = moon_vcs_noop(tree)
    if n == max(args.sizes) and not args.skip_hash:
        result["hashing"] = hashing(env, root)
    return result


def settle(seconds: float) -> None:
    """Let the filesystem forget the previous repo before anything is timed.

    Generating a repo deletes the previous one (36k files at N = 1000, with the tools' state) and writes 13k files
    and a git commit. On a journal-less ext4 such as this VM's, creating a file skips, one by one, every inode freed
    in the last minute (five while its inode table block is dirty), so without this pause the first tool measured
    after generation (polybuild) paid for the generator's deletions and its writeback."""
    if seconds > 0:
        log(f"settling for {seconds:.0f}s (sync, then wait out ext4's reuse delay for freed inodes)")
        os.sync()
        time.sleep(seconds)


def moon_vcs_noop(tree: Tree) -> dict:
    """moon with its default walk strategy (`vcs`: one `git ls-files` per project): no-op time, 2 samples."""
    ws = tree.root / ".moon" / "workspace.yml"
    original = ws.read_text()
    ws.write_text(original.replace("hasher:\n  walkStrategy: 'glob'\n", ""))
    try:
        tree.run("moon", "noop", "vcs-warm")  # the config change invalidates moon's hashes once
        samples = [tree.run("moon", "noop", f"vcs-noop-{i}") for i in range(2)]
    finally:
        ws.write_text(original)
        tree.run("moon", "noop", "vcs-restore")
    log(f"  moon (vcs walk) noop: {[round(s[0], 2) for s in samples]}")
    return {"median_s": statistics.median(s[0] for s in samples), "samples_s": [s[0] for s in samples],
            "executed": [s[1] for s in samples]}


HASH_SCRIPT = r"""
import json, os, subprocess, sys, time
from polybuild.support import fingerprint as f
root = sys.argv[1]
paths = [p for p in subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True,
         check=True).stdout.decode().split("\0") if p]
size = sum(os.lstat(os.path.join(root, p)).st_size for p in paths)
f.tree_digest(root, paths)  # warm the page cache
times = []
for _ in range(5):
    t = time.perf_counter(); d = f.tree_digest(root, paths); times.append(time.perf_counter() - t)
print(json.dumps({"backend": f.backend(), "files": len(paths), "bytes": size, "samples_s": times, "digest": d}))
"""


def hashing(env: Env, root: Path) -> dict:
    out = {}
    for name, extra in (("native", {"PYTHONPATH": env.pb_path}),
                        ("python", {"PYTHONPATH": env.pb_path_nonative, "POLYBUILD_NO_NATIVE": "1"})):
        res = json.loads(sh([env.pb_python, "-c", HASH_SCRIPT, str(root)], env=_tool_env(extra)))
        med = statistics.median(res["samples_s"])
        res.update(median_s=med, files_per_s=res["files"] / med, mib_per_s=res["bytes"] / med / 2**20)
        out[name] = res
        log(f"  tree_digest {name} ({res['backend']}): {res['files']} files, {res['bytes'] / 2**20:.1f} MiB, "
            f"{med * 1000:.0f} ms, {res['mib_per_s']:.0f} MiB/s")
    if out["native"]["digest"] != out["python"]["digest"]:
        raise RuntimeError("native and python tree digests differ")
    return out


# ---------------------------------------------------------------------------------------------------------- report

LABEL = {"cold": "cold (all tasks run)", "noop": "no-op", "leaf": "leaf edited", "root": "root edited"}


def fmt(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s"


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "—"


def markdown(results: dict) -> str:
    info = results["info"]
    lines = [f"Measured {info['date']} on {info['machine']}; `-j {info['jobs']}` / `--concurrency={info['jobs']}` "
             f"/ `-c {info['jobs']}` for every tool.",
             f"polybuild {info['polybuild_commit']}{' (+ uncommitted changes)' if info['polybuild_dirty'] else ''}"
             f" (native core: {info['native_backend']}), Python {info['python']} (start-up, `python -c pass`: "
             f"{info['python_startup_ms']}); turbo {info['turbo']}; "
             f"{info['moon']}; node {info['node']}, npm {info['npm']}; {info['git']}.", ""]
    for n, res in results["sizes"].items():
        m = res["meta"]
        lines += [f"### N = {n} ({m['ecosystems']['py']} Python, {m['ecosystems']['go']} Go, "
                  f"{m['ecosystems']['rust']} Rust; {m['edges']} edges, {m['layers']} layers, {m['files']} files "
                  f"of ~{m['file_size']} B each; the edited root has {res['root_affected'] - 1} transitive and "
                  f"{res['root_direct'] - 1} direct dependents)", "",
                  "Median wall time (repetitions in parentheses).", "",
                  "| scenario | polybuild | polybuild (no native) | turbo | moon | shell -P1 | shell -P2 | "
                  "pb / turbo | pb / moon | pb / shell -P2 |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for s in SCENARIOS:
            cells = res["cells"][s]

            def cell(t: str, cells: dict = cells) -> str:
                c = cells.get(t)
                if not c or not c["samples_s"]:
                    return "—"
                flag = " ⚠" if c["notes"] else ""
                return f"{fmt(c['median_s'])} ({len(c['samples_s'])}){flag}"

            med = {t: (cells[t]["median_s"] if t in cells else None) for t in ALL_TOOLS}
            lines.append(f"| {LABEL[s]} | {cell('polybuild')} | {cell('polybuild-py')} | {cell('turbo')} | "
                         f"{cell('moon')} | {cell('shell-seq')} | {cell('shell-par')} | "
                         f"{ratio(med['polybuild'], med['turbo'])} | {ratio(med['polybuild'], med['moon'])} | "
                         f"{ratio(med['polybuild'], med['shell-par'])} |")
        cold = res["cells"]["cold"]
        per_task = ", ".join(f"{t} {cold[t]['median_s'] / int(n) * 1000:.1f} ms"
                             for t in ("polybuild", "turbo", "moon", "shell-seq", "shell-par")
                             if t in cold and cold[t]["median_s"])
        ran = ", ".join(f"{t} {_executed(res['cells']['root'][t])}" for t in ("polybuild", "turbo", "moon", "shell-par")
                        if t in res["cells"]["root"])
        lines += ["", f"Cold run per task (wall / N): {per_task}.",
                  f"Tasks executed by the root edit: {ran}. turbo and moon rerun every transitive dependent "
                  f"(their hashes chain on dependency task hashes); polybuild keys on dependency *outputs*, and a "
                  f"dependent's out.txt holds only its own sources, so its reruns stop at the direct dependents "
                  f"unless the edited package is a Go module or Rust crate without binaries (a library to "
                  f"polybuild, whose files are inputs of every transitive user); the shell floor runs the edited "
                  f"package and its direct dependents."]
        if "moon_vcs_noop" in res:
            lines.append(f"moon with its default `hasher.walkStrategy: vcs` (one `git ls-files` per project): "
                         f"no-op {fmt(res['moon_vcs_noop']['median_s'])} (2); the table uses `glob`, moon's "
                         f"faster setting on this tree.")
        notes = [f"{s}/{t}: {note}" for s in SCENARIOS for t, c in res["cells"][s].items() for note in c["notes"]]
        if notes:
            lines += ["", "Warnings:", *[f"- {x}" for x in notes]]
        if "hashing" in res:
            h = res["hashing"]
            nat, py = h["native"], h["python"]
            lines += ["", f"`polybuild.fingerprint.tree_digest` over the whole N={n} tree ({nat['files']} files, "
                          f"{nat['bytes'] / 2**20:.1f} MiB, page cache warm, median of 5): native "
                          f"{fmt(nat['median_s'])} ({nat['files_per_s']:,.0f} files/s, {nat['mib_per_s']:.0f} MiB/s); "
                          f"pure Python {fmt(py['median_s'])} ({py['files_per_s']:,.0f} files/s, "
                          f"{py['mib_per_s']:.0f} MiB/s): native is {py['median_s'] / nat['median_s']:.1f}x faster."]
        lines.append("")
    return "\n".join(lines)


def _executed(cell: dict) -> str:
    runs = sorted({x for x in cell["executed"] if x is not None})
    return "/".join(map(str, runs)) if runs else "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100,1000", type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--files", type=int, default=10)
    ap.add_argument("--layers", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--file-size", type=int, default=2048)
    ap.add_argument("--mix", default="py=0.5,go=0.3,rust=0.2")
    ap.add_argument("--reps", type=int, default=5, help="max repetitions of no-op and edit runs")
    ap.add_argument("--cold-reps", type=int, default=3, help="max repetitions of cold runs")
    ap.add_argument("--budget", type=float, default=60.0,
                    help="stop repeating a (tool, scenario) once its measured runs took this many seconds")
    ap.add_argument("--settle", type=float, default=65.0,
                    help="seconds to wait after generating each repo, before timing anything (0: no wait)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--tools", default=",".join(ALL_TOOLS), type=lambda s: s.split(","))
    ap.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "polybuild-bench")
    ap.add_argument("--build-native", action="store_true", help="rebuild the native core even if installed")
    ap.add_argument("--worktree", action="store_true",
                    help="benchmark python/polybuild as it is in the work tree (default: as committed at HEAD)")
    ap.add_argument("--no-moon-vcs-check", dest="moon_vcs_check", action="store_false")
    ap.add_argument("--skip-hash", action="store_true")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()

    t0 = time.perf_counter()
    env = setup(args.workdir.resolve(), args.jobs, args.build_native, args.worktree)
    log(f"setup: {env.info}")
    results = {"info": env.info, "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "sizes": {}}
    results["info"]["loadavg_start"] = os.getloadavg()
    for n in args.sizes:
        results["sizes"][str(n)] = bench_size(env, n, args)
    results["info"]["loadavg_end"] = os.getloadavg()
    results["info"]["total_s"] = round(time.perf_counter() - t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (args.out / f"{stamp}.json").write_text(json.dumps(results, indent=1) + "\n")
    md = markdown(results)
    (args.out / f"{stamp}.md").write_text(md)
    print(md)
    log(f"done in {results['info']['total_s']:.0f}s: {args.out / stamp}.json/.md")


if __name__ == "__main__":
    main()
