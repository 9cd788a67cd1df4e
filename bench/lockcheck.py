"""Time `polybuild lock check` cold (empty polybuild cache) and warm, on a synthetic repo of N Go modules (issue 12
§5: 135 s on a real repository with 53 go.sum files) or on any checkout given with --repo (e.g. ai-dynamo/dynamo).

    python bench/lockcheck.py --modules 50            # generates /tmp/polybuild-bench-go50 (needs the Go proxy once)
    python bench/lockcheck.py --repo /tmp/dynamo      # an existing checkout

Each module imports three of eleven real, commonly used modules (cobra, logrus, prometheus client, zap, testify,
...), so `go mod tidy -diff` and `go mod verify` do the work they do on a real repository; the Go module cache is
filled first, so "cold" means polybuild's cache is empty, not the network. Speed is reported, never asserted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POOL = [  # (import path, module, version)
    ("github.com/google/uuid", "github.com/google/uuid", "v1.6.0"),
    ("github.com/pkg/errors", "github.com/pkg/errors", "v0.9.1"),
    ("github.com/spf13/cobra", "github.com/spf13/cobra", "v1.8.1"),
    ("github.com/sirupsen/logrus", "github.com/sirupsen/logrus", "v1.9.3"),
    ("gopkg.in/yaml.v3", "gopkg.in/yaml.v3", "v3.0.1"),
    ("github.com/stretchr/testify/assert", "github.com/stretchr/testify", "v1.9.0"),
    ("golang.org/x/sync/errgroup", "golang.org/x/sync", "v0.8.0"),
    ("github.com/opencontainers/go-digest", "github.com/opencontainers/go-digest", "v1.0.0"),
    ("github.com/prometheus/client_golang/prometheus", "github.com/prometheus/client_golang", "v1.20.5"),
    ("github.com/gorilla/mux", "github.com/gorilla/mux", "v1.8.1"),
    ("go.uber.org/zap", "go.uber.org/zap", "v1.27.0"),
]


def generate(root: Path, modules: int) -> None:
    """N modules under mods/mNN, each tidied by the real go (go.sum written), committed to git."""
    env = {**os.environ, "GOWORK": "off", "GOFLAGS": "-mod=mod"}
    for i in range(modules):
        directory = root / "mods" / f"m{i:02d}"
        directory.mkdir(parents=True, exist_ok=True)
        picks = [POOL[(i + k) % len(POOL)] for k in range(3)]
        requires = "".join(f"\t{module} {version}\n" for _, module, version in picks)
        (directory / "go.mod").write_text(f"module example.com/bench/m{i:02d}\n\ngo 1.23\n\nrequire (\n{requires})\n")
        imports = "".join(f'\t_ "{path}"\n' for path, _, _ in picks)
        (directory / "main.go").write_text(f"package main\n\nimport (\n{imports})\n\nfunc main() {{}}\n")
        subprocess.run(["go", "mod", "tidy"], cwd=directory, check=True, env=env)
    (root / "polybuild.toml").write_text("")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "bench"], cwd=root, check=True)


def timed(root: Path, cache: Path, *args: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python"), "POLYBUILD_CACHE_DIR": str(cache)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "polybuild", "lock", "check", *args], cwd=root, env=env,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    print(f"  {' '.join(['lock check', *args]):24} {elapsed:6.2f} s  exit {proc.returncode}: "
          f"{(proc.stdout or proc.stderr).strip().splitlines()[-1]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modules", type=int, default=50)
    parser.add_argument("--repo", type=Path, help="an existing checkout instead of the synthetic Go repo")
    args = parser.parse_args()
    root = args.repo or Path(tempfile.gettempdir()) / f"polybuild-bench-go{args.modules}"
    if args.repo is None and not (root / ".git").is_dir():
        generate(root, args.modules)
    print(f"{root}: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="polybuild-bench-cache-") as cache:
        timed(root, Path(cache))  # cold: polybuild's cache empty (the tools' own caches warm)
        timed(root, Path(cache))  # warm: nothing changed
        timed(root, Path(cache), "--no-cache")  # every check re-run, in parallel
    return 0


if __name__ == "__main__":
    sys.exit(main())
