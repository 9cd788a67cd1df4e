#!/usr/bin/env python3
"""One small Go module (fatih/color and its three dependencies) built by `polybuild build`: here with a warm Go
build cache, here with an empty one, and on buildbox-casd (`[remote] execute = ["go"]`, buildbox-run in
bubblewrap); every build a cache miss for polybuild and casd (each run has its own source text), the median of RUNS
each; the three binaries of a run must be identical (issue 16).

    python bench/reapi_go.py
"""

from __future__ import annotations

import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from reapi_server import Casd  # noqa: E402

RUNS = 3
MAIN = 'package main\n\nimport "github.com/fatih/color"\n\nfunc main() {{ color.Green("{text}") }}\n'


def module(work: Path) -> Path:
    """The module with its go.mod and go.sum (go get: from the module cache, or the proxy)."""
    src = work / "module"
    src.mkdir()
    (src / "main.go").write_text(MAIN.format(text="hello"))
    subprocess.run(["go", "mod", "init", "example.com/hello"], cwd=src, check=True, capture_output=True)
    subprocess.run(["go", "get", "github.com/fatih/color@v1.18.0"], cwd=src, check=True, capture_output=True)
    subprocess.run(["go", "mod", "tidy"], cwd=src, check=True, capture_output=True)
    return src


def build(work: Path, src: Path, name: str, text: str, url: str = "", gocache: str = "") -> tuple[float, str]:
    """Seconds for `polybuild build` of a copy of the module whose main prints `text`; the binary's sha256."""
    root = work / name
    shutil.copytree(src, root / "hello")
    (root / "hello" / "main.go").write_text(MAIN.format(text=text))
    config = "version = '1.0.0'\n"
    if url:
        config += f"\n[remote]\nurl = '{url}'\nexecute = ['go']\n"
    (root / "polybuild.toml").write_text(config)
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "python"), "POLYBUILD_CACHE_DIR": str(root / ".cache"),
           "POLYBUILD_FAST_PATH": "0", **({"GOCACHE": gocache} if gocache else {})}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "polybuild", "build"], cwd=root, env=env, capture_output=True,
                          text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0 or "warning" in proc.stderr:
        sys.exit(proc.stderr[-3000:])
    return took, hashlib.sha256((root / "dist" / "hello").read_bytes()).hexdigest()


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="reapi-go-bench-"))
    casd = Casd(work / "casd", execute=True)
    try:
        src = module(work)
        times: dict[str, list[float]] = {"local, warm Go cache": [], "local, empty Go cache": [], "casd": []}
        digests = set()
        for run in range(RUNS):
            for i, (kind, seconds) in enumerate(times.items()):
                cold = tempfile.mkdtemp(dir=work) if "empty" in kind else ""
                took, sha = build(work, src, f"{i}-{run}", f"run {run}", casd.url if kind == "casd" else "", cold)
                seconds.append(took)
                digests.add((run, sha))
        assert len(digests) == RUNS, "a remote binary differs from the local one"
        print(" | ".join(f"{kind} {statistics.median(s):.1f} s" for kind, s in times.items()),
              f"(median of {RUNS}; identical binaries)")
    finally:
        casd.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
