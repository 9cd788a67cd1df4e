"""Reading and validating polybuild's config: `[tool.polybuild]` in pyproject.toml, or polybuild.toml.

Validation is strict (unknown keys, wrong types and bad values are errors with file:line and "did you mean"), so a
typo never silently changes a build.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polybuild.support.errors import UserError
from polybuild.support.platforms import Platform
from polybuild.support.schema import FreeTable, Key, Map, Table, TableArray, Validator
from polybuild.support.terminal import OUTPUT_LOGS
from polybuild.support.tomlfile import TomlFile, load

MAX_JOBS = 1024  # parallel tasks: far beyond any machine's cores, far below what would exhaust threads


# Rules for values that are well-typed but unusable: each says what is wrong, or None.
def _nonempty(value: str) -> str | None:
    return "it must not be empty" if not value.strip() else None


def _inside(value: str, where: str = "workspace") -> str | None:
    """A path relative to the workspace (or target) that stays inside it."""
    if not value.strip():
        return "it must not be empty"
    if value.startswith(("/", "~")) or ".." in Path(value).parts:
        return f"it must be a relative path inside the {where}, without '..'"
    return None


def _subdir(value: str) -> str | None:
    """A directory polybuild owns and writes into (dist, state): inside the workspace, and not the root itself."""
    problem = _inside(value)
    if problem is None and Path(value).parts in ((), (".",)):
        return "it must name a directory below the workspace root, such as 'dist'"
    return problem


def _patterns(values: list[str]) -> str | None:
    """Glob patterns relative to a target, matching nothing outside it."""
    return next((f"'{v}': {p}" for v in values if (p := _inside(v, "target"))), None)


def _workspace_paths(values: list[str]) -> str | None:
    return next((f"'{v}': {p}" for v in values if (p := _inside(v))), None)


def _argv(values: list[str]) -> str | None:
    return "it must name a program to run, such as [\"make\", \"gen\"]" if not values or not values[0] else None


def _one_flag_each(values: list[str]) -> str | None:
    """ldflags entries are single linker arguments (values are quoted): a flag written with its value or another
    flag after a space ("-s -w", "-X main.commit=abc", the old space-joined form) would reach the linker as one
    unknown flag."""
    bad = next((v for v in values if v.startswith("-") and re.search(r"\s", v.split("=", 1)[0])), None)
    if bad is None:
        return None
    return f"'{bad}' holds several arguments: give one linker argument per entry, e.g. {json.dumps(bad.split())}"


def _version(value: str) -> str | None:
    from polybuild.support.versions import is_version

    return None if is_version(value) else "not a PEP 440 or SemVer version (e.g. 1.2.0, 1.2.0rc1, 1.2.0-rc.1)"


def _matching(pattern: str, example: str) -> Callable[[Any], str | None]:
    """Every string of the value (a string or an array of them) matches `pattern`: no space, quote or separator
    that could turn one value into several arguments or flags."""
    compiled = re.compile(pattern)

    def rule(value: Any) -> str | None:
        bad = next((v for v in (value if isinstance(value, list) else [value]) if not compiled.fullmatch(v)), None)
        return None if bad is None else f"'{bad}' is not allowed here (e.g. {example})"

    return rule


_ENV_NAMES = _matching(r"[A-Za-z_][A-Za-z0-9_]*", "CUDA_HOME")


TASK = Table(
    {
        "cmd": Key(list, "The command as an argv list (no shell); runs in the target's directory. Required.",
                   item=str, rule=_argv),
        "inputs": Key(list, "Glob patterns, relative to the target, of files the task reads.", [], item=str),
        "outputs": Key(list, "Glob patterns, relative to the target (and inside it), of files the task writes.",
                       [], item=str, rule=_patterns),
        "env": FreeTable("Extra environment variables for the command.", value_types=(str,)),
        "needs-build": Key(bool, "Build the target and its dependencies first.", False),
        "cache": Key(bool, "Cache the task's result (and its declared outputs) by its inputs.", True),
    },
    doc="A custom task such as `test`, `lint` or `codegen`: `polybuild run NAME` runs it for every target that "
    "has it, dependencies first. A custom `test` replaces the built-in default (cargo test, pytest, go test).",
)

WORKSPACE_TASK = Table(
    {
        **TASK.keys,
        "kinds": Key(list, "Only for targets of these kinds (rust, py, go); empty means all.", [], item=str),
    },
    doc="A task for every target (of the given kinds), e.g. a `lint` or `build` script per package; a target's own "
    "`[targets.<name>.tasks.<task>]` takes precedence.",
)

TARGET = Table(
    {
        "name": Key(str, "Rename the target: its id becomes `<kind>:<name>` (e.g. for two Go modules named "
                    "`prometheus`, whose ids are otherwise their module paths). Artifacts keep their own names."),
        "dist-subdir": Key(str, "Publish this target's artifacts under this subdirectory of the dist directory "
                           "(e.g. for two Go modules that both build a `server` binary)."),
        "deps": Key(list, "Extra dependencies on other targets, by name, beyond those read from manifests (a Go "
                    "target's dependency on a Rust `staticlib` crate links that library through cgo).", [],
                    item=str),
        "include-dir": Key(str, "Rust `staticlib` crates: the directory of C headers, relative to the crate, that "
                           "Go targets linking the library compile against (`CGO_CFLAGS=-I<dir>`)."),
        "features": Key(list, "Cargo features always enabled for this crate.", [], item=str),
        "env": FreeTable("Environment variables set for this target's builds and tasks.", value_types=(str,)),
        "inputs": Key(list, "Glob patterns, relative to the target, of its input files (default: every file in its "
                      "directory as git sees them, minus nested targets).", [], item=str),
        "env-inputs": Key(list, "Environment variables whose values are part of this target's cache keys.", [],
                          item=str, rule=_ENV_NAMES),
        "cgo": Key(bool, "Go only: build with CGO_ENABLED=1."),
        "cgo-stage": Key(bool, "Go only: for cgo preambles that link a workspace Rust `staticlib` by a path "
                         "(`#cgo LDFLAGS: ${SRCDIR}/lib/libx.a`, as dynamo's inference gateway does), build from a "
                         "copy of the module in polybuild's state directory with the freshly built library at that "
                         "path; the tree is never written.", False),
        "version": Key(str, "Go only: the module's own version (go.mod declares none), for a module versioned on its "
                       "own (`[versions] independent` or a group): stamped into its binaries through -ldflags -X, "
                       "checked and bumped by `polybuild version`.", rule=_version),
        "sdist": Key(bool, "Python only: also build an sdist."),
        "skip": Key(bool, "Leave this target out of `polybuild build` and `ci matrix` (it stays in the graph); "
                    "`false` builds a fuzz, benchmark or wasm-only crate, which is left out by default."),
        "tasks": Map(TASK, placeholder="<task>"),
    },
    doc="Settings for one discovered target, keyed by its name (`serving`) or id (`py:serving`).",
)

VARIANT = Table(
    {
        "features": Key(list, "Cargo features this variant enables, in every crate that declares them.", [],
                        item=str),
        "platforms": Key(list, "Platforms this variant can be built for; empty means all.", [], item=str),
        "default": Key(bool, "Build this variant when no `--variant` is given.", False),
    },
    doc="A named build variant (e.g. `cpu`, `cuda`, `metal`); a build dimension next to the platform.",
)

IMAGE = Table(
    {
        "template": Key(str, "The Dockerfile template (Jinja), relative to the workspace root; it may include stage "
                        "templates from its directory. Without one, the image is assembled from its artifacts by "
                        "polybuild's Go helper on top of `from`.", rule=_inside),
        "artifacts": Key(list, "Targets whose artifacts go into the image (names or ids): wheels into `wheelhouse/`, "
                         "binaries into `bin/`.", [], item=str),
        "files": Key(list, "Extra files (workspace-relative globs) copied into the build context at the same paths.",
                     [], item=str, rule=_workspace_paths),
        "platforms": Key(list, "Linux platforms the image is built for; empty means the host's.", [], item=str),
        "vars": FreeTable("Template variables for this image (base images per device, tool versions, flags)."),
        "choices": FreeTable("Template variables with a fixed set of values, e.g. `device = [\"cpu\", \"cuda\"]`; "
                             "the first is the default and `--var` may pick another.", value_types=(list,)),
        "exclude": Key(list, "Combinations that are not allowed, as tables over choices and `platform`/`target`, "
                       "e.g. `{ device = \"cuda\", platform = \"linux/arm64\" }`.", [], item=dict),
        "variant": Key(str, "The choice that follows the build variant, e.g. `\"device\"`: the image built for "
                       "variant `cuda` renders with `device = \"cuda\"` (its values are variant names; the first is "
                       "the default build's); a variant that is not one of its values builds no image."),
        "target": Key(str, "The stage to build (default: the last one)."),
        "tags": Key(list, "Tags given to the built image; `{version}` is replaced by the workspace version.", [],
                    item=str),
        "build-args": FreeTable("Build arguments (never secrets: use `secrets`).", value_types=(str,)),
        "secrets": FreeTable("Build secrets as secret mounts: id -> the environment variable holding the value "
                             "(`RUN --mount=type=secret,id=<id>`). Values never enter logs or cache keys.",
                             value_types=(str,)),
        "allow-latest": Key(bool, "Allow `latest` (or untagged) base images in the template.", False),
        "from": Key(str, "Base of an image assembled from artifacts: `scratch`, `oci:<layout dir>` or a registry "
                    "reference (pin it by digest).", "scratch"),
        "python": Key(str, "The base image's Python, written into the scripts of wheels installed into an "
                      "assembled image.", "/usr/local/bin/python3"),
        "site-packages": Key(str, "Where an assembled image's wheels are installed, e.g. "
                             "`/usr/local/lib/python3.11/site-packages`."),
        "optional": Key(bool, "Skip the image (saying why) instead of failing when no engine is installed or a "
                        "base image cannot be pulled, unless it is named on the command line.", False),
        "entrypoint": Key(list, "Entrypoint of an assembled image.", [], item=str),
        "cmd": Key(list, "Default command of an assembled image.", [], item=str),
        "env": FreeTable("Environment of an assembled image.", value_types=(str,)),
        "workdir": Key(str, "Working directory of an assembled image."),
        "labels": FreeTable("Labels of the image; `org.opencontainers.image.version` and `.revision` are added.",
                            value_types=(str,)),
    },
    doc="A container image target. Images appear in the graph with edges to the artifacts they contain, and "
    "build into `<dist-dir>/images/<image>.oci.tar` (an OCI layout) and `<image>.json` (digest, tags).",
)

CONTAINER = Table(
    {
        "engine": Key(str, "The engine for Dockerfile images; `auto` picks the first installed of buildah, docker "
                      "(buildx) and podman.", "auto", choices=("auto", "buildah", "docker", "podman")),
    },
    doc="How container images are built.",
)

CI = Table(
    {
        "runners": FreeTable("Runner label per platform for `ci matrix`, over the defaults: linux/amd64 = "
                             "`ubuntu-24.04`, linux/arm64 = `ubuntu-24.04-arm`, darwin/arm64 = `macos-15`, "
                             "darwin/amd64 = `macos-13`, windows/amd64 = `windows-2025`, windows/arm64 = "
                             "`windows-11-arm`.",
                             value_types=(str,)),
        "platforms": Key(list, "Platforms of the matrix when `--platforms` is not given; empty: the workspace's "
                         "`platforms`, else the host's.", [], item=str),
        "variants": Key(list, "Variants of the matrix when `--variants` is not given; empty: the default variant.",
                        [], item=str),
        "python": Key(list, "Python versions (`3.12`) each wheel that is not abi3 is built for; the first is the one "
                      "abi3 wheels, pure wheels and images are built with.", ["3.12"], item=str),
        "libc": Key(list, "Linux wheel flavours of the matrix: `manylinux` (glibc) and/or `musllinux`.",
                    ["manylinux"], item=str),
        "containers": FreeTable("Job container per Linux wheel flavour (`{arch}` becomes x86_64 or aarch64); "
                                "default: musllinux = `quay.io/pypa/musllinux_1_2_{arch}`, manylinux runs on the "
                                "runner itself.", value_types=(str,)),
        "shard-size": Key(int, "At most this many targets per matrix job (`--shard-size`).", 20, minimum=1),
    },
    doc="`polybuild ci matrix`: the GitHub Actions matrix of affected targets (see docs/ci.md).",
)

INCLUDE = Table(
    {
        "path": Key(str, "The included file: relative to the including file's directory or, with `git`, to the "
                    "repository's root. A `pyproject.toml` contributes its `[tool.polybuild]`; any other file is "
                    "read like `polybuild.toml`."),
        "git": Key(str, "A git repository (URL, or a local path relative to the including file) to read `path` "
                   "from, at `rev`."),
        "rev": Key(str, "With `git`: the commit, tag or branch to read; polybuild.lock pins the commit it resolved "
                   "to, so a moved branch or tag changes nothing until `polybuild lock upgrade NAME`."),
        "name": Key(str, "The include's name in polybuild.lock and in `polybuild lock upgrade NAME`; default: the "
                    "file name without its extension. Letters, digits, `.`, `_` and `-`."),
    },
)

LOCKFILES = Table(
    {
        "uv-version": Key(str, "The uv that writes and checks every uv.lock, as a PEP 440 specifier (`==0.13.9`); "
                          "[tool.uv] required-version is honoured too. Another uv is reported as a mismatch."),
        "python": Key(list, "Python versions (`3.12`) whose wheels `lock check` requires; default: the "
                      "interpreter's (within each lock's requires-python).", [], item=str),
        "glibc": Key(str, "glibc of the Linux targets: manylinux wheels up to this level install there.", "2.28"),
        "musl": Key(str, "musl of the Linux targets when they are musl-based (`1.2`): musllinux wheels, not "
                    "manylinux."),
        "macos": Key(str, "The oldest macOS of the darwin targets: macosx wheels up to it install there.", "12.0"),
    },
    doc="The lockfile preflight (`polybuild lock check`, see docs/lockfiles.md): the uv pin and what the target "
    "platforms accept.",
)

VERSIONS = Table(
    {
        "exclude": Key(list, "Packages polybuild never checks or stamps, as target ids or directories (globs: "
                       "`py:bench-*`, `benchmarks/*`).", [], item=str),
        "independent": Key(list, "Packages that each keep their own version (target ids or directories, globs): "
                           "each is a group of one, checked against its own manifest; `version set --group ID` "
                           "bumps it.", [], item=str),
        "groups": Map(
            Table(
                {
                    "packages": Key(list, "Its members: target ids or directories (globs: `rust:kvbm-*`).", [],
                                    item=str),
                    "version": Key(str, "The group's version; default: the version its first member declares."),
                },
                doc="A group of packages released together under their own version.",
            ),
            doc="Named version groups besides the workspace's (lockstep) one.",
            placeholder="<group>",
        ),
    },
    doc="Version groups (`polybuild version`, `polybuild release`, see docs/usage.md): every package follows the "
    "workspace version unless it is excluded, independent, or in a named group.",
)

EXTRAS = Map(
    Table(
        {
            "extra-only": Key(list, "Distributions that only an extra may bring: the base install's closure must not "
                              "contain them (e.g. a server framework). Without it, what each extra brings beyond "
                              "the base install is reported, not enforced.", [], item=str),
            "commands": FreeTable("Invocations that need an extra: command line (no shell) -> extra, e.g. "
                                  "`\"tool serve --check\" = \"server\"`. Without the extra the command must exit "
                                  "non-zero naming the extra; with it, exit 0, so pick one that returns.",
                                  value_types=(str,)),
            "skip": Key(bool, "Leave this package out of a `polybuild check-extras` run that names no "
                        "package.", False),
        },
        doc="Extras isolation of one Python package, keyed by its target name or distribution name.",
    ),
    doc="`polybuild check-extras`: each extras set of a built wheel installs and works in a fresh environment "
    "(see docs/extras.md).",
    placeholder="<package>",
)

SCHEMA = Table(
    {
        "include": TableArray(INCLUDE, doc="Files whose config this one is composed from, in order: later files win "
                              "over earlier ones and the including file wins over all. Each is pinned in "
                              "polybuild.lock (see docs/config-composition.md)."),
        "exclude": Key(list, "Glob patterns (relative to the root) left out of discovery, beyond .gitignore.", [],
                       item=str),
        "python-roots": Key(list, "Directories searched for pyproject.toml files.", ["."], item=str,
                            rule=_workspace_paths),
        "go-roots": Key(list, "Directories searched for go.mod files (when there is no go.work).", ["."],
                        item=str, rule=_workspace_paths),
        "name": Key(str, "The workspace's name in attributions and SBOMs; default: the root package's, else the "
                    "root directory's (set it when there is no root package: checkouts may be named anything).",
                    rule=_nonempty),
        "dist-dir": Key(str, "Where artifacts and build-report.json are written (a directory inside the "
                        "workspace).", "dist", rule=_subdir),
        "state-dir": Key(str, "Where logs and temporary build files are kept (a directory inside the workspace).",
                         ".polybuild", rule=_subdir),
        "version": Key(str, "The workspace version stamped into Go binaries (PEP 440 or SemVer); default: the root "
                       "[project].version or [workspace.package].version.", rule=_version),
        "jobs": Key(int, f"Parallel tasks (at most {MAX_JOBS}); default: the number of cores.", minimum=1,
                    maximum=MAX_JOBS),
        "output-logs": Key(str, "What `build` and `run` show of the tools' output: `full` (every line as it "
                           "comes, prefixed with its task), `errors-only` (a failed task's log) or `none` (only "
                           "where the log is); `--output-logs` wins.", "errors-only", choices=OUTPUT_LOGS),
        "cache-dir": Key(str, "The local cache; default: $POLYBUILD_CACHE_DIR, else $XDG_CACHE_HOME/polybuild, "
                         "else ~/.cache/polybuild.", rule=_nonempty),
        "env-inputs": Key(list, "Environment variables whose values are part of every cache key (hashed, never "
                          "stored in clear).", [], item=str, rule=_ENV_NAMES),
        "allow-external-symlinks": Key(bool, "Let a target's inputs include symlinks that point outside the "
                                       "workspace (their targets' contents enter the cache keys).", False),
        "platforms": Key(list, "Platforms the workspace may be built for; empty means any known platform.", [],
                         item=str),
        "rust": Table(
            {
                "profile": Key(str, "Cargo profile for cargo and maturin builds.", "release",
                               rule=_matching(r"[A-Za-z0-9_-]+", "release, dev, dist")),
                "lto": Key((bool, str), "Link-time optimisation.",
                           choices=(False, True, "thin", "fat", "off")),
                "codegen-units": Key(int, "Codegen units of the profile (1 gives the best code; at most 256).",
                                     minimum=1, maximum=256),
                "strip": Key((bool, str), "Strip symbols from binaries.",
                             choices=(False, True, "none", "debuginfo", "symbols")),
                "locked": Key(bool, "Pass --locked so a stale Cargo.lock fails the build.", False),
            },
            doc="How Rust crates and PyO3 extensions are built. Profile settings override Cargo.toml's.",
        ),
        "python": Table(
            {
                "interpreter": Key(str, "The Python that runs PEP 517 backends and that maturin targets; default: "
                                   "the one running polybuild.", rule=_nonempty),
                "sdist": Key(bool, "Also build sdists.", False),
                "isolation": Key(bool, "Build pure wheels in isolated environments (needs the package index).",
                                 False),
            },
            doc="How Python packages are built (hatchling or any PEP 517 backend; maturin for extensions).",
        ),
        "tools": Table(
            {
                "provision": Key(str, "Build tools missing from the build environment (a package's [build-system] "
                                 "requires, maturin, pytest): `auto` uses what the interpreter and PATH have and "
                                 "provisions the rest in a cached environment made with uv from pins committed in "
                                 "polybuild.lock (resolved when missing, never in CI; then installed offline); "
                                 "`always` provisions every one; `never` stops with what "
                                 "to install.", "auto", choices=("auto", "always", "never")),
            },
            doc="Build tools polybuild provisions itself (see the build report's `tools`).",
        ),
        "go": Table(
            {
                "cgo": Key(bool, "CGO_ENABLED for all Go builds (per target: targets.<name>.cgo).", False),
                "version-variable": Key(str, "The variable stamped with the version through -ldflags -X.",
                                        "main.version", rule=_matching(r"[\w./-]+\.\w+", "main.version")),
                "ldflags": Key(list, "Extra -ldflags entries, one linker argument each (`[\"-s\", \"-w\"]`, "
                               "`[\"-X\", \"main.commit=abc\"]`): an entry is never split into several.", [],
                               item=str, rule=_one_flag_each),
                "tags": Key(list, "Build tags.", [], item=str, rule=_matching(r"[\w.]+", "netgo, integration")),
            },
            doc="How Go binaries are built (`go build -trimpath`).",
        ),
        "remote": Table(
            {
                "url": Key(str, "Base URL of a cache speaking bazel-remote's HTTP protocol (bazel-remote, nginx "
                           "WebDAV, ...), or `grpc://host:port` (`grpcs://` with TLS) for a Remote Execution API "
                           "server (buildbox-casd, Buildbarn, BuildGrid, ...); also $POLYBUILD_REMOTE_URL or "
                           "--remote.", rule=_nonempty),
                "upload": Key(bool, "Upload results (CI on trusted branches); reads only by default; also "
                              "--remote-upload.", False),
                "timeout": Key(int, "Seconds before a request, its retries included, is abandoned (plus one per "
                               "256 KiB moved meanwhile, over all transfers, so large blobs are not cut off).", 10,
                               minimum=1),
                "retries": Key(int, "Retries of a failed request (backing off up to 2 s each, within `timeout`) "
                               "before the remote is skipped for the run.", 2, minimum=0),
                "token-env": Key(str, "Name of an environment variable holding a bearer token (the token itself "
                                 "never goes in config or logs)."),
                "jobs": Key(int, "Blob transfers (checks, downloads, uploads) at once, each on a kept-alive "
                            "connection of its own.", 8, minimum=1, maximum=256),
                "instance-name": Key(str, "The REAPI instance name (grpc:// and grpcs:// only); default: the "
                                     "server's default instance.", ""),
                "headers": FreeTable("gRPC metadata sent with every REAPI call (grpc:// and grpcs:// only), as "
                                     "`name = \"env:NAME\"`: the value is read from $NAME at run time (a header "
                                     "whose variable is unset or empty is not sent), e.g. `headers = { authorization "
                                     "= \"env:POLYBUILD_REMOTE_TOKEN\" }` with the variable holding `Bearer <token>`. "
                                     "Values come from the environment only: never from config, never logged, never "
                                     "part of a key.", value_types=(str,)),
                "execute": Key(list, "Builders whose tasks run on the REAPI server's executor (grpc:// only; the "
                               "default, none, uses it as a cache only). Supported: `command` (custom tasks that "
                               "do not need the build; they see their declared inputs and environment only) and "
                               "`go` (`go build` without cgo, with the module's files and its modules from the "
                               "local module cache: the workers need the same Go release, no network; a build with "
                               "cgo runs locally, and the run says so once).", [], item=str),
                "execute-timeout": Key(int, "Seconds an executed action may run on the server before it is "
                                       "stopped and the task fails (the action's `timeout`).", 3600, minimum=1),
                "platform": FreeTable("REAPI platform properties of executed actions, e.g. `{ OSFamily = "
                                      "\"linux\" }` (they enter the action digest, not polybuild's keys).",
                                      value_types=(str,)),
            },
            doc="The shared remote cache. When it is down or failing the build goes on with the local cache and "
            "says so once.",
        ),
        "licenses": Table(
            {
                "policy": Key(str, "The dependency policy (cargo-deny's schema, extended to Python and Go).",
                              "deny.toml"),
                "attributions-dir": Key(str, "Where `polybuild attributions` writes ATTRIBUTIONS*.md.", "."),
                "generate-cargo-locks": Key(bool, "A Cargo workspace without a Cargo.lock (a repository that ignores "
                                            "nested locks on purpose) is resolved into polybuild's cache, never the "
                                            "tree (the first scan needs crates.io), instead of being an error.",
                                            False),
                "exclude-targets": Key(list, "Workspace targets (ids or names) the license scan leaves out, with "
                                       "what only they pull in; each license command says so in a note.", [],
                                       item=str),
                "exclude-extras": Key(list, "Python extras the license scan leaves out, with what only they pull "
                                      "in: `\"trtllm\"` in every project, `\"ai-dynamo[trtllm]\"` in one (an extra "
                                      "whose wheels only a vendor index holds); each license command says so in a "
                                      "note. Dependency groups are never scanned (they do not ship).", [], item=str),
                "system-libraries": Key(list, "Libraries the artifacts need from the system, for ATTRIBUTIONS.md: "
                                        "`{ name = \"glibc\", version = \"2.36\", license = \"LGPL-2.1-or-later\", "
                                        "note = \"...\" }`.", [], item=dict),
            },
            doc="Licenses, attributions and SBOMs (`polybuild deny`, `attributions`, `sbom`).",
        ),
        "variants": Map(VARIANT, doc="Named build variants.", placeholder="<variant>"),
        "images": Map(IMAGE, doc="Container image targets.", placeholder="<image>"),
        "container": CONTAINER,
        "lockfiles": LOCKFILES,
        "versions": VERSIONS,
        "ci": CI,
        "extras": EXTRAS,
        "targets": Map(TARGET, doc="Per-target settings and custom tasks.", placeholder="<target>"),
        "tasks": Map(WORKSPACE_TASK, doc="Tasks defined once for every target.", placeholder="<task>"),
    },
    doc="The root of polybuild's config, in `pyproject.toml` as `[tool.polybuild]` or in `polybuild.toml`.",
    composable=True,
)


@dataclass(frozen=True)
class Layer:
    """One file's contribution to a composed config: its validated-as-written table, and where it came from."""

    file: TomlFile
    prefix: tuple[str, ...]
    raw: dict[str, Any]


@dataclass
class Config:
    """The validated config of one workspace."""

    root: Path
    file: TomlFile | None
    prefix: tuple[str, ...]
    data: dict[str, Any]
    layers: tuple[Layer, ...] = ()  # composed configs: included files in merge order, this file last
    lock_changes: tuple[str, ...] = ()  # what this load wrote into polybuild.lock (includes locked, upgraded)
    inputs: tuple[Path, ...] = ()  # files besides `file` the config was composed from: includes on disk, the lock

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    @property
    def display(self) -> str:
        return self.file.display if self.file else "(defaults)"

    def error(self, keypath: tuple[str, ...], message: str, hint: str | None = None) -> UserError:
        """A located error for a key of this config, in the file whose value won the merge."""
        if self.file is None:
            return UserError(message, hint=hint)
        if not self.layers:
            return self.file.error(self.prefix + keypath, message, hint)
        layer = max(reversed(self.layers), key=lambda layer: _depth(layer.raw, keypath))
        return layer.file.error(layer.prefix + keypath, message, hint)

    def platform(self, value: str, keypath: tuple[str, ...]) -> Platform:
        """`value`, written at `keypath`, as a Platform; an unknown one is an error located there."""
        try:
            return Platform.parse(value)
        except UserError as exc:
            raise self.error(keypath, exc.message, exc.hint) from None

    @property
    def output_prefixes(self) -> tuple[str, ...]:
        """`dist-dir/` and `state-dir/` as root-relative prefixes: polybuild's outputs, never its inputs."""
        return tuple(f"{self.data[d].strip('/')}/" for d in ("state-dir", "dist-dir"))

    @property
    def dist_dir(self) -> Path:
        """Where artifacts and build-report.json go (`dist-dir`, under the workspace root)."""
        return self.root / self.data["dist-dir"]

    @property
    def state_dir(self) -> Path:
        """Where logs, temporary build files and what polybuild remembers between runs go (`state-dir`)."""
        return self.root / self.data["state-dir"]

    @property
    def python(self) -> str:
        """The interpreter Python builds run with: `python.interpreter`, else the one running polybuild."""
        return self.data["python"]["interpreter"] or sys.executable

    @property
    def jobs(self) -> int:
        return self.data["jobs"] or os.cpu_count() or 1


def _depth(raw: Any, keypath: tuple[str, ...]) -> int:
    """How much of `keypath` a layer defines."""
    depth = 0
    for key in keypath:
        if not isinstance(raw, dict) or key not in raw:
            break
        raw, depth = raw[key], depth + 1
    return depth


def find_root(start: Path) -> Path:
    """The nearest directory at or above `start` with polybuild config; else the nearest with a manifest."""
    start = start.resolve()
    candidates = [start, *start.parents]
    for d in candidates:
        if (d / "polybuild.toml").is_file() or _has_tool_table(d / "pyproject.toml"):
            return d
    for d in candidates:
        if any((d / m).is_file() for m in ("pyproject.toml", "Cargo.toml", "go.work", "go.mod")):
            return d
    return start  # a directory holding several projects below it, with no manifest of its own


def _has_tool_table(pyproject: Path) -> bool:
    if not pyproject.is_file():
        return False
    try:
        return "[tool.polybuild" in pyproject.read_text(encoding="utf-8")
    except OSError:
        return False


def load_config(root: Path, explicit: Path | None = None, upgrade: frozenset[str] | None = None) -> Config:
    """Load and validate the workspace config; a workspace with no config gets the defaults.

    A config with `include`s is composed (polybuild.compose) and checked against polybuild.lock; `upgrade` names
    the includes to re-read and re-lock (`polybuild lock upgrade`; an empty set means all of them).
    """
    found = config_file(root, explicit)
    if found is None:
        validator = Validator(TomlFile(root / "polybuild.toml", {}, ""))
        return Config(root, None, (), validator.check(SCHEMA, {}, ()))
    doc, prefix = found
    raw: Any = doc.data
    for key in prefix:
        raw = raw.get(key, {}) if isinstance(raw, dict) else {}
    data = Validator(doc, prefix).check(SCHEMA, raw, ())
    if not data["include"] and upgrade is None:  # the hot path: nothing to compose
        config = Config(root, doc, prefix, data)
        _check_platforms(config)
        _check_tasks(config)
        return config
    from polybuild.config.compose import compose

    composition = compose(root, Layer(doc, prefix, raw), upgrade)
    merged = {**composition.raw, "include": raw.get("include", [])}  # the includes stay this file's own
    config = Config(root, doc, prefix, Validator(doc, prefix).check(SCHEMA, merged, ()), composition.layers,
                    inputs=composition.inputs)
    _check_platforms(config)
    _check_tasks(config)
    config.lock_changes = tuple(composition.commit())  # the lock is written only for a config valid as a whole
    return config


def config_file(root: Path, explicit: Path | None = None) -> tuple[TomlFile, tuple[str, ...]] | None:
    """The workspace's config file, parsed, and the key prefix of polybuild's table in it."""
    if explicit is not None:
        path = explicit if explicit.is_absolute() else Path.cwd() / explicit
        if not path.is_file():
            raise UserError(f"config file not found: {explicit}")
        return load(path, display=_display(path, root)), config_prefix(path)
    for name in ("polybuild.toml", "pyproject.toml"):
        if (root / name).is_file():
            return load(root / name, display=name), config_prefix(root / name)
    return None


def config_prefix(path: Path) -> tuple[str, ...]:
    """Where polybuild's keys live in a config file: `[tool.polybuild]` in a pyproject.toml, else the top."""
    return ("tool", "polybuild") if path.name == "pyproject.toml" else ()


def _display(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _check_platforms(config: Config) -> None:
    """Platform names are checked here, once, so later stages can trust them."""
    def check(value: str, keypath: tuple[str, ...]) -> None:
        config.platform(value, keypath)

    for p in config["platforms"]:
        check(p, ("platforms",))
    for name, variant in config["variants"].items():
        for p in variant["platforms"]:
            check(p, ("variants", name, "platforms"))
    for name, image in config["images"].items():
        _check_image(config, name, image, check)
    for name, task in config["tasks"].items():
        for kind in task["kinds"]:
            if kind not in ("rust", "py", "go"):
                raise config.error(("tasks", name, "kinds"), f"unknown target kind '{kind}'",
                                   "kinds are rust, py and go")
    for name, target in config["targets"].items():
        _check_target(config, name, target)
    defaults = [n for n, v in config["variants"].items() if v["default"]]
    if len(defaults) > 1:
        raise config.error(("variants", defaults[1], "default"),
                           f"more than one default variant: {', '.join(defaults)}", "mark exactly one as default")


def _check_target(config: Config, name: str, target: dict[str, Any]) -> None:
    """A renamed id, a dist subdirectory and an include directory are plain relative names: they become ids and
    paths."""
    if target["name"] is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._@/+-]*", target["name"]):
        raise config.error(("targets", name, "name"), f"'{target['name']}' is not a target name",
                           "use letters, digits and . _ - / @ +, starting with a letter or digit")
    for key, inside in (("dist-subdir", "the dist directory"), ("include-dir", "the crate")):
        value = target[key]
        if value is not None and (not value or value.startswith("/") or "\\" in value
                                  or any(p in ("", ".", "..") for p in value.split("/"))):
            raise config.error(("targets", name, key), f"{key} '{value}' must be a relative path inside {inside}",
                               "use a plain relative path such as \"include\" (no '..', no leading '/')")


def _check_tasks(config: Config) -> None:
    """Every custom task has a command (checked on the composed config: an include may give the command and the
    including file the rest)."""
    tasks = [(("tasks", name), task) for name, task in config["tasks"].items()]
    tasks += [(("targets", target, "tasks", name), task) for target, settings in config["targets"].items()
              for name, task in settings["tasks"].items()]
    for keypath, task in tasks:
        if task["cmd"] is None:
            raise config.error(keypath, f"task [{'.'.join(keypath)}] has no 'cmd'",
                               'give the command as an argv list, e.g. cmd = ["make", "gen"]')


def _check_variant_choice(config: Config, name: str, image: dict[str, Any]) -> None:
    """`variant` names a choice whose values are variants: a value no variant has could never be built."""
    follows = image["variant"]
    if follows is None:
        return
    if follows not in image["choices"]:
        known = ", ".join(sorted(image["choices"])) or "none declared"
        raise config.error(("images", name, "variant"), f"image '{name}': variant follows '{follows}', which is not "
                           "one of its choices", f"choices: {known} (declare it, e.g. {follows} = [\"cpu\", \"cuda\"])")
    import difflib

    for value in image["choices"][follows]:
        if value not in config["variants"]:
            close = difflib.get_close_matches(value, config["variants"], n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise config.error(("images", name, "choices", follows), f"image '{name}': '{value}' is not a variant, "
                               f"and {follows} follows the variant",
                               f"{hint}variants: {', '.join(config['variants']) or 'none declared in [variants]'}")


def _check_image(config: Config, name: str, image: dict[str, Any], check: Any) -> None:
    for p in image["platforms"]:
        check(p, ("images", name, "platforms"))
        if not p.startswith("linux/"):
            raise config.error(("images", name, "platforms"), f"image '{name}': {p} is not a Linux platform",
                               "container images are built for linux/amd64 and linux/arm64")
    for var, values in image["choices"].items():
        if not values or not all(isinstance(v, str) for v in values):
            raise config.error(("images", name, "choices", var),
                               f"choices for '{var}' must be a non-empty array of strings")
    _check_variant_choice(config, name, image)
    axes = {*image["choices"], "platform", "target", "variant"}
    for combo in image["exclude"]:
        for key in combo:
            if key not in axes:
                raise config.error(("images", name, "exclude"), f"exclude names '{key}', which is not a choice",
                                   f"choices: {', '.join(sorted(axes))}")


EDITOR_SUPPORT = """# Config reference

Every key of polybuild's config, generated from the schema it is validated with
(`polybuild config-reference > docs/config-reference.md`).

## Completion and checks in the editor: the JSON Schema

The same schema as a JSON Schema (draft 7), generated from it too: [polybuild.schema.json](polybuild.schema.json)
for a `polybuild.toml` and [pyproject.schema.json](pyproject.schema.json) for a `pyproject.toml` with
`[tool.polybuild]` (`polybuild config-reference --json-schema [polybuild.toml|pyproject.toml]` prints them). Editors
built on Taplo (Even Better TOML in VS Code, and Taplo's language server in Zed, Helix, Neovim, ...) then complete
keys, show each key's documentation on hover and flag unknown keys, wrong types, bad choices and out-of-range
numbers as you type. What the schema cannot say (a path that leaves the workspace, a malformed version, an unknown
platform) polybuild still reports, with file and line, when it reads the config.

- **One file**: a `#:schema` directive on the file's first line, a path relative to the file (or an `https://` URL):

  ```toml
  #:schema ./docs/polybuild.schema.json
  ```

- **Every config of a repository**: a `.taplo.toml` at its root (the paths are the repository's):

  ```toml
  [[rule]]
  include = ["**/polybuild.toml"]
  [rule.schema]
  path = "docs/polybuild.schema.json"
  ```

- **`[tool.polybuild]` in pyproject.toml**: Taplo gives a schema to a whole file, never to one table, and uses the
  JSON Schema Store's pyproject schema by default. `#:schema ./docs/pyproject.schema.json` as the first line of
  `pyproject.toml` (or a rule with `include = ["pyproject.toml"]`) checks `[tool.polybuild]` and accepts every other
  table as it is, in place of the Store's schema.
- **VS Code settings** (Even Better TOML), instead of a directive: `"evenBetterToml.schema.associations":
  {".*/polybuild\\\\.toml$": "file:///path/to/polybuild.schema.json"}`.

In another repository, write the schema of the installed polybuild next to its config and point the directive at it
(again after upgrading polybuild): `polybuild config-reference --json-schema > polybuild.schema.json`.
"""


def reference() -> str:
    """docs/config-reference.md: how editors get the schema, then every key."""
    from polybuild.support.schema import document

    return EDITOR_SUPPORT + document(SCHEMA, "tool.polybuild")
