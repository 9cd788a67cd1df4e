#!/usr/bin/env python3
"""Restore of the N-package synthetic repo (bench/generate.py) from a remote cache into an empty local cache:
buildbox-casd over REAPI (grpc://) against nginx over bazel-remote's HTTP protocol (issue 16).

Both servers are filled by one cold run each (uploading); then each timed run starts with an empty local cache
and no `out.txt` in the tree, as a fresh checkout would, and restores every task from its server.

    python bench/reapi_restore.py REPO [--jobs 2]

Needs buildbox-casd (tests/reapi_server.py downloads it) and nginx (tests/servers.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from reapi_server import Casd  # noqa: E402
from servers import Nginx  # noqa: E402


def polybuild(repo: Path, cache: Path, *args: str) -> float:
    for out in repo.glob("packages/*/out.txt"):
        out.unlink()
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "python"), "POLYBUILD_CACHE_DIR": str(cache),
           "POLYBUILD_FAST_PATH": "0"}
    shutil.rmtree(repo / ".polybuild", ignore_errors=True)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "polybuild", "run", "concat", *args], cwd=repo, env=env,
                          capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0 or "warning" in proc.stderr:
        sys.exit(proc.stderr[-3000:])
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("repo", type=Path)
    ap.add_argument("--jobs", default="2")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="reapi-bench-"))
    casd, nginx = Casd(work / "casd"), Nginx(work / "nginx")
    try:
        rows = []
        for name, url in (("REAPI (buildbox-casd, grpc://)", casd.url), ("HTTP (nginx, bazel-remote layout)",
                                                                          nginx.url)):
            cold = polybuild(args.repo, work / f"fill-{name[:4]}", "-j", args.jobs, "--remote", url,
                             "--remote-upload")
            restore = polybuild(args.repo, work / f"restore-{name[:4]}", "-j", args.jobs, "--remote", url)
            rows.append((name, cold, restore))
        local = polybuild(args.repo, work / "fill-REAP", "-j", args.jobs)  # the local store alone, warm
        print("| remote | cold run, uploading | restore into an empty local cache |")
        print("|---|---:|---:|")
        for name, cold, restore in rows:
            print(f"| {name} | {cold:.1f} s | {restore:.1f} s |")
        print(f"| (local store only, warm) | | {local:.1f} s |")
    finally:
        casd.stop()
        nginx.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
