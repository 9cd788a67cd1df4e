"""Cache keys: a digest of everything that can change a task's output, and nothing else.

The parts are kept by name (files, config, toolchain, env, dependency outputs) so that `polybuild explain` can say
exactly which one changed since the last build. Nothing machine-specific enters a key (no absolute paths), so
two checkouts, or two machines, share cache entries.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polybuild.support.errors import UserError
from polybuild.support.toolchains import find, python_facts
from polybuild.workspace.targetinfo import CrateInfo

if TYPE_CHECKING:
    from polybuild.builders import BuildContext, ToolProbe
    from polybuild.config.toolpins import ToolPins
    from polybuild.plan import Task
    from polybuild.support.toolenvs import ToolEnv

KEY_FORMAT = 3  # bump when the key recipe changes, so old entries are never reused

def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class KeyParts:
    """Everything a task's output depends on, by name."""

    files: dict[str, str]  # workspace-relative path -> "mode sha256"
    libraries: dict[str, str]  # library target id -> tree digest of its files
    config: dict[str, Any]
    toolchain: dict[str, str]  # tool -> sha256 of its identity
    env: dict[str, str]  # variable -> sha256 of "NAME=value" (values are never stored in clear)
    deps: dict[str, str]  # dependency task id -> its output digest
    format: int = KEY_FORMAT
    key: str = field(default="", init=False)

    def __post_init__(self) -> None:
        self.key = sha256_text(json.dumps(self._body(), sort_keys=True, separators=(",", ":")))

    def _body(self) -> dict[str, Any]:
        return {"files": self.files, "libraries": self.libraries, "config": self.config,
                "toolchain": self.toolchain, "env": self.env, "deps": self.deps, "format": self.format}

    def to_json(self) -> dict[str, Any]:
        return {**self._body(), "key": self.key}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KeyParts:
        return cls(data["files"], data.get("libraries", {}), data["config"], data["toolchain"], data["env"],
                   data["deps"], data["format"])


class Fingerprints:
    """File entries for this run: each file is looked up in the stat cache once, each library digested once.

    A symlink's entry covers what it points to (a file's content, a directory's tree), not only its text, so
    retargeting it or editing its target changes the keys; one leading out of the workspace is refused unless
    `allow-external-symlinks` is set. A file a sparse checkout left out enters by its index blob id."""

    def __init__(self, root: Path, stat_cache: Any, inputs: Any) -> None:
        self.root = root
        self.stat_cache = stat_cache
        self.inputs = inputs
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[str, str] | None] = {}
        self._libraries: dict[str, str] = {}
        self._real_root = os.path.realpath(root)

    def entries(self, paths: list[str]) -> dict[str, tuple[str, str]]:
        with self._lock:
            misses = [p for p in paths if p not in self._entries]
        if misses:
            absent = self.inputs.ws.absent
            found = self.stat_cache.entries(self.root, [p for p in misses if p not in absent])
            for p, entry in found.items():
                if entry[0] == "120000":
                    found[p] = ("120000", sha256_text(f"{entry[1]} {self._link_content(p)}"))
            for p in misses:
                if p in absent:
                    mode, blob = absent[p].split(" ", 1)
                    found[p] = (mode, f"git-blob:{blob}")
            with self._lock:
                for p in misses:
                    self._entries[p] = found.get(p)  # None: a special file, not an input
        with self._lock:
            return {p: e for p in paths if (e := self._entries[p]) is not None}

    def _link_content(self, rel: str) -> str:
        """What the symlink `rel` leads to: "file <sha256>", "tree <digest>" or "missing"."""
        from polybuild.support.fingerprint import file_digests, tree_digest

        real = os.path.realpath(self.root / rel)
        inside = real == self._real_root or real.startswith(self._real_root + os.sep)
        if not inside and not self.inputs.ws.config["allow-external-symlinks"]:
            link = os.readlink(self.root / rel)
            raise UserError(f"{rel} is a symlink to '{link}', which is outside the workspace {self.root}",
                            hint="point it inside the workspace, or set `allow-external-symlinks = true` in the "
                            "config to let its target's contents into the cache keys")
        if os.path.isfile(real):
            if inside:
                target = os.path.relpath(real, self._real_root).replace(os.sep, "/")
                return "file " + self.stat_cache.entries(self._real_root, [target])[target][1]
            return "file " + file_digests(os.path.dirname(real), [os.path.basename(real)])[0]
        if os.path.isdir(real):
            return "tree " + tree_digest(real, _tree_files(real))
        return "missing"

    def library(self, library_id: str) -> str:
        from polybuild.support.fingerprint import tree_digest_of

        if library_id not in self._libraries:
            self._libraries[library_id] = tree_digest_of(self.entries(self.inputs.library_files(library_id)))
        return self._libraries[library_id]

    def library_entries(self, library_id: str) -> dict[str, tuple[str, str]]:
        return self.entries(self.inputs.library_files(library_id))


class Toolchains:
    """Toolchain identities, probed at most once per run (and only for the builders a run uses). How to probe a
    tool is the builder's (`Builder.toolchain_probe`); this class runs the probes and remembers the answers."""

    def __init__(self, python: str, provision: str = "never", tools_dir: Path | None = None,
                 pins: ToolPins | None = None) -> None:
        self.python = python
        self.provision = provision  # [tools] provision: "auto", "always" or "never"
        self.tools_dir = tools_dir  # where tool environments live (<cache>/tools)
        self.pins = pins  # the workspace's committed tool pins (polybuild.lock)
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, ...], str] = {}
        self._versions: dict[str, str] = {}  # tool -> what it says of itself, for release manifests
        self._probing: dict[tuple[object, ...], threading.Lock] = {}
        self._envs: dict[tuple[object, ...], ToolEnv | None] = {}  # provisionable tool -> its env, or None
        self._unprovisionable: dict[tuple[object, ...], UserError] = {}  # ... -> why it cannot be (said once)

    def provisioned(self, probe: ToolProbe) -> ToolEnv | None:
        """The locked tool environment that stands in for `probe`'s tool in this run, or None when the tool is used
        from the run's Python or PATH. Decided once per requirement set per run, from the pins committed in
        polybuild.lock (resolved and written there when missing, a UserError when they cannot be or in locked mode);
        the venv is made only when a task runs (`ToolEnv.ensure`)."""
        if not probe.provision or self.provision == "never" or self.tools_dir is None or self.pins is None:
            return None
        key = (probe.present, *probe.provision)
        with self._lock:
            lock = self._probing.setdefault(key, threading.Lock())
        with lock:
            if key in self._unprovisionable:
                raise self._unprovisionable[key]
            if key not in self._envs:
                try:
                    self._envs[key] = self._choose(probe)
                except UserError as exc:
                    self._unprovisionable[key] = exc
                    raise
            return self._envs[key]

    def _choose(self, probe: ToolProbe) -> ToolEnv | None:
        if self.provision == "auto" and probe.present is not None and probe.present(self.python, probe.provision):
            return None
        from polybuild.support.toolenvs import locked

        assert self.tools_dir is not None and self.pins is not None
        pins = self.pins.pinned(probe.provision, self.python)
        return locked(self.python, python_facts(self.python).output, probe.provision, pins, self.tools_dir)

    def tool_envs(self) -> list[ToolEnv]:
        """The tool environments this run used, each once."""
        with self._lock:
            return list(dict.fromkeys(env for env in self._envs.values() if env is not None))

    def used(self) -> set[str]:
        """The tools probed in this run."""
        with self._lock:
            return {key[0] for key in self._cache}

    def versions(self) -> dict[str, str]:
        """Each tool probed in this run, with the first line it printed about itself (rustc: `-vV`'s)."""
        with self._lock:
            return dict(self._versions)

    def prefetch(self, probes: set[tuple[ToolProbe, Path]]) -> None:
        """Run the probes a plan needs in parallel, so keys computed one by one later find them ready."""
        from concurrent.futures import ThreadPoolExecutor

        def probe(args: tuple[ToolProbe, Path]) -> None:
            with contextlib.suppress(UserError):  # a tool that cannot be provisioned: its tasks' preflight says so
                self.identity(*args)

        with ThreadPoolExecutor(max_workers=max(1, min(8, len(probes)))) as pool:
            list(pool.map(probe, probes))

    def identity(self, probe: ToolProbe, cwd: Path) -> str:
        tool, extra = probe.tool, probe.extra
        # rustup honours rust-toolchain.toml; a provisionable tool's identity depends on its requirements
        key = (tool, str(cwd) if tool in ("rustc", "cargo") else "", *extra, *probe.provision)
        with self._lock:
            lock = self._probing.setdefault(key, threading.Lock())
        with lock:  # one probe per identity, different identities in parallel
            if key not in self._cache:
                text = self._probe(probe, cwd)
                self._cache[key] = sha256_text(text)
                with self._lock:
                    first_only = tool in ("rustc", "python") or text.startswith("provisioned ")  # not the lock
                    lines = text.strip().splitlines()[:1 if first_only else None]
                    self._versions[f"{tool} ({', '.join(extra)})" if extra else tool] = "; ".join(lines)
            return self._cache[key]

    def _probe(self, probe: ToolProbe, cwd: Path) -> str:
        """What the tool says of itself: the builder's own probe, else the interpreter's or the tool's version."""
        tool = probe.tool
        tool_env = self.provisioned(probe)
        if tool_env is not None:
            pins = tool_env.pins()
            return "provisioned " + ", ".join(f"{n}=={pins[n]}" for n in sorted(pins)) + "\n" + tool_env.identity()
        if probe.identify is not None:
            found = probe.identify(self.python, probe.extra)
            if isinstance(found, str):
                return found
            argv = found
        elif tool == "python":
            return python_facts(self.python).output
        else:
            path = find(tool)
            if path is None:
                return f"{tool}: not installed"
            argv = [path, "version" if tool == "go" else ("-vV" if tool == "rustc" else "--version")]
        try:
            proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{tool}: {exc}"
        return proc.stdout + proc.stderr


def _tree_files(top: str) -> list[str]:
    """The files below `top` (a symlinked directory), without other tools' outputs and caches."""
    from polybuild.workspace.files import SKIP_DIRS

    found = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        rel = os.path.relpath(dirpath, top)
        found += [f if rel == "." else f"{rel}/{f}".replace(os.sep, "/") for f in filenames]
    return found


def toolchain_probes(task: Task) -> dict[str, tuple[ToolProbe, Path]]:
    """tool -> the arguments of `Toolchains.identity` for this task: the builder's key toolchains, probed in the
    Cargo workspace (rustup reads rust-toolchain.toml there) or the target's directory."""
    from polybuild import builders

    t = task.target
    cwd = Path(t.info.cargo_workspace) if isinstance(t.info, CrateInfo) else t.dir
    builder = builders.get(task.builder)
    return {tool: (builder.toolchain_probe(tool, task), cwd) for tool in builder.key_toolchains}


def key_parts(task: Task, ctx: BuildContext, deps: dict[str, str]) -> KeyParts:
    """The key parts of `task`, whose dependencies have finished with output digests `deps`."""
    from polybuild.builders import env_names

    t = task.target
    patterns = task.spec["inputs"] or None if task.spec else None  # a custom task's declared inputs
    entries = ctx.fingerprints.entries(ctx.inputs.files(t, patterns))
    libraries = {lib: ctx.fingerprints.library(lib) for lib in ctx.inputs.libraries(t)}
    tools = {tool: ctx.toolchains.identity(*probe) for tool, probe in toolchain_probes(task).items()}
    env = {n: sha256_text(f"{n}={ctx.env[n]}") if n in ctx.env else "unset" for n in env_names(task, ctx.config)}
    return KeyParts(
        files={p: f"{m} {d}" for p, (m, d) in entries.items()},
        libraries=libraries,
        config=config_slice(task, ctx),
        toolchain=tools,
        env=env,
        deps=deps,
    )


def config_slice(task: Task, ctx: BuildContext) -> dict[str, Any]:
    """The parts of config (and of the task) that shape this task's output; nothing else: what every task has, and
    the builder's own part."""
    from polybuild import builders

    t = task.target
    settings = {k: v for k, v in t.settings.items() if k not in ("tasks", "skip", "deps", "name", "dist-subdir")}
    slice_: dict[str, Any] = {
        "builder": task.builder,
        "action": task.action,
        "target": t.id,
        "dir": ctx.ws.rel(t.dir),
        "variant": task.variant.name if task.variant else None,
        "features": task.features,
        "platform": task.platform.name if task.platform else None,
        "settings": settings,
    }
    slice_.update(builders.get(task.builder).config_slice(task, ctx))
    if t.builder:
        slice_.update(builders.get(t.builder).target_key_slice(task, ctx))
    return slice_


def output_digest(artifacts: list[tuple[str, str]]) -> str:
    """A task's output digest: its artifacts by relative path and content."""
    return sha256_text("".join(f"{sha} {path}\n" for path, sha in sorted(artifacts)))
