#!/usr/bin/env python3
"""Generate a synthetic polyglot monorepo for benchmarking polybuild against turbo, moon and a shell loop.

N packages under packages/pNNNN, each a Python package (pyproject.toml), a Go module (go.mod) or a Rust crate
(member of one root Cargo workspace), in a layered dependency DAG: a package of layer k > 0 depends on 1-3
packages of the same ecosystem in layer k-1 (and sometimes one further down), expressed natively
(`dependencies = [...]`, `replace ... => ../x`, `{ path = "../x" }`). Every package has F text files in src/ and
one trivial task, `concat` (`cat src/*.txt > out.txt`), declared for each tool over the same tree:

- polybuild: one workspace task in polybuild.toml;
- turbo: npm workspaces (package.json per package with the same dependencies and a `concat` script), turbo.json;
- moon: .moon/workspace.yml and a moon.yml per package (dependsOn, task with deps ^:concat);
- shell floor: bench-meta.json lists the packages in topological order and by layer.

The repository is made a git repo with one commit (polybuild, turbo and moon all read git).

    python bench/generate.py DEST --packages 1000 --files 10 --layers 10 --seed 1
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
from pathlib import Path

TASK_SCRIPT = "cat src/*.txt > out.txt"
ECOSYSTEMS = ("py", "go", "rust")
WORDS = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima",
    "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey", "xray",
    "yankee", "zulu",
]
NPM_VERSION = "11.19.1"


def plan_graph(n: int, layers: int, seed: int, mix: dict[str, float]) -> list[dict]:
    """Packages with their layer, ecosystem and dependencies (indices into the list, always in lower layers)."""
    rng = random.Random(seed)
    layers = max(1, min(layers, n))
    per_layer = [n // layers + (1 if i < n % layers else 0) for i in range(layers)]
    names, weights = zip(*mix.items(), strict=True)
    pkgs: list[dict] = []
    by_layer_eco: list[dict[str, list[int]]] = []
    for layer, count in enumerate(per_layer):
        here: dict[str, list[int]] = {e: [] for e in ECOSYSTEMS}
        for j in range(count):
            # Layer 0 gets every ecosystem first, so every later package has a same-ecosystem dependency.
            eco = names[j % len(names)] if layer == 0 and j < len(names) else rng.choices(names, weights)[0]
            idx = len(pkgs)
            deps: set[int] = set()
            if layer > 0:
                below = by_layer_eco[layer - 1][eco] or [i for lv in by_layer_eco for i in lv[eco]]
                deps.update(rng.sample(below, min(len(below), rng.randint(1, 3))))
                if layer > 1 and rng.random() < 0.3:
                    further = [i for lv in by_layer_eco[: layer - 1] for i in lv[eco]]
                    if further:
                        deps.add(rng.choice(further))
            pkgs.append({"index": idx, "name": f"p{idx:04d}", "eco": eco, "layer": layer, "deps": sorted(deps)})
            here[eco].append(idx)
        by_layer_eco.append(here)
    return pkgs


def transitive_dependents(pkgs: list[dict]) -> list[set[int]]:
    users: list[list[int]] = [[] for _ in pkgs]
    for p in pkgs:
        for d in p["deps"]:
            users[d].append(p["index"])
    out: list[set[int]] = [set() for _ in pkgs]
    for p in reversed(pkgs):  # dependents are always in higher layers, i.e. later in the list
        for u in users[p["index"]]:
            out[p["index"]].add(u)
            out[p["index"]] |= out[u]
    return out


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def source_text(rng: random.Random, size: int) -> str:
    lines, total = [], 0
    while total < size:
        line = " ".join(rng.choice(WORDS) for _ in range(8))
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines) + "\n"


def generate(dest: Path, n: int, files: int, layers: int, seed: int, mix: dict[str, float], file_size: int,
             moon_walk: str = "glob") -> dict:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    rng = random.Random(seed + 1)
    pkgs = plan_graph(n, layers, seed, mix)
    names = [p["name"] for p in pkgs]

    # --- shared root files -------------------------------------------------------------------------------------
    write(dest / ".gitignore", "out.txt\nnode_modules/\n.turbo/\n.moon/cache/\n.polybuild/\ntarget/\ndist/\n")
    write(dest / "polybuild.toml", f"""# polybuild: the task is declared once for every package.
[tasks.concat]
cmd = ["sh", "-c", "{TASK_SCRIPT}"]
inputs = ["src/*.txt"]
outputs = ["out.txt"]
""")
    write(dest / "package.json", json.dumps({
        "name": "bench-root", "private": True, "packageManager": f"npm@{NPM_VERSION}",
        "workspaces": ["packages/*"],
    }, indent=2) + "\n")
    write(dest / "turbo.json", json.dumps({
        "$schema": "https://turborepo.com/schema.json",
        "ui": "stream",
        "tasks": {"concat": {"dependsOn": ["^concat"], "inputs": ["src/*.txt"], "outputs": ["out.txt"]}},
    }, indent=2) + "\n")
    write(dest / ".moon/workspace.yml", "projects:\n  - 'packages/*'\ntelemetry: false\n"
          "vcs:\n  client: 'git'\n  defaultBranch: 'main'\n"
          + (f"hasher:\n  walkStrategy: '{moon_walk}'\n" if moon_walk != "vcs" else ""))
    rust = [p for p in pkgs if p["eco"] == "rust"]
    if rust:
        members = "".join(f'    "packages/{p["name"]}",\n' for p in rust)
        write(dest / "Cargo.toml", f'[workspace]\nresolver = "2"\nmembers = [\n{members}]\n')

    # --- packages ----------------------------------------------------------------------------------------------
    for p in pkgs:
        d = dest / "packages" / p["name"]
        deps = [names[i] for i in p["deps"]]
        for k in range(files):
            write(d / "src" / f"f{k:03d}.txt", f"{p['name']} file {k}\n" + source_text(rng, file_size))
        if p["eco"] == "py":
            dep_list = ", ".join(f'"{x}"' for x in deps)
            write(d / "pyproject.toml", f'[build-system]\nrequires = ["hatchling"]\nbuild-backend = '
                  f'"hatchling.build"\n\n[project]\nname = "{p["name"]}"\nversion = "0.1.0"\n'
                  f'dependencies = [{dep_list}]\n')
        elif p["eco"] == "go":
            req = "".join(f"require example.com/{x} v0.0.0\n" for x in deps)
            rep = "".join(f"replace example.com/{x} => ../{x}\n" for x in deps)
            write(d / "go.mod", f"module example.com/{p['name']}\n\ngo 1.21\n\n{req}{rep}")
        else:
            dep_lines = "".join(f'{x} = {{ path = "../{x}" }}\n' for x in deps)
            write(d / "Cargo.toml", f'[package]\nname = "{p["name"]}"\nversion = "0.1.0"\nedition = "2021"\n'
                  f"publish = false\n\n[dependencies]\n{dep_lines}")
            write(d / "src/lib.rs", "")
        write(d / "package.json", json.dumps({
            "name": p["name"], "version": "0.1.0", "private": True,
            "scripts": {"concat": TASK_SCRIPT},
            "dependencies": {x: "*" for x in deps},
        }, indent=2) + "\n")
        dep_yaml = "".join(f"  - '{x}'\n" for x in deps)
        write(d / "moon.yml", "language: 'unknown'\n"
              + (f"dependsOn:\n{dep_yaml}" if deps else "")
              + f"tasks:\n  concat:\n    script: '{TASK_SCRIPT}'\n    deps: ['^:concat']\n"
              "    inputs: ['src/*.txt']\n    outputs: ['out.txt']\n    options:\n      cache: true\n")

    # --- metadata for the runner -------------------------------------------------------------------------------
    dependents = transitive_dependents(pkgs)
    roots = [p["index"] for p in pkgs if not p["deps"]]
    root = max(roots, key=lambda i: (len(dependents[i]), -i))
    leaves = [p["index"] for p in pkgs if not dependents[p["index"]]]
    leaf = max(leaves, key=lambda i: (pkgs[i]["layer"], i))
    by_layer: dict[int, list[str]] = {}
    for p in pkgs:
        by_layer.setdefault(p["layer"], []).append(p["name"])
    meta = {
        "packages": n, "files": files, "layers": layers, "seed": seed, "mix": mix, "file_size": file_size,
        "edges": sum(len(p["deps"]) for p in pkgs),
        "ecosystems": {e: sum(1 for p in pkgs if p["eco"] == e) for e in ECOSYSTEMS},
        "topo_order": names,  # layers are in order and deps only point down, so index order is topological
        "layers_list": [by_layer[k] for k in sorted(by_layer)],
        # Every transitive dependent's task hash changes (turbo, moon); but since out.txt holds only a package's
        # own sources, only the direct dependents' inputs really change (polybuild keys on dependency outputs).
        "root": {"name": names[root], "affected": sorted([names[root], *(names[i] for i in dependents[root])]),
                 "direct": sorted([names[root], *(p["name"] for p in pkgs if root in p["deps"])])},
        "leaf": {"name": names[leaf], "affected": [names[leaf]], "direct": [names[leaf]]},
        "deps": {p["name"]: [names[i] for i in p["deps"]] for p in pkgs},
    }
    write(dest / "bench-meta.json", json.dumps(meta, indent=1) + "\n")

    # turbo reads the npm lockfile to resolve workspaces; every dependency is a workspace package, so no network.
    if shutil.which("npm"):
        subprocess.run(["npm", "install", "--package-lock-only", "--offline", "--ignore-scripts", "--no-audit",
                        "--no-fund", "--loglevel=error"], cwd=dest, check=True, stdout=subprocess.DEVNULL)

    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=dest, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "synthetic monorepo"], cwd=dest, check=True)
    return meta


def parse_mix(text: str) -> dict[str, float]:
    mix = {}
    for part in text.split(","):
        eco, _, weight = part.partition("=")
        if eco not in ECOSYSTEMS:
            raise SystemExit(f"unknown ecosystem {eco!r} in --mix (use {', '.join(ECOSYSTEMS)})")
        mix[eco] = float(weight)
    return mix


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dest", type=Path)
    ap.add_argument("-n", "--packages", type=int, default=100)
    ap.add_argument("-f", "--files", type=int, default=10, help="source files per package")
    ap.add_argument("--layers", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--file-size", type=int, default=2048, help="approximate bytes per source file")
    ap.add_argument("--mix", default="py=0.5,go=0.3,rust=0.2", help="ecosystem weights")
    ap.add_argument("--moon-walk", choices=("glob", "vcs"), default="glob",
                    help="moon's hasher.walkStrategy (vcs, moon's default, runs one `git ls-files` per project)")
    args = ap.parse_args()
    meta = generate(args.dest.resolve(), args.packages, args.files, args.layers, args.seed, parse_mix(args.mix),
                    args.file_size, args.moon_walk)
    print(f"{args.dest}: {meta['packages']} packages {meta['ecosystems']}, {meta['edges']} edges, "
          f"{meta['layers']} layers; root {meta['root']['name']} ({len(meta['root']['affected'])} affected), "
          f"leaf {meta['leaf']['name']}")


if __name__ == "__main__":
    main()
