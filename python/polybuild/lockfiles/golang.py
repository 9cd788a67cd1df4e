"""go.sum freshness: `go mod tidy -diff` (go.mod and go.sum complete and minimal) and `go mod verify` (the
downloaded modules match their recorded hashes), per module, outside any go.work."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from polybuild.toolchains import find


def check(root: Path, module_dir: str) -> list[str]:
    """Problems of the Go module in `module_dir` (workspace-relative), each a user-facing line."""
    where = f"{module_dir}/go.sum" if module_dir != "." else "go.sum"
    go = find("go")
    if go is None:
        return [f"{where}: cannot check it: go is not installed; fix: install Go from https://go.dev/dl/"]
    directory = root / module_dir
    env = {**os.environ, "GOWORK": "off"}
    tidy = subprocess.run([go, "mod", "tidy", "-diff"], cwd=directory, capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL)
    if tidy.returncode != 0:
        if tidy.stdout.strip():  # a diff: the files are not what tidy would write
            changed = sorted({ln[len("+++ "):].split()[0].rsplit("/", 1)[-1] for ln in tidy.stdout.splitlines()
                              if ln.startswith("+++ ")})
            return [f"{where}: out of date ({' and '.join(changed) or 'go.mod/go.sum'} would change: "
                    f"{_summary(tidy.stdout)}); fix: run `go mod tidy` in {module_dir} and commit go.mod and go.sum"]
        if "checksum mismatch" in tidy.stderr:
            return [f"{where}: a recorded hash does not match the module ({_first(tidy.stderr)}); fix: if nobody "
                    f"edited go.sum on purpose treat it as a security problem; else delete the line and run "
                    f"`go mod tidy` in {module_dir}"]
        return [f"{where}: `go mod tidy -diff` failed: {_first(tidy.stderr)}; fix: make `go mod tidy` pass in "
                f"{module_dir} and commit go.mod and go.sum"]
    verify = subprocess.run([go, "mod", "verify"], cwd=directory, capture_output=True, text=True, env=env,
                            stdin=subprocess.DEVNULL)
    if verify.returncode != 0:
        return [f"{where}: `go mod verify` failed: {_first(verify.stderr or verify.stdout)}; fix: run "
                f"`go clean -modcache` and check the module's recorded hashes"]
    return []


def _summary(diff: str) -> str:
    lines = [ln for ln in diff.splitlines() if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    shown = "; ".join(ln.split(" h1:")[0].split(" //")[0].strip() for ln in lines[:4])
    return shown + (f"; +{len(lines) - 4} more" if len(lines) > 4 else "")


def _first(text: str) -> str:
    lines = [" ".join(ln.split()) for ln in text.splitlines() if ln.strip()]
    return "; ".join(lines[:3]) if lines else "no output"
