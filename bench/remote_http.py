#!/usr/bin/env python3
"""Benchmark the HTTP remote cache client (issue 16) against a real nginx (WebDAV) on loopback: restoring (fetching
into an empty local store and writing the files out, as a build's cache hit does) and uploading

- one entry of 1000 small blobs (8 KiB each),
- 1000 entries of one small blob each, fetched by 2 threads (what `-j 2` does on a fresh checkout),
- one entry of one 500 MiB blob,

each in a fresh process, so its wall time and peak RSS are its own. Blobs are put on the server by writing nginx's
directory for restores; uploads go through the client.

    python bench/remote_http.py                      # the client in python/ of this checkout
    python bench/remote_http.py --before /tmp/old/python  # and an older checkout's, in turn, under the same load

The older client's `push` took the blob's bytes from its callback; it is given bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from servers import Nginx  # the test suite's nginx

SMALL = 8 << 10
BIG = 500 << 20

_CHILD = """
import json, sys, threading, time
from pathlib import Path
from polybuild.cache.remote import RemoteCache, RemoteFile
from polybuild.cache.store import LocalStore
from polybuild.cache.tasks import TaskCache

mode, url, work, as_bytes = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4] == "1"
plan = json.loads((work / "plan.json").read_text())
start = time.monotonic()
if mode == "fetch":
    cache = TaskCache(LocalStore(work / "store"), RemoteCache(url))
    keys = list(plan)
    def fetch(part):
        for key in part:
            assert cache.restore(key, "t", work / "restored", work / "t.log") is not None, key
    threads = [threading.Thread(target=fetch, args=(keys[i::2],)) for i in range(2)]
    for t in threads: t.start()
    for t in threads: t.join()
else:
    cache = RemoteCache(url, upload=True)
    for key, files in plan.items():
        listed = [RemoteFile(p, d, s, False) for p, d, s in files]
        paths = {d: work / "src" / p for p, d, s in files}
        cache.push(key, listed, None, (lambda d: paths[d].read_bytes()) if as_bytes else paths.get)
# VmHWM: this process's own peak (ru_maxrss would take over the parent's at exec)
hwm = next(l for l in Path('/proc/self/status').read_text().splitlines() if l.startswith('VmHWM:'))
print(time.monotonic() - start, int(hwm.split()[1]) * 1024)
"""


def _sources(work: Path, scenario: str) -> dict[str, list[tuple[str, str, int]]]:
    """Write the scenario's files under work/src; key -> [(path, sha256, size)]."""
    src = work / "src"
    src.mkdir(parents=True)
    plan: dict[str, list[tuple[str, str, int]]] = {}
    if scenario == "one 500 MiB blob":
        path = src / "big"
        h = hashlib.sha256()
        with open(path, "wb") as f:
            for _ in range(BIG >> 20):
                chunk = os.urandom(1 << 20)
                h.update(chunk)
                f.write(chunk)
        plan["b" * 64] = [("big", h.hexdigest(), BIG)]
        return plan
    for i in range(1000):
        data = os.urandom(SMALL)
        (src / f"f{i}").write_bytes(data)
        key = "a" * 64 if scenario == "1 entry x 1000 blobs" else hashlib.sha256(f"k{i}".encode()).hexdigest()
        plan.setdefault(key, []).append((f"f{i}", hashlib.sha256(data).hexdigest(), SMALL))
    return plan


def _serve(nginx: Nginx, work: Path, plan: dict[str, list[tuple[str, str, int]]]) -> None:
    """Put the plan's entries on the server as an upload would leave them."""
    (nginx.data / "cas").mkdir(exist_ok=True)
    (nginx.data / "ac").mkdir(exist_ok=True)
    for key, files in plan.items():
        for path, digest, _ in files:
            shutil.copyfile(work / "src" / path, nginx.data / "cas" / digest)
        outputs = [{"path": p, "digest": {"hash": d, "sizeBytes": str(s)}} for p, d, s in files]
        (nginx.data / "ac" / key).write_text(json.dumps({"exitCode": 0, "outputFiles": outputs}))


def _run(mode: str, url: str, work: Path, src: str, as_bytes: bool) -> tuple[float, int]:
    out = subprocess.run([sys.executable, "-c", _CHILD, mode, url, str(work), "1" if as_bytes else "0"],
                         env={**os.environ, "PYTHONPATH": src}, capture_output=True, text=True, check=True)
    seconds, peak = out.stdout.split()
    return float(seconds), int(peak)


def _measure(nginx: Nginx, work: Path, plan: dict, src: str, as_bytes: bool) -> tuple[tuple, tuple]:
    """(seconds, peak RSS) of a restore, then of an upload, each onto an empty store or server."""
    _serve(nginx, work, plan)
    restore = _run("fetch", nginx.url, work, src, as_bytes)
    for done in (nginx.data / "cas", nginx.data / "ac", work / "store", work / "restored"):
        shutil.rmtree(done)
    upload = _run("push", nginx.url, work, src, as_bytes)
    for done in (nginx.data / "cas", nginx.data / "ac"):
        shutil.rmtree(done)
    return restore, upload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", default=str(Path(__file__).resolve().parent.parent / "python"))
    parser.add_argument("--before", help="an older checkout's python/ (its push takes bytes), timed in turn with "
                        "--src in every repetition, so both see the same load")
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario; the table gives the median")
    args = parser.parse_args()
    clients = ([("before", args.before, True)] if args.before else []) + [("after", args.src, False)]
    print("| scenario | client | restore s | restore peak RSS MiB | upload s | upload peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for scenario in ("1 entry x 1000 blobs", "1000 entries x 1 blob", "one 500 MiB blob"):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            (work / "plan.json").write_text(json.dumps(plan := _sources(work, scenario)))
            nginx = Nginx(work / "nginx")
            runs: dict[str, list[tuple[tuple, tuple]]] = {name: [] for name, _, _ in clients}
            try:
                for _ in range(args.repeat):
                    for name, src, as_bytes in clients:
                        runs[name].append(_measure(nginx, work, plan, src, as_bytes))
            finally:
                nginx.stop()
        for name, measured in runs.items():
            restore = statistics.median_low(r for r, _ in measured)
            upload = statistics.median_low(u for _, u in measured)
            print(f"| {scenario} | {name} | {restore[0]:.2f} | {restore[1] >> 20} | {upload[0]:.2f} | "
                  f"{upload[1] >> 20} |", flush=True)


if __name__ == "__main__":
    main()
