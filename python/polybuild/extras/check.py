"""`check_extras`: install each built wheel once per extras set, in fresh environments, and judge what happened.

Sets: the base install, each declared extra, and every extra at once (the declared `all` extra when there is one,
which must then bring everything the others bring). Judged per package, once every environment has run:
- the install succeeds, and every workspace distribution comes from the wheelhouse at its built version;
- the wheel's top-level modules import and its console scripts answer `--help`, in every environment;
- the base closure holds none of the extra-only distributions;
- each configured command that needs an extra fails naming the extra without it, and succeeds with it;
- every plugin entry point loads once every extra is installed (an optional plugin never vanishes silently).
"""

from __future__ import annotations

import re
import shlex
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from polybuild.extras import envs
from polybuild.extras.wheel import WheelInfo, read_wheel
from polybuild.support.errors import UserError
from polybuild.support.statedir import ensure

if TYPE_CHECKING:
    from polybuild.api import Loaded

_NO_MODULE = re.compile(r"No module named '([^']+)'")


@dataclass
class ExtrasReport:
    """The outcome: `problems` (user-facing lines naming package, extras set and fix) and `checked` (what ran)."""

    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    durations: dict[str, float] = field(default_factory=dict)  # "name[extras]" -> seconds: create, install, run

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "problems": self.problems, "checked": self.checked,
                "durations_s": {k: round(v, 3) for k, v in sorted(self.durations.items())}}


@dataclass
class PackageCheck:
    """One package to check: its wheel and its settings (`[extras.<package>]`)."""

    wheel: WheelInfo
    extra_only: list[str]
    commands: list[tuple[list[str], str]]  # (argv, extra it needs)

    def sets(self) -> list[tuple[str, ...]]:
        """Base, each extra, and every extra at once unless a declared `all` extra is that set."""
        extras = sorted(self.wheel.extras)
        sets: list[tuple[str, ...]] = [(), *((e,) for e in extras)]
        if len(extras) > 1 and "all" not in extras:
            sets.append(tuple(extras))
        return sets


@dataclass
class EnvResult:
    extras: tuple[str, ...]
    seconds: float = 0.0
    install_error: str | None = None
    probe: dict[str, Any] = field(default_factory=dict)
    scripts: dict[str, Any] = field(default_factory=dict)  # script -> CompletedProcess of `script --help`
    commands: dict[str, Any] = field(default_factory=dict)  # command line -> CompletedProcess

    @property
    def dists(self) -> set[str]:
        return {canonicalize_name(n) for n in self.probe.get("dists", {})}


def check_extras(loaded: Loaded, wheelhouse: Sequence[Path], packages: Sequence[str] = (), *,
                 installer: str | None = None) -> ExtrasReport:
    """Check extras isolation of `packages` (default: every Python package with a wheel in `wheelhouse`, except
    those configured `skip`) on the built wheels. `installer` forces "uv" or "pip" (default: uv when on PATH)."""
    wheels = _index(wheelhouse)
    chosen = _choose(loaded, wheels, packages)
    report = ExtrasReport()
    if not chosen:
        return report
    ws = loaded.ws
    tool = envs.choose_installer(ws.config.python, installer)
    state_dir = ensure(ws.config.state_dir)
    jobs = [(pkg, extras) for pkg in chosen for extras in pkg.sets()]
    with tempfile.TemporaryDirectory(prefix="check-extras-", dir=state_dir) as tmp, \
            ThreadPoolExecutor(max_workers=max(1, min(len(jobs), ws.config.jobs))) as pool:
        futures = [pool.submit(_run_set, tool, Path(tmp), i, pkg, extras, wheels) for i, (pkg, extras) in
                   enumerate(jobs)]
        results = [f.result() for f in futures]
    for pkg in chosen:
        mine = {r.extras: r for (p, _), r in zip(jobs, results, strict=True) if p is pkg}
        _judge(pkg, mine, wheels, report)
    return report


def _index(wheelhouse: Sequence[Path]) -> dict[str, WheelInfo]:
    """The wheelhouse by distribution name; when a name has several wheels (variants), the first one given."""
    found: dict[str, WheelInfo] = {}
    for path in wheelhouse:
        if Path(path).suffix == ".whl":
            info = read_wheel(Path(path).resolve())
            found.setdefault(info.name, info)
    return found


def _choose(loaded: Loaded, wheels: dict[str, WheelInfo], names: Sequence[str]) -> list[PackageCheck]:
    """The packages to check, with their validated settings; a name with no built wheel is a UserError."""
    ws = loaded.ws
    settings = _settings(loaded)
    if names:
        targets = [python_target(loaded, n) for n in names]
    else:
        targets = sorted((t for t in ws.targets.values() if t.kind == "py"), key=lambda t: t.id)
    chosen = []
    for target in targets:
        dist = canonicalize_name(target.info.dist_name)
        conf = settings.get(dist, {})
        if dist not in wheels:
            if names:
                raise UserError(f"{target.id}: no built wheel of {dist} among the {len(wheels)} wheels given",
                                hint=f"build it first: polybuild build {target.name}")
            continue
        if conf.get("skip") and not names:
            continue
        chosen.append(_package(loaded, wheels[dist], conf))
    return chosen


def python_target(loaded: Loaded, name: str):
    """The Python target named `name` (id, name or directory); any other target is a UserError."""
    target = loaded.ws.resolve(name)
    if target.kind != "py":
        raise UserError(f"{target.id} is not a Python package; check-extras checks wheels",
                        hint="name a py: target (`polybuild graph` lists them)")
    return target


def _settings(loaded: Loaded) -> dict[str, dict[str, Any]]:
    """`[extras.<package>]` by distribution name; a key that names no Python package is a located error."""
    config = loaded.ws.config
    out = {}
    for key, conf in config["extras"].items():
        try:
            target = loaded.ws.resolve(key, source=f"{config.display}: [extras.{key}]", kinds=frozenset({"py"}))
        except UserError as exc:
            raise config.error(("extras", key), f"[extras.{key}] names no Python package of the workspace",
                               exc.hint) from exc
        out[canonicalize_name(target.info.dist_name)] = {**conf, "key": key}
    return out


def _package(loaded: Loaded, wheel: WheelInfo, conf: dict[str, Any]) -> PackageCheck:
    config, key = loaded.ws.config, conf.get("key")
    commands = []
    for line, extra in sorted(conf.get("commands", {}).items()):
        where = ("extras", key, "commands", line)
        try:
            argv = shlex.split(line)
        except ValueError as exc:
            raise config.error(where, f"cannot split '{line}' into arguments: {exc}") from None
        if not argv:
            raise config.error(where, "an empty command line")
        if canonicalize_name(extra) not in wheel.extras:
            declared = ", ".join(sorted(wheel.extras)) or "none"
            raise config.error(where, f"'{line}' needs extra '{extra}', which {wheel.name} {wheel.version} does "
                               f"not declare (declared: {declared})",
                               "name an extra of [project.optional-dependencies]")
        commands.append((argv, canonicalize_name(extra)))
    extra_only = []
    for name in conf.get("extra-only", []):
        try:
            extra_only.append(canonicalize_name(Requirement(name).name))
        except InvalidRequirement:
            raise config.error(("extras", key, "extra-only"), f"'{name}' is not a distribution name") from None
    return PackageCheck(wheel, sorted(set(extra_only)), commands)


# --- Running one extras set -------------------------------------------------------------------------------------

def _run_set(tool: envs.Installer, tmp: Path, index: int, pkg: PackageCheck, extras: tuple[str, ...],
             wheels: dict[str, WheelInfo]) -> EnvResult:
    start = time.monotonic()
    result = EnvResult(extras)
    env = envs.create(tool, tmp / f"env{index}")
    proc = envs.install(tool, env, pkg.wheel, extras, wheels, tmp / f"constraints{index}.txt")
    if proc.returncode != 0:
        result.install_error = envs.tail(proc.stderr or proc.stdout, 6)
    else:
        result.probe = envs.probe(env, pkg.wheel.modules, pkg.wheel.plugins)
        for script in pkg.wheel.scripts:
            result.scripts[script] = env.run([envs.script_path(env, script), "--help"])
        for argv, _ in pkg.commands:
            head = argv[0] if argv[0] not in pkg.wheel.scripts else envs.script_path(env, argv[0])
            result.commands[shlex.join(argv)] = env.run([head, *argv[1:]])
    result.seconds = time.monotonic() - start
    return result


# --- Judging ----------------------------------------------------------------------------------------------------

def _judge(pkg: PackageCheck, results: dict[tuple[str, ...], EnvResult], wheels: dict[str, WheelInfo],
           report: ExtrasReport) -> None:
    """Problems go to the report as found; what ran is summed up in one `checked` line per extras set."""
    wheel = pkg.wheel
    notes: dict[tuple[str, ...], list[str]] = {e: [] for e in results}
    for extras, r in results.items():
        report.durations[wheel.extra_of(extras)] = r.seconds
        if r.install_error:
            notes[extras].append("the install fails")
            report.problems.append(f"{_label(wheel, extras)}: the install fails: {r.install_error}\n"
                                   f"  fix: make every requirement of this set installable (workspace packages "
                                   f"need a built wheel)")
    ok = {e: r for e, r in results.items() if not r.install_error}
    if () in ok:
        providers = _providers(ok)
        for extras, r in ok.items():
            notes[extras].append(_installed(wheel, extras, r, ok[()]))
            _check_sources(wheel, extras, r, wheels, report)
            _check_imports(pkg, extras, r, ok, providers, report, notes[extras])
        _check_base_closure(pkg, ok, report, notes[()])
        _check_all_extra(wheel, ok, report)
        _check_commands(pkg, ok, report, notes)
        _check_plugins(wheel, ok, report, notes)
    for extras, lines in notes.items():
        report.checked.append(f"{_label(wheel, extras)}: {'; '.join(lines)}")


def _label(wheel: WheelInfo, extras: tuple[str, ...]) -> str:
    return f"{wheel.extra_of(extras)} {wheel.version}" + ("" if extras else " (base install)")


def _installed(wheel: WheelInfo, extras: tuple[str, ...], r: EnvResult, base: EnvResult) -> str:
    if extras:
        return f"brings {', '.join(sorted(r.dists - base.dists)) or 'nothing'} beyond the base install " \
               f"({r.seconds:.2f}s)"
    others = sorted(r.dists - {wheel.name})
    return f"installed {'with ' + ', '.join(others) if others else 'alone'} ({r.seconds:.2f}s)"


def _providers(ok: dict[tuple[str, ...], EnvResult]) -> dict[str, set[str]]:
    """Top-level module -> the distributions providing it, over every environment."""
    found: dict[str, set[str]] = {}
    for r in ok.values():
        for module, dists in r.probe.get("providers", {}).items():
            found.setdefault(module, set()).update(canonicalize_name(d) for d in dists)
    return found


def _check_sources(wheel: WheelInfo, extras: tuple[str, ...], r: EnvResult, wheels: dict[str, WheelInfo],
                   report: ExtrasReport) -> None:
    """Workspace distributions are the wheelhouse's wheels, never a same-named package from an index."""
    for name, info in sorted(r.probe.get("dists", {}).items()):
        built = wheels.get(canonicalize_name(name))
        if built is None:
            continue
        url = info.get("url")
        from_wheel = url is None or url == built.path.resolve().as_uri()
        if info["version"] != built.version or not from_wheel:
            source = url or "an index"
            report.problems.append(f"{_label(wheel, extras)}: installed {name} {info['version']} from {source}, "
                                   f"not the built {built.path.name}\n  fix: pin workspace packages to the "
                                   f"release version (`polybuild version check`)")


def _check_imports(pkg: PackageCheck, extras: tuple[str, ...], r: EnvResult, ok: dict[tuple[str, ...], EnvResult],
                   providers: dict[str, set[str]], report: ExtrasReport, notes: list[str]) -> None:
    """Top-level modules import and console scripts answer --help; a script failing on a module whose import was
    already reported is not reported twice."""
    wheel = pkg.wheel
    missing: set[str] = set()
    notes.extend([f"import {', '.join(wheel.modules)}"] if wheel.modules else [])
    notes.extend(f"{script} --help" for script in r.scripts)
    for module, failure in sorted(r.probe.get("imports", {}).items()):
        if failure:
            missing.add(failure.get("missing") or "")
            fix = _missing_fix(wheel, failure.get("missing") or "", ok, providers)
            report.problems.append(f"{_label(wheel, extras)}: `import {module}` fails: {failure['error']}\n"
                                   f"  fix: {fix}")
    for script, proc in r.scripts.items():
        if proc.returncode == 0 or _already_reported(proc, missing):
            continue
        module = _NO_MODULE.search(proc.stderr)
        fix = (_missing_fix(wheel, module[1], ok, providers) if module else
               "the console script must answer --help with exit 0 in this install")
        report.problems.append(f"{_label(wheel, extras)}: `{script} --help` exits {proc.returncode}: "
                               f"{envs.tail(proc.stderr or proc.stdout)}\n  fix: {fix}")


def _already_reported(proc: Any, missing: set[str]) -> bool:
    """The command died of a missing module whose import failure is already a problem of this environment."""
    module = _NO_MODULE.search(proc.stderr)
    return bool(module) and module[1] in missing and "Traceback" in proc.stderr


def _missing_fix(wheel: WheelInfo, missing: str, ok: dict[tuple[str, ...], EnvResult],
                 providers: dict[str, set[str]]) -> str:
    """Name the distribution behind a missing module and the extras that bring it."""
    top = missing.split(".")[0]
    dists = sorted(providers.get(top, ()))
    if not top:
        return "see the error above"
    if not dists:
        return f"add the distribution that provides '{top}' to [project].dependencies of {wheel.name}"
    dist = dists[0]
    bringers = sorted(e[0] for e, r in ok.items() if len(e) == 1 and dist in r.dists)
    where = f"listed only under the extra{'s' if len(bringers) > 1 else ''} {', '.join(bringers)}" if bringers \
        else "not installed by this set"
    return (f"'{top}' comes from {dist}, {where}: add {dist} to [project].dependencies of {wheel.name}, or import "
            f"it only in code that runs with the extra")


def _check_base_closure(pkg: PackageCheck, ok: dict[tuple[str, ...], EnvResult], report: ExtrasReport,
                        notes: list[str]) -> None:
    """The declared extra-only distributions stay out of the base install."""
    wheel, base = pkg.wheel, ok[()]
    for dist in sorted(set(pkg.extra_only) & base.dists):
        chain = " -> ".join(_chain(base, wheel.name, dist)) or wheel.name
        report.problems.append(f"{_label(wheel, ())}: installs {dist}, which [extras.{wheel.name}] extra-only "
                               f"keeps out of the base install (pulled in by {chain})\n  fix: move the requirement "
                               f"that brings it to an extra in [project.optional-dependencies]")
    if pkg.extra_only:
        notes.append(f"extra-only {', '.join(pkg.extra_only)} checked against the base closure")


def _chain(env: EnvResult, root: str, target: str) -> list[str]:
    """The requirement path root -> ... -> target through the installed distributions' base requirements."""
    requires: dict[str, list[str]] = {}
    for name, info in env.probe.get("dists", {}).items():
        reqs = []
        for line in info.get("requires", []):
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if not req.marker or "extra" not in str(req.marker):
                reqs.append(canonicalize_name(req.name))
        requires[canonicalize_name(name)] = reqs
    paths = {root: [root]}
    queue = [root]
    while queue:
        node = queue.pop(0)
        for dep in requires.get(node, []):
            if dep not in paths:
                paths[dep] = [*paths[node], dep]
                queue.append(dep)
    return paths.get(target, [])


def _check_all_extra(wheel: WheelInfo, ok: dict[tuple[str, ...], EnvResult], report: ExtrasReport) -> None:
    """A declared `all` extra brings everything each other extra brings (a new extra is easy to forget there)."""
    everything = ok.get(("all",))
    if everything is None:
        return
    for extras, r in ok.items():
        if extras and extras != ("all",):
            for dist in sorted(r.dists - everything.dists):
                report.problems.append(f"{_label(wheel, ('all',))}: does not install {dist}, which "
                                       f"{wheel.extra_of(extras)} does\n  fix: add '{wheel.extra_of(extras)}' to "
                                       f"the all extra")


def _check_commands(pkg: PackageCheck, ok: dict[tuple[str, ...], EnvResult], report: ExtrasReport,
                    notes: dict[tuple[str, ...], list[str]]) -> None:
    """A command that needs an extra fails naming it without the extra, and works with it."""
    wheel = pkg.wheel
    for argv, extra in pkg.commands:
        line = shlex.join(argv)
        needed = ok.get((extra,))
        for extras, r in ok.items():
            proc = r.commands.get(line)
            missing = {(f or {}).get("missing") for f in r.probe.get("imports", {}).values() if f}
            if proc is None or _already_reported(proc, missing):
                continue
            has = extra in extras or (needed is not None and needed.dists <= r.dists)
            output = f"{proc.stdout}\n{proc.stderr}"
            install = f"pip install '{wheel.name}[{extra}]'"
            if has and proc.returncode != 0:
                report.problems.append(f"{_label(wheel, extras)}: `{line}` exits {proc.returncode} with the extra "
                                       f"'{extra}' installed: {envs.tail(output)}\n  fix: the command must work "
                                       f"(and return) once the extra is installed")
            elif not has and proc.returncode == 0:
                report.problems.append(f"{_label(wheel, extras)}: `{line}` exits 0 without the extra '{extra}'\n"
                                       f"  fix: check for the extra's imports first and exit non-zero with a "
                                       f"message such as: this command needs the {extra} extra: {install}")
            elif not has and not re.search(rf"\b{re.escape(extra)}\b", output, re.IGNORECASE):
                report.problems.append(f"{_label(wheel, extras)}: `{line}` fails without the extra '{extra}' but "
                                       f"does not name it: {envs.tail(output)}\n  fix: catch the ImportError and "
                                       f"say: this command needs the {extra} extra: {install}")
            else:
                said = f"with the extra '{extra}'" if has else f"without the extra '{extra}', naming it"
                notes[extras].append(f"`{line}` exits {proc.returncode} {said}")


def _check_plugins(wheel: WheelInfo, ok: dict[tuple[str, ...], EnvResult], report: ExtrasReport,
                   notes: dict[tuple[str, ...], list[str]]) -> None:
    """With every extra installed, every plugin entry point loads; otherwise the host skips it without a word."""
    fullest = max(ok, key=lambda e: (len(ok[e].dists), len(e)))
    for name, error in sorted(ok[fullest].probe.get("plugins", {}).items()):
        if error:
            report.problems.append(f"{_label(wheel, fullest)}: plugin {name} does not load even with every extra "
                                   f"installed: {error}\n  fix: declare what it imports in [project].dependencies "
                                   f"or in an extra")
        else:
            notes[fullest].append(f"plugin {name} loads")
