#!/usr/bin/env python3
"""Benchmark the Python side of `polybuild deny --fetch` (issue 12): resolution (when there is no uv.lock), fetching
the locked distributions and reading their evidence, with a fresh polybuild cache per mode, so every byte is
fetched. Prints, per mode, what polybuild's own summary line counts (bytes, ranged reads, whole files) and the wall
time of the run and of its fetch (from the first to the last file written into the cache).

    python bench/pyfetch.py /tmp/dynamo                     # both modes: metadata (ranged), then full
    python bench/pyfetch.py /tmp/dynamo --modes metadata

The workspace's `[licenses] exclude-*` settings apply (dynamo needs `exclude-extras = ["trtllm"]`: NVIDIA's index).
The uv and HTTP caches of the machine are not cleared: only polybuild's cache is fresh.
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

_RUN = """
import sys
from pathlib import Path
from polybuild import api
from polybuild.licenses import pypi
from polybuild.licenses.exclusions import exclusions

ws = api.load(Path(sys.argv[1])).ws
print(len(pypi.packages(ws, fetch=sys.argv[2], leave_out=exclusions(ws))), "packages", file=sys.stderr)
"""


def measure(workspace: Path, mode: str) -> None:
    cache = Path(tempfile.mkdtemp(prefix=f"pyfetch-{mode}-"))
    env = {**os.environ, "POLYBUILD_CACHE_DIR": str(cache),
           "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "python")}
    try:
        start = time.time()
        proc = subprocess.run([sys.executable, "-c", _RUN, str(workspace), mode], env=env, capture_output=True,
                              text=True, check=False)
        wall = time.time() - start
        written = sorted(p.stat().st_mtime for p in (cache / "licenses" / "pypi" / "dists").rglob("*")
                         if p.is_file())
        fetch = written[-1] - written[0] if written else 0.0
        print(f"{mode}: {wall:.1f} s wall, fetch {fetch:.1f} s; {proc.stderr.strip()}")
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--modes", nargs="+", default=["metadata", "full"], choices=("metadata", "full"))
    args = parser.parse_args()
    for mode in args.modes:
        measure(args.workspace, mode)


if __name__ == "__main__":
    main()
