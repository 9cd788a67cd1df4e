#!/usr/bin/env python3
"""Cold `polybuild run concat` of the synthetic repo (bench/generate.py) executed on buildbox-casd (buildbox-run in
bubblewrap, `--jobs=2`) against the same run locally, `-j 2`; the outputs of both must be identical (issue 16).

    python bench/reapi_execute.py REPO
"""

from __future__ import annotations

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


def cold_run(repo: Path, cache: Path) -> tuple[float, dict[str, bytes]]:
    for out in repo.glob("packages/*/out.txt"):
        out.unlink()
    shutil.rmtree(repo / ".polybuild", ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "python"), "POLYBUILD_CACHE_DIR": str(cache),
           "POLYBUILD_FAST_PATH": "0"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "polybuild", "run", "concat", "-j", "2"], cwd=repo, env=env,
                          capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0 or "warning" in proc.stderr:
        sys.exit(proc.stderr[-3000:])
    return took, {str(p): p.read_bytes() for p in repo.glob("packages/*/out.txt")}


def main() -> None:
    repo = Path(sys.argv[1])
    work = Path(tempfile.mkdtemp(prefix="reapi-exec-bench-"))
    casd = Casd(work / "casd", execute=True)
    config = repo / "polybuild.toml"
    original = config.read_text()
    try:
        local, local_outputs = cold_run(repo, work / "local")
        config.write_text(original + f"\n[remote]\nurl = '{casd.url}'\nexecute = ['command']\n")
        remote, remote_outputs = cold_run(repo, work / "remote")
        assert remote_outputs == local_outputs, "the remote outputs differ from the local ones"
        print(f"cold run of {len(local_outputs)} tasks: local {local:.1f} s, executed on buildbox-casd {remote:.1f} s "
              "(identical outputs)")
    finally:
        config.write_text(original)
        casd.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
