"""The randomized differential test (issue 13 §5): random edits, adds, deletes, renames, gitignored generated
files, symlink retargets, config and environment flips, touches without change and reverts; after every step the
incremental results must be byte-identical to a clean build's, and dist/ must hold exactly what the report lists.

Cheap builders keep a step well under a second: a command task per target (`polybuild run pack`, which hashes every
file of its target, following symlinks; its clean result is the same command run directly), a pure hatchling wheel
and a tiny Go binary (their clean builds run `polybuild build --no-cache` in a fresh copy, memoised by the true
content of the target's tree, so reverts and repeated states cost nothing).

Seeded and bounded: the default seed is fixed, so CI gates on one reproducible sequence; POLYBUILD_DIFF_SEED picks
another (`random` explores a new one; the seed is in every failure message), POLYBUILD_DIFF_STEPS (default 300) and
POLYBUILD_DIFF_SECONDS (default 240) bound it. The step and mismatch counts
are printed (`pytest -s`).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import polybuild_env, run_polybuild, write_tree

pytestmark = pytest.mark.e2e

PACK = "find -L . -path ./out -prune -o -type f -print | LC_ALL=C sort | xargs -r sha256sum; echo salt=$SALT mode=$MODE"
PACKED = ("c1", "c2", "c3")  # command-task targets (Go modules without packages)
CONTENTS = ("one\n", "two\n", "three\n")  # what the wheel's and binary's inputs cycle through: few clean states

WORKSPACE = {
    "polybuild.toml": f"""
        env-inputs = ["MODE"]

        [tasks.pack]
        cmd = ["sh", "-c", "mkdir -p out && ({PACK}) > out/pack.txt"]
        outputs = ["out/pack.txt"]
        kinds = ["go"]

        [tasks.pack.env]
        SALT = "a"
        """,
    ".gitignore": "out/\ngen.txt\n_gen.py\n",
    "shared/s1.txt": "s1\n",
    "shared/s2.txt": "s2\n",
    "c1/go.mod": "module example.com/c1\n\ngo 1.22\n",
    "c1/src/a.txt": "a\n",
    "c2/go.mod": "module example.com/c2\n\ngo 1.22\n",
    "c2/src/b.txt": "b\n",
    "c3/go.mod": "module example.com/c3\n\ngo 1.22\n",
    "c3/deep/er/c.txt": "c\n",
    "alpha/pyproject.toml": '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
                            '[project]\nname = "alpha"\nversion = "1.0.0"\n\n'
                            '[tool.hatch.build]\nartifacts = ["alpha/_gen.py"]\n',
    "alpha/alpha/__init__.py": "VALUE = 1\n",
    "alpha/alpha/_gen.py": "one\n",
    "tool/go.mod": "module example.com/tool\n\ngo 1.22\n",
    "tool/main.go": 'package main\n\nconst message = "one"\n\nfunc main() { println(message) }\n',
}


class Sequence:
    """The workspace under random change, and the oracle it is checked against."""

    def __init__(self, root: Path, scratch: Path, rng: random.Random) -> None:
        self.root = root
        self.scratch = scratch
        self.rng = rng
        self.env = polybuild_env(POLYBUILD_FAST_PATH="1", MODE="x")
        self.snapshots: dict[str, Path] = {}
        self.clean: dict[str, dict[str, str]] = {}  # target state -> artifact name -> sha256
        self.clean_builds = 0

    # --- the steps -------------------------------------------------------------------------------------------
    def steps(self) -> list:
        return [self.edit, self.add, self.delete, self.rename, self.generated, self.retarget, self.shared_edit,
                self.config_flip, self.env_flip, self.touch, self.revert, self.snapshot, self.wheel_generated,
                self.wheel_link, self.wheel_version, self.go_message]

    def _files(self, target: str) -> list[Path]:
        return sorted(p for p in (self.root / target).rglob("*")
                      if (p.is_file() or p.is_symlink()) and "out" not in p.relative_to(self.root / target).parts
                      and p.name != "go.mod")

    def edit(self) -> str:
        files = [p for t in PACKED for p in self._files(t) if not p.is_symlink()]
        if not files:
            return self.add()
        path = self.rng.choice(files)
        path.write_text(f"edit {self.rng.randint(0, 10**6)}\n")
        return f"edit {path.relative_to(self.root)}"

    def add(self) -> str:
        target = self.rng.choice(PACKED)
        path = self.root / target / self.rng.choice(("src", "new", "deep")) / f"f{self.rng.randint(0, 50)}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"new {self.rng.randint(0, 10**6)}\n")
        return f"add {path.relative_to(self.root)}"

    def delete(self) -> str:
        files = [p for t in PACKED for p in self._files(t)]
        if not files:
            return "delete (nothing)"
        path = self.rng.choice(files)
        path.unlink()
        return f"delete {path.relative_to(self.root)}"

    def rename(self) -> str:
        files = [p for t in PACKED for p in self._files(t) if not p.is_symlink()]
        if not files:
            return "rename (nothing)"
        path = self.rng.choice(files)
        dest = self.root / self.rng.choice(PACKED) / "moved" / f"r{self.rng.randint(0, 50)}.txt"
        dest.parent.mkdir(parents=True, exist_ok=True)
        path.rename(dest)
        return f"rename {path.relative_to(self.root)} -> {dest.relative_to(self.root)}"

    def generated(self) -> str:
        path = self.root / self.rng.choice(PACKED) / "gen.txt"  # gitignored
        if path.exists() and self.rng.random() < 0.3:
            path.unlink()
            return f"delete generated {path.relative_to(self.root)}"
        path.write_text(f"generated {self.rng.randint(0, 10**6)}\n")
        return f"generated {path.relative_to(self.root)}"

    def retarget(self) -> str:
        link = self.root / self.rng.choice(PACKED) / "link.txt"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(f"../shared/{self.rng.choice(('s1.txt', 's2.txt'))}")
        return f"symlink {link.relative_to(self.root)} -> {os.readlink(link)}"

    def shared_edit(self) -> str:
        path = self.root / "shared" / self.rng.choice(("s1.txt", "s2.txt"))
        path.write_text(self.rng.choice(CONTENTS))
        return f"edit {path.relative_to(self.root)} (a symlink target)"

    def config_flip(self) -> str:
        config = self.root / "polybuild.toml"
        text = config.read_text()
        salt = self.rng.choice("abc")
        config.write_text(text.replace(text[text.index('SALT = "'):][:10], f'SALT = "{salt}"'))
        return f"config SALT = {salt}"

    def env_flip(self) -> str:
        value = self.rng.choice(("x", "y", None))
        if value is None:
            self.env.pop("MODE", None)
        else:
            self.env["MODE"] = value
        self.env[f"UNRELATED_{self.rng.randint(0, 3)}"] = str(self.rng.random())  # must not matter
        return f"env MODE={value}"

    def touch(self) -> str:
        files = [p for t in (*PACKED, "alpha", "tool") for p in self._files(t) if not p.is_symlink()]
        path = self.rng.choice(files)
        os.utime(path)
        return f"touch {path.relative_to(self.root)}"

    def snapshot(self) -> str:
        target = self.rng.choice((*PACKED, "alpha", "tool"))
        saved = self.scratch / "snapshots" / target
        shutil.rmtree(saved, ignore_errors=True)
        shutil.copytree(self.root / target, saved, symlinks=True, ignore=shutil.ignore_patterns("out"))
        self.snapshots[target] = saved
        return f"snapshot {target}"

    def revert(self) -> str:
        if not self.snapshots:
            return self.snapshot()
        target = self.rng.choice(sorted(self.snapshots))
        keep = self.root / target / "out"
        for p in (self.root / target).iterdir():
            if p != keep:
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        shutil.copytree(self.snapshots[target], self.root / target, symlinks=True, dirs_exist_ok=True)
        return f"revert {target}"

    def wheel_generated(self) -> str:
        path = self.root / "alpha" / "alpha" / "_gen.py"  # gitignored, packed by hatchling as an artifact
        path.write_text(self.rng.choice(CONTENTS))
        return "alpha/_gen.py (gitignored)"

    def wheel_link(self) -> str:
        link = self.root / "alpha" / "alpha" / "data.txt"
        if link.is_symlink() or link.exists():
            link.unlink()
        if self.rng.random() < 0.8:
            link.symlink_to(f"../../shared/{self.rng.choice(('s1.txt', 's2.txt'))}")
            return f"symlink alpha/alpha/data.txt -> {os.readlink(link)}"
        return "remove alpha/alpha/data.txt"

    def wheel_version(self) -> str:
        path = self.root / "alpha" / "pyproject.toml"
        text = path.read_text()
        old, new = ("1.0.0", "1.0.1") if "1.0.0" in text else ("1.0.1", "1.0.0")
        path.write_text(text.replace(old, new))
        return f"alpha version {new}"

    def go_message(self) -> str:
        path = self.root / "tool" / "main.go"
        word = self.rng.choice(CONTENTS).strip()
        path.write_text(f'package main\n\nconst message = "{word}"\n\nfunc main() {{ println(message) }}\n')
        return f"tool message {word}"

    # --- the oracle ------------------------------------------------------------------------------------------
    def check(self, where: str) -> list[str]:
        """Build incrementally and compare with clean results; the mismatches found."""
        problems = []
        built = run_polybuild("build", cwd=self.root, env=self.env)
        packed = run_polybuild("run", "pack", cwd=self.root, env=self.env)
        for proc in (built, packed):
            if proc.returncode != 0:
                return [f"{where}: exit {proc.returncode}\n{proc.stderr}"]
        for target in PACKED:
            got = (self.root / target / "out" / "pack.txt").read_bytes()
            env = {**self.env, "SALT": self.salt()}
            want = subprocess.run(["sh", "-c", PACK], cwd=self.root / target, env=env, capture_output=True,
                                  check=True).stdout
            if got != want:
                problems.append(f"{where}: {target}/out/pack.txt differs from a clean run")
        report = json.loads((self.root / "dist" / "build-report.json").read_text())
        listed = {a["path"] for a in report["artifacts"]}
        dist = {p.relative_to(self.root).as_posix() for p in (self.root / "dist").rglob("*")
                if p.is_file() and p.name != "build-report.json"}
        if listed != dist:
            problems.append(f"{where}: dist/ {sorted(dist)} is not what the report lists {sorted(listed)}")
        for target in ("alpha", "tool"):
            got = {Path(a["path"]).name: _sha(self.root / a["path"]) for a in report["artifacts"]
                   if a["target"].endswith(f":{target}")}
            want = self.clean_artifacts(target)
            if got != want:
                problems.append(f"{where}: {target}'s artifacts {got} differ from a clean build's {want}")
        return problems

    def salt(self) -> str:
        text = (self.root / "polybuild.toml").read_text()
        return text[text.index('SALT = "') + 8]

    def clean_artifacts(self, target: str) -> dict[str, str]:
        """What a clean build of `target` makes from its current tree, memoised by that tree's true content."""
        state = _true_content(self.root / target)
        if state not in self.clean:
            self.clean_builds += 1
            copy = self.scratch / f"clean-{self.clean_builds}"
            shutil.copytree(self.root, copy, symlinks=True,
                            ignore=shutil.ignore_patterns("dist", ".polybuild", ".git", "out"))
            proc = run_polybuild("build", target, "--no-cache", cwd=copy, env={**self.env,
                                                                               "POLYBUILD_FAST_PATH": "0"})
            assert proc.returncode == 0, proc.stderr
            report = json.loads((copy / "dist" / "build-report.json").read_text())
            self.clean[state] = {Path(a["path"]).name: _sha(copy / a["path"]) for a in report["artifacts"]
                                 if a["target"].endswith(f":{target}")}
            shutil.rmtree(copy)
        return self.clean[state]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _true_content(top: Path) -> str:
    """Every file below `top` as a build sees it: by path and content, symlinks followed."""
    digest = hashlib.sha256(str(top.name).encode())
    for p in sorted(top.rglob("*")):
        if p.is_file():
            digest.update(f"{p.relative_to(top).as_posix()}\0".encode() + p.read_bytes() + b"\0")
    return digest.hexdigest()


DEFAULT_SEED = 20261203


def test_incremental_results_equal_clean_builds(tmp_path):
    chosen = os.environ.get("POLYBUILD_DIFF_SEED", str(DEFAULT_SEED))
    seed = random.SystemRandom().randint(1, 10**9) if chosen == "random" else int(chosen)
    max_steps = int(os.environ.get("POLYBUILD_DIFF_STEPS", "300"))
    budget = float(os.environ.get("POLYBUILD_DIFF_SECONDS", "240"))
    rng = random.Random(seed)
    root = write_tree(tmp_path / "ws", WORKSPACE)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    seq = Sequence(root, tmp_path / "scratch", rng)
    mismatches = seq.check(f"seed {seed}, start")
    start, steps = time.monotonic(), 0
    while steps < max_steps and time.monotonic() - start < budget and not mismatches:
        step = rng.choice(seq.steps())
        what = step()
        steps += 1
        mismatches += seq.check(f"seed {seed}, step {steps}: {what}")
    print(f"\ndifferential: seed {seed}, {steps} steps, {seq.clean_builds} clean builds, "
          f"{len(mismatches)} mismatches, {time.monotonic() - start:.0f} s")
    assert not mismatches, "\n".join(mismatches)
    assert steps >= min(max_steps, 20), f"only {steps} steps ran in {budget} s"
