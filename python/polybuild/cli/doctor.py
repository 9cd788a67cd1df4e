"""`polybuild doctor`: every tool this workspace needs, found (where, which version) or missing (how to install it).

What is needed comes from the builders' own facts (`required_tools`, `key_toolchains`) for the builders the
workspace's targets use, to build and to test; plus a container engine for Dockerfile images, uv for a uv.lock, and
the remote cache when one is configured. Where there are no targets it shows the toolchains polybuild knows of."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from polybuild import __version__
from polybuild.support.toolchains import INSTALL_HINTS, find

if TYPE_CHECKING:
    from polybuild.api import Loaded

_VERSION_ARGS = {"go": ["version"]}  # every other tool answers `--version`
_KNOWN_TOOLS = ("cargo", "rustc", "maturin", "go", "uv", "git")
# key_toolchains that are not executables on PATH: each is checked its own way below
_PYTHON_FACTS = {"python", "backend", "pytest"}
_IMAGE_FACTS = {"container-engine", "polybuild-helper"}


@dataclass
class Check:
    """One thing the workspace needs, and what was found."""

    name: str
    kind: str  # "tool" (an executable), "python-package" (in the build interpreter), "engine" or "remote"
    needed_by: list[str] = field(default_factory=list)
    found: bool = False
    path: str | None = None
    version: str | None = None
    hint: str | None = None
    required: bool = True  # False: what only optional images or the remote cache need (builds go on without it)
    provisionable: bool = False  # missing, but polybuild provisions it with uv when a build needs it


def _version(path: str, args: list[str]) -> str:
    try:
        out = subprocess.run([path, *args], capture_output=True, text=True, timeout=20,
                             stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"(cannot run: {exc})"
    return out.strip().splitlines()[0] if out.strip() else "(no version output)"


def _tool(name: str, needed_by: list[str], required: bool = True) -> Check:
    path = find(name)
    if path is None:
        return Check(name, "tool", needed_by, hint=INSTALL_HINTS.get(name), required=required)
    return Check(name, "tool", needed_by, True, path, _version(path, _VERSION_ARGS.get(name, ["--version"])),
                 required=required)


def _needs(loaded: Loaded) -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, list[str]]]:
    """(executables, Python distributions, image needs) -> the targets needing each, from the builders' facts
    for the builders that build and test this workspace's targets."""
    from polybuild import builders
    from polybuild.builders.pep517 import requirement_names
    from polybuild.plan import task_builder

    ws = loaded.ws
    tools: dict[str, list[str]] = {}
    packages: dict[str, list[str]] = {}
    images: dict[str, list[str]] = {}
    isolated = ws.config["python"]["isolation"]
    for target in ws.targets.values():
        for name in dict.fromkeys(b for b in (target.builder, task_builder(ws, target, "test")) if b):
            builder = builders.get(name)
            for fact in dict.fromkeys((*builder.required_tools, *builder.key_toolchains)):
                if fact in _IMAGE_FACTS:
                    images.setdefault(fact, []).append(target.id)
                elif fact == "backend":
                    requires = () if isolated else requirement_names(list(target.info.build_requires))
                    for dist in ("build", *requires):
                        packages.setdefault(dist, []).append(target.id)
                elif fact == "pytest":
                    packages.setdefault("pytest", []).append(target.id)
                elif fact not in _PYTHON_FACTS:
                    tools.setdefault(fact, []).append(target.id)
    if (ws.root / "uv.lock").is_file():
        tools.setdefault("uv", []).append("uv.lock")
    return tools, packages, images


def _packages(python: str, needed: dict[str, list[str]]) -> list[Check]:
    """The distributions installed in the build interpreter, asked in one interpreter start."""
    from polybuild.builders.pep517 import installed_versions

    if not needed:
        return []
    names = tuple(sorted(needed))
    try:
        out = subprocess.run(installed_versions(python, names), capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    versions = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    checks = []
    for name in names:
        version = versions.get(name, "-")
        found = version != "-"
        checks.append(Check(name, "python-package", sorted(set(needed[name])), found, python if found else None,
                            version if found else None,
                            None if found else f"{python} -m pip install {name}  (or set [python] isolation = true)"))
    return checks


def _images(loaded: Loaded, needed: dict[str, list[str]]) -> list[Check]:
    """A container engine for Dockerfile images; the Go helper (or go, to build it) for assembled images. What
    only optional images need is not required: those images are skipped, saying why."""
    import os
    import shutil

    ws = loaded.ws
    checks = []

    def required(ids: list[str]) -> bool:
        return any(not ws.targets[i].info.spec.get("optional") for i in ids)

    users = needed.get("container-engine")
    if users:
        from polybuild.container import engines

        choice = ws.config["container"]["engine"]
        engine = engines.detect(choice)
        wanted = "buildah, docker (with buildx and a running daemon) or podman" if choice == "auto" else choice
        checks.append(Check("container engine", "engine", users, engine is not None,
                            engine.path if engine else None, _version(engine.path, ["--version"]) if engine else None,
                            None if engine else f"install {wanted} (e.g. `apt-get install buildah`), or set "
                            "[container].engine", required(users)))
    users = needed.get("polybuild-helper")
    if users:
        helper = os.environ.get("POLYBUILD_HELPER") or shutil.which("polybuild-helper")
        if helper:
            checks.append(Check("polybuild-helper", "tool", users, True, helper, required=required(users)))
        else:  # built from polybuild's go/ on first use
            checks.append(_tool("go", [f"{u} (builds polybuild-helper)" for u in users], required(users)))
    return checks


def _remote(loaded: Loaded) -> list[Check]:
    """The remote cache, when configured: reachable or not (a build without it still works, only slower)."""
    import os
    import socket
    import urllib.parse

    from polybuild.cache.remote import redact

    url = os.environ.get("POLYBUILD_REMOTE_URL") or loaded.ws.config["remote"]["url"]
    if not url:
        return []
    if url.startswith(("grpc://", "grpcs://")):
        return [_reapi(loaded, url)]
    shown = redact(url)
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        with socket.create_connection((parts.hostname or "", port), timeout=5):
            pass
    except (OSError, ValueError) as exc:
        return [Check("remote cache", "remote", ["[remote] url"], False, shown, hint=f"cannot connect: {exc}; check "
                      "the URL, the network, and that the cache server runs", required=False)]
    return [Check("remote cache", "remote", ["[remote] url"], True, shown, "reachable", required=False)]


def _reapi(loaded: Loaded, url: str) -> Check:
    """A REAPI server: its capabilities (GetCapabilities), and a failure when it lacks what config asks for. An
    unreachable one is a warning, as for the HTTP cache."""
    conf = loaded.ws.config["remote"]
    name, users = "remote cache", ["[remote] url"]
    try:
        from polybuild.cache.reapi.client import ReapiUnavailable
        from polybuild.cache.reapi.connect import open_cache
    except ImportError as exc:
        return Check(name, "remote", users, False, url, hint=f"gRPC is not installed ({exc}): install "
                     "polybuild[remote] (grpcio and protobuf)")
    try:
        cache = open_cache(url, instance=conf["instance-name"], headers=conf["headers"], token_env=conf["token-env"],
                           upload=conf["upload"], timeout=conf["timeout"], retries=0)
    except ValueError as exc:
        return Check(name, "remote", users, False, url, hint=f"not a REAPI URL ({exc}): use grpc[s]://host:port")
    try:
        caps = cache.client.capabilities()
    except ReapiUnavailable as exc:
        return Check(name, "remote", users, False, url, hint=f"cannot use it: {exc}; check the URL, the instance "
                     "name, the network, and that the server runs", required=False)
    finally:
        cache.client.close()
    lacks = [] if caps.sha256 else ["SHA256 digests (polybuild's keys and blobs are SHA256)"]
    if conf["upload"] and not caps.cache_update:
        lacks.append("action-cache updates by clients ([remote] upload = true)")
    if conf["execute"] and not caps.exec_enabled:
        lacks.append(f"remote execution ([remote] execute = {conf['execute']})")
    if lacks:
        return Check(name, "remote", users, False, url, caps.describe(),
                     hint=f"the server lacks {' and '.join(lacks)}; it has: {caps.describe()}")
    return Check(name, "remote", users, True, url, caps.describe(), required=False)


def checks(loaded: Loaded) -> list[Check]:
    """Everything the workspace needs, each found or not."""
    tools, packages, images = _needs(loaded)
    python = loaded.ws.config.python
    found = [_tool(name, sorted(set(users))) for name, users in sorted(tools.items())]
    found += [c for c in _images(loaded, images) if c.name not in tools]
    return _provisionable(loaded, [*found, *_packages(python, packages), *_remote(loaded)])


_PROVISIONED_TOOLS = {"maturin"}  # executables a tool environment provides (Python packages all can be)


def _provisionable(loaded: Loaded, found: list[Check]) -> list[Check]:
    """Under `[tools] provision` other than "never", a missing build tool is provisioned by the build (with uv:
    without it, installing uv is the hint)."""
    if loaded.ws.config["tools"]["provision"] == "never":
        return found
    uv = find("uv")
    for c in found:
        if not c.found and (c.kind == "python-package" or c.name in _PROVISIONED_TOOLS):
            c.provisionable = uv is not None
            c.hint = ("provisioned with uv into a cached, locked environment by the first build that needs it"
                      if uv else f"{INSTALL_HINTS['uv']}, or {c.hint}")
    return found


def _header() -> list[str]:
    from polybuild.support import fingerprint

    backend = fingerprint.backend()
    return [f"polybuild {__version__} on Python {sys.version.split()[0]} ({sys.executable})",
            f"hashing core: {backend}" + ("" if backend == "native" else
                                          " (pure-Python fallback; install polybuild-core for speed)")]


def _known_toolchains() -> list[str]:
    """Where no target needs anything: the toolchains polybuild knows of, found or not."""
    lines = []
    for tool in _KNOWN_TOOLS:
        c = _tool(tool, [])
        lines.append(f"  {tool:<8} {c.version if c.found else 'not found'}" + (f"  ({c.path})" if c.found else ""))
    return lines


def missing(found: list[Check]) -> list[Check]:
    return [c for c in found if c.required and not c.found and not c.provisionable]


def render(loaded: Loaded, found: list[Check]) -> str:
    lines = [*_header(), f"workspace: {loaded.ws.root} ({len(loaded.ws.targets)} targets)"]
    if not loaded.ws.targets:
        lines += ["no targets here; the toolchains polybuild knows of:", *_known_toolchains()]
    for c in found:
        users = ", ".join(c.needed_by[:3]) + (f" and {len(c.needed_by) - 3} more" if len(c.needed_by) > 3 else "")
        if c.found:
            detail = f"{c.version or ''}  ({c.path})".strip()
            lines.append(f"  ok       {c.name:<17} {detail}")
        elif c.provisionable:
            lines.append(f"  provision {c.name:<16} needed by {users}")
            lines.append(f"           {c.hint}")
        else:
            status = "MISSING " if c.required else "warning "
            lines.append(f"  {status} {c.name:<17} needed by {users}")
            if c.hint:
                lines.append(f"           hint: {c.hint}")
    absent = missing(found)
    needed = sum(c.required for c in found)
    provisioned = " or provisionable" if any(c.provisionable for c in found) else ""
    lines.append(f"polybuild doctor: {len(absent)} needed tool(s) missing: {', '.join(c.name for c in absent)}"
                 if absent else f"polybuild doctor: all {needed} needed tools found{provisioned}")
    return "\n".join(lines)


def as_json(loaded: Loaded, found: list[Check]) -> dict[str, Any]:
    from polybuild.support import fingerprint

    return {"polybuild": __version__, "python": sys.executable, "hashing_core": fingerprint.backend(),
            "workspace": str(loaded.ws.root), "ok": not missing(found), "checks": [asdict(c) for c in found]}
