#!/usr/bin/env python3
"""Profile one `polybuild` command in every thread (cProfile alone only sees the main thread, while polybuild
runs tasks in a thread pool), and print the merged profile.

    cd <generated repo> && PYTHONPATH=/work/main/python python /work/main/bench/profile_run.py \
        --out /tmp/noop.prof -- run concat -j 2

Prints the top functions by cumulative time (all threads merged: a worker's time appears under
`Executor._run_task`) and by own time, and the wall time of the main thread's phases.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import threading
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", help="write the merged stats here (pstats format)")
    ap.add_argument("--top", type=int, default=35)
    ap.add_argument("args", nargs=argparse.REMAINDER, help="polybuild arguments, after --")
    ns = ap.parse_args()
    args = ns.args[1:] if ns.args[:1] == ["--"] else ns.args

    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()
    original_run = threading.Thread.run

    def profiled_run(self: threading.Thread) -> None:
        prof = cProfile.Profile()
        with lock:
            profiles.append(prof)
        prof.enable()
        try:
            original_run(self)
        finally:
            prof.disable()

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    main_prof = cProfile.Profile()
    start = time.perf_counter()
    main_prof.enable()
    try:
        from polybuild.cli.main import main as pb_main

        sys.argv = ["polybuild", *args]
        code = pb_main(args)
    finally:
        main_prof.disable()
    wall = time.perf_counter() - start

    stats = pstats.Stats(main_prof, stream=io.StringIO())
    for p in profiles:
        stats.add(p)
    if ns.out:
        stats.dump_stats(ns.out)
    out = io.StringIO()
    stats.stream = out
    print(f"wall {wall:.3f}s, {len(profiles)} worker threads profiled", file=sys.stderr)
    stats.sort_stats("cumulative").print_stats(ns.top)
    stats.sort_stats("tottime").print_stats(ns.top)
    sys.stderr.write(out.getvalue())
    return code or 0


if __name__ == "__main__":
    raise SystemExit(main())
