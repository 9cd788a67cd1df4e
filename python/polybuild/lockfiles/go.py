"""go.sum freshness: `go mod tidy -diff` (go.mod and go.sum complete and minimal) and `go mod verify` (the
downloaded modules match their recorded hashes), per module, outside any go.work."""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

from polybuild.support.process import run_tool
from polybuild.support.toolchains import find

_GO_SETTINGS = ("GOFLAGS", "GOPROXY", "GONOPROXY", "GOPRIVATE", "GONOSUMDB", "GONOSUMCHECK", "GOSUMDB",
                "GOINSECURE", "GOMODCACHE", "GOTOOLCHAIN", "GOEXPERIMENT")
_LOCAL_REPLACE = re.compile(r"=>\s*(\.{1,2}/\S*)\s*$", re.M)


def module_files(files: list[str], modules: set[str]) -> dict[str, list[str]]:
    """Module directory -> the files tidy and verify read there: go.mod, go.sum and every .go file (imports decide
    the requirements; tests included), each file in its innermost module."""
    found: dict[str, list[str]] = {m: [] for m in modules}
    for path in files:
        if path.endswith(".go") or path.rpartition("/")[2] in ("go.mod", "go.sum"):
            module = _module_of(path, modules)
            if module is not None:
                found[module].append(path)
    return found


def inputs(root: Path, by_module: dict[str, list[str]], module_dir: str) -> list[str]:
    """The files of a module and of each local `replace` target (recursively): what its check depends on."""
    found: list[str] = []
    pending, seen = [module_dir], set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        found += by_module.get(current, [])
        gomod = root / current / "go.mod"
        text = gomod.read_text(encoding="utf-8", errors="replace") if gomod.is_file() else ""
        for target in _LOCAL_REPLACE.findall(text):
            rel = os.path.normpath(os.path.join(current, target)).replace(os.sep, "/")
            if rel in by_module:
                pending.append(rel)
    return found


def _module_of(path: str, modules: set[str]) -> str | None:
    """The innermost module directory holding `path` ("." for the root module)."""
    parts = path.split("/")[:-1]
    for i in range(len(parts), 0, -1):
        candidate = "/".join(parts[:i])
        if candidate in modules:
            return candidate
    return "." if "." in modules else None


@functools.cache
def identity() -> str:
    """`go version` and the `go env` settings that change what tidy and verify answer (from the environment or
    `go env -w`)."""
    go = find("go")
    if go is None:
        return "no go"
    version = run_tool([go, "version"], "go version", check=False)
    settings = run_tool([go, "env", *_GO_SETTINGS], "go env", env={**os.environ, "GOWORK": "off"}, check=False)
    return f"{version.stdout.strip()}\n{settings.stdout}"


def check(root: Path, module_dir: str) -> list[str]:
    """Problems of the Go module in `module_dir` (workspace-relative), each a user-facing line."""
    where = f"{module_dir}/go.sum" if module_dir != "." else "go.sum"
    go = find("go")
    if go is None:
        return [f"{where}: cannot check it: go is not installed; fix: install Go from https://go.dev/dl/"]
    directory = root / module_dir
    env = {**os.environ, "GOWORK": "off"}
    tidy = run_tool([go, "mod", "tidy", "-diff"], f"checking {where}", cwd=directory, env=env, check=False)
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
    verify = run_tool([go, "mod", "verify"], f"checking {where}", cwd=directory, env=env, check=False)
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
