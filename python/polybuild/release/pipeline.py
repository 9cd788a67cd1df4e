"""The release, step by step, stopping at the first step that fails: the checks that a release engineer would
otherwise run by hand (and forget), then the build, the checks of what was built, the checksums, and the tag.

A release is cut from a commit that already carries the version (`polybuild version set X`, commit), so the
release is fully determined by that commit: building it twice, anywhere, gives the same artifacts."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from polybuild.release import git
from polybuild.support.errors import BuildFailed, UserError

if TYPE_CHECKING:
    from polybuild.api import Loaded, Outcome
    from polybuild.execute.scheduler import Artifact
    from polybuild.licenses.scan import Scan
    from polybuild.release.verify import Expected
    from polybuild.versioning.convert import ReleaseVersion


class ReleaseStopped(BuildFailed):
    """A release step failed; its problems were printed."""


@dataclass
class Options:
    version: ReleaseVersion
    dry_run: bool = False
    variants: list[str] = field(default_factory=list)  # default: every declared variant
    platforms: list[str] = field(default_factory=list)  # default: the host
    jobs: int | None = None
    output_logs: str | None = None  # full, errors-only or none (default: the `output-logs` key)


@dataclass
class State:
    """What the steps learn and hand on to later steps (and into the release manifest)."""

    loaded: Loaded
    options: Options
    commit: git.Commit | None = None
    locks: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)  # packages not at the release's version -> theirs
    licenses: Scan | None = None
    outcome: Outcome | None = None
    checks: list[str] = field(default_factory=list)

    @property
    def tag(self) -> str:
        return f"v{self.options.version.pep440}"


def release(loaded: Loaded, options: Options, say: Callable[[str], None] = lambda s: print(s, file=sys.stderr)
            ) -> State:
    """Run every step in order; raises ReleaseStopped (exit 1) naming the step and its problems."""
    state = State(loaded, options)
    steps = [("clean git tree", _clean_tree), ("version", _version), ("lockfiles", _locks),
             ("licenses", _licenses), ("build", _build), ("wheels", _wheels), ("extras", _extras),
             ("checksums", _checksums), ("tag", _tag)]
    for n, (name, step) in enumerate(steps, 1):
        problems = step(state)
        if problems:
            say(f"release: [{n}/{len(steps)}] {name}: FAILED")
            for problem in problems:
                say(f"  {problem}")
            raise ReleaseStopped(f"release {options.version.pep440} stopped at step {n} ({name}); nothing was tagged")
        say(f"release: [{n}/{len(steps)}] {name}: {state.checks[-1] if state.checks else 'ok'}")
    return state


def _clean_tree(state: State) -> list[str]:
    own = state.loaded.ws.config.output_prefixes
    dirty = [line for line in git.uncommitted(state.loaded.ws.root) if not line[3:].startswith(own)]
    if dirty:
        return [*dirty[:20], *(["..."] if len(dirty) > 20 else []),
                "hint: commit or stash these; a release is built from a commit, not from a work tree"]
    state.commit = git.head(state.loaded.ws.root)
    state.checks.append(f"clean at {state.commit.sha[:12]}")
    return []


def _version(state: State) -> list[str]:
    from polybuild.versioning import groups, stamp

    ws, wanted = state.loaded.ws, state.options.version
    current = groups.workspace_version(ws)
    mismatches = stamp.check(ws)
    problems = [m.describe(ws) for m in mismatches]
    if current.pep440 != wanted.pep440:
        problems.insert(0, f"the workspace version is {current.pep440}, not {wanted.pep440}")
    if problems:
        if current.pep440 != wanted.pep440 or any(m.group == groups.LOCKSTEP for m in mismatches):
            problems.append(f"hint: run `polybuild version set {wanted.pep440}`, commit, and release that commit")
        for name in sorted({m.group for m in mismatches} - {groups.LOCKSTEP}):
            problems.append(f"hint: version group {name} disagrees with itself: `polybuild version set "
                            f"<its version> --group {name}`, commit, and release that commit")
        return problems
    tagged = git.tag_commit(ws.root, state.tag)
    if tagged is not None and tagged != state.commit.sha:
        return [f"tag {state.tag} already exists at {tagged[:12]}, not at HEAD ({state.commit.sha[:12]})",
                "hint: a released version is never re-cut; release a new version"]
    state.versions = groups.resolve(ws).own_versions()
    own = f"; {len(state.versions)} package(s) at their own version" if state.versions else ""
    state.checks.append(f"{wanted.pep440} (Cargo: {wanted.semver}) in every manifest{own}")
    return []


def _locks(state: State) -> list[str]:
    from polybuild.lockfiles import preflight

    report = preflight(state.loaded, state.options.platforms)
    state.locks = report.digests
    state.checks.append(f"{len(report.digests)} lockfile(s) fresh")
    return report.problems


def _licenses(state: State) -> list[str]:
    from polybuild.licenses.scan import attribution_files, scan, stale

    ws = state.loaded.ws
    scanned = state.licenses = scan(ws, fetch=True)  # what the lockfiles name, hash-checked (a release has network)
    problems = [v.describe() for v in scanned.violations() if v.severity == "deny"]
    outdated = stale(attribution_files(scanned, None), ws.root / ws.config["licenses"]["attributions-dir"])
    problems += [f"{name} is out of date (run `polybuild attributions` and commit the result)" for name in outdated]
    state.checks.append("deny.toml passes, attributions current")
    return problems


def _release_variants(loaded: Loaded, platforms: list[str]) -> list[str]:
    """Every declared variant that can be built for all the platforms (a release ships them all)."""
    from polybuild.support.platforms import host

    names = platforms or [host().name]
    declared = loaded.ws.config["variants"]
    return [n for n, v in declared.items() if not v["platforms"] or all(p in v["platforms"] for p in names)]


def _build(state: State) -> list[str]:
    from polybuild import api

    loaded, options = state.loaded, state.options
    dist = loaded.ws.config.dist_dir
    shutil.rmtree(dist, ignore_errors=True)  # dist/ then holds this release and nothing older
    variants = options.variants or _release_variants(loaded, options.platforms)
    with source_date_epoch(state.commit.time):  # every timestamp in every artifact (and the SBOM) is the commit's
        outcome = api.build(loaded, variants=variants, platforms=options.platforms, jobs=options.jobs,
                            output_logs=options.output_logs)
    state.outcome = outcome
    failed = [r for r in outcome.results if r.status not in ("built", "cached")]
    if failed:
        from polybuild.execute.report import LOG_TAIL_LINES, failure_details

        tail = 0 if outcome.output_logs == "none" else LOG_TAIL_LINES
        return [failure_details(r, loaded.ws.root, tail) if r.status == "failed" else f"{r.task.id}: {r.status}"
                for r in failed]
    count = sum(len(r.artifacts) for r in outcome.results)
    state.checks.append(f"{count} artifact(s), SOURCE_DATE_EPOCH={state.commit.time}")
    return []


@contextlib.contextmanager
def source_date_epoch(epoch: int) -> Iterator[None]:
    old = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = str(epoch)
    try:
        yield
    finally:
        if old is None:
            del os.environ["SOURCE_DATE_EPOCH"]
        else:
            os.environ["SOURCE_DATE_EPOCH"] = old


def _wheels(state: State) -> list[str]:
    from polybuild.release.verify import verify_wheel

    problems, count = [], 0
    for artifact in _artifacts(state):
        if artifact.path.suffix == ".whl":
            count += 1
            problems += verify_wheel(artifact.path, _expected(state, artifact))
    state.checks.append(f"{count} wheel(s) verified")
    return problems


def _expected(state: State, artifact: Artifact) -> Expected:
    from polybuild import builders
    from polybuild.release.verify import Expected
    from polybuild.support.platforms import Platform

    target = state.loaded.ws.targets[artifact.target]
    builder = builders.get(target.builder)
    extension = builder.binary_wheel
    platform = Platform.parse(artifact.platform) if artifact.platform else None
    if extension and platform is None:
        from polybuild.support.platforms import host

        platform = host()
    version = state.versions.get(target.id, state.options.version.pep440)
    return Expected(version, extension, extension and builder.is_abi3(target), platform,
                    builder.import_names(target))


def _extras(state: State) -> list[str]:
    from polybuild.extras import check_extras

    wheels = [a.path for a in _artifacts(state) if a.path.suffix == ".whl" and a.variant is None]
    report = check_extras(state.loaded, wheels)
    state.checks.append(f"{len(report.checked)} extras set(s) isolated")
    return report.problems


def _checksums(state: State) -> list[str]:
    from polybuild.release.manifest import write_release_files

    written = write_release_files(state, _artifacts(state))
    state.checks.append(", ".join(str(p.relative_to(state.loaded.ws.root)) for p in written))
    return []


def _tag(state: State) -> list[str]:
    root = state.loaded.ws.root
    if state.options.dry_run:
        state.checks.append(f"dry run: {state.tag} not created")
    elif git.tag_commit(root, state.tag) == state.commit.sha:
        state.checks.append(f"{state.tag} already at HEAD")
    else:
        git.create_tag(root, state.tag, f"polybuild release {state.options.version.pep440}")
        state.checks.append(f"created {state.tag} (push it: git push origin {state.tag})")
    return []


def _artifacts(state: State) -> list[Artifact]:
    return [a for r in state.outcome.results for a in r.artifacts]


def parse_release_version(text: str) -> ReleaseVersion:
    from polybuild.versioning.convert import parse_version

    if not text.strip():
        raise UserError("release needs a VERSION such as 1.2.0")
    return parse_version(text.removeprefix("v"))
