"""The correctness test that cannot be gamed: random sequences of edits to the demo monorepo, each built
incrementally and compared with a clean build of the same tree. Artifacts must be byte-identical, and every task
outside the edit's reach (declared here, independently of polybuild) must come from the cache.

The no-op fast path is on, so it is held to the same standard. Set POLYBUILD_FUZZ_SEED to replay a sequence; the
seed is in every failure message.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import copy_example, polybuild_env, run_polybuild
from test_cache import statuses

pytestmark = pytest.mark.e2e

RUNTIME = {"py:serving-runtime", "rust:serving-cli"}  # everything built from lib/runtime
SERVING = {"py:serving", "py:serving-client"}  # the pure package and the client whose server extra pulls it in
OPERATOR = {"go:operator", "image:operator-image"}  # the Go binary and the image assembled from it
CONFIG = {"image:operator-image"}  # an image's inputs include the config file that declares it
ALL = {"py:serving-runtime", "rust:serving-cli"} | OPERATOR | SERVING


@dataclass
class Edit:
    name: str
    apply: Callable[[Path, dict[str, str]], None]
    reach: set[str]  # tasks that may rebuild; all others must be cached


def append(rel: str, text: str) -> Callable[[Path, dict[str, str]], None]:
    def do(root: Path, env: dict[str, str]) -> None:
        with open(root / rel, "a", encoding="utf-8") as f:
            f.write(text)
    return do


def replace(rel: str, old: str, new: str) -> Callable[[Path, dict[str, str]], None]:
    def do(root: Path, env: dict[str, str]) -> None:
        path = root / rel
        text = path.read_text(encoding="utf-8")
        path.write_text(re.sub(old, new, text, count=1), encoding="utf-8")
    return do


def set_env(name: str, value: str) -> Callable[[Path, dict[str, str]], None]:
    def do(root: Path, env: dict[str, str]) -> None:
        env[name] = value
    return do


def move_away_and_back(rel: str) -> Callable[[Path, dict[str, str]], None]:
    """Delete a file; the next edit of this kind restores it."""
    def do(root: Path, env: dict[str, str]) -> None:
        path, parked = root / rel, root.parent / (rel.replace("/", "_") + ".parked")
        if path.exists():
            shutil.move(path, parked)
        else:
            shutil.move(parked, path)
    return do


def toggle_block(rel: str, block: str) -> Callable[[Path, dict[str, str]], None]:
    """Append a block of text; the next edit of this kind takes it out again."""
    def do(root: Path, env: dict[str, str]) -> None:
        path = root / rel
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace(block, "") if block in text else text + block, encoding="utf-8")
    return do


def toggle_file(rel: str, content: str) -> Callable[[Path, dict[str, str]], None]:
    """Create a new file; the next edit of this kind removes it."""
    def do(root: Path, env: dict[str, str]) -> None:
        path = root / rel
        if path.exists():
            path.unlink()
        else:
            path.write_text(content)
    return do


def edits() -> list[Edit]:
    n = random.randint(1, 10**6)
    return [
        Edit("go source", append("deploy/operator/cmd/operator/main.go", f"\n// edit {n}\n"), OPERATOR),
        Edit("go library", replace("deploy/api/deployment.go", r"package api", f"// edit {n}\npackage api"),
             OPERATOR),
        Edit("rust source", append("lib/runtime/src/lib.rs", f"\npub fn edit_{n}() -> u64 {{ {n} }}\n"),
             RUNTIME | SERVING),
        Edit("python source", append("components/serving/src/serving/cli.py", f"\n# edit {n}\n"), SERVING),
        Edit("python manifest", replace("components/serving/pyproject.toml", r'description = "[^"]*"',
                                        f'description = "edited {n}"'), SERVING),
        Edit("cargo feature", toggle_block("polybuild.toml", "\n[targets.serving-cli]\nfeatures = ['cuda']\n"),
             {"rust:serving-cli"} | CONFIG),
        Edit("env var", set_env("RUSTFLAGS", f"-C debug-assertions={'on' if n % 2 else 'off'}"),
             RUNTIME | SERVING),
        Edit("rust profile", replace("polybuild.toml", r"codegen-units = \d+", f"codegen-units = {1 + n % 3}"),
             RUNTIME | SERVING | CONFIG),
        Edit("delete and restore", move_away_and_back("deploy/api/deployment_test.go"), OPERATOR),
        Edit("add and remove a file", toggle_file("deploy/operator/cmd/operator/extra.go", "package main\n"),
             OPERATOR),
        Edit("no change", lambda root, env: None, set()),
    ]


def dist_files(root: Path) -> dict[str, bytes]:
    dist = root / "dist"
    return {p.relative_to(dist).as_posix(): p.read_bytes() for p in dist.rglob("*")
            if p.is_file() and p.name != "build-report.json"}


def test_random_edit_sequences_match_clean_builds(tmp_path):
    seed = int(os.environ.get("POLYBUILD_FUZZ_SEED") or random.SystemRandom().randint(1, 10**9))
    random.seed(seed)
    root = copy_example("serving", tmp_path / "work" / "serving")
    env = polybuild_env(POLYBUILD_CACHE_DIR=str(tmp_path / "cache"), POLYBUILD_FAST_PATH="1")
    assert run_polybuild("build", cwd=root, env=env).returncode == 0
    steps = int(os.environ.get("POLYBUILD_FUZZ_STEPS", "5"))
    for step in range(steps):
        edit = random.choice(edits())
        edit.apply(root, env)
        where = f"seed {seed}, step {step}: {edit.name}"
        incremental = run_polybuild("build", cwd=root, env=env)
        assert incremental.returncode == 0, f"{where}\n{incremental.stderr}"
        done = statuses(incremental)
        if "nothing changed since the last run" in incremental.stderr:  # the no-op fast path answered
            done = dict.fromkeys(ALL, "cached")
        rebuilt = {t for t, s in done.items() if s == "done"}
        assert set(done) == ALL, where
        assert rebuilt <= edit.reach, f"{where}: rebuilt {sorted(rebuilt - edit.reach)} needlessly"
        clean = tmp_path / f"clean-{step}" / "serving"
        shutil.copytree(root, clean, ignore=shutil.ignore_patterns("dist", ".polybuild", "target"))
        fresh = run_polybuild("build", "--no-cache", cwd=clean, env=env)
        assert fresh.returncode == 0, f"{where}\n{fresh.stderr}"
        got, want = dist_files(root), dist_files(clean)
        assert got.keys() == want.keys(), where
        stale = sorted(name for name in got if got[name] != want[name])
        assert not stale, f"{where}: incremental artifacts differ from a clean build: {stale}"
