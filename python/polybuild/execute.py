"""Running the plan: a parallel scheduler that always starts the ready task with the longest critical path, and a
task runner that builds into a private staging directory and publishes artifacts atomically."""

from __future__ import annotations

import heapq
import os
import re
import shutil
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from polybuild import builders
from polybuild.cache import Output, describe
from polybuild.errors import PolybuildError
from polybuild.process import Cancelled, ProcessGroup

if TYPE_CHECKING:
    from polybuild.builders import BuildContext, Step
    from polybuild.keys import KeyParts
    from polybuild.plan import Plan, Task

@dataclass
class Artifact:
    task: str
    target: str
    variant: str | None
    platform: str | None
    path: Path
    sha256: str
    size: int


@dataclass
class TaskResult:
    task: Task
    status: str  # "built", "cached", "failed", "cancelled" or "skipped"
    duration: float = 0.0
    artifacts: list[Artifact] = field(default_factory=list)
    log: Path | None = None
    failed_step: str | None = None
    reason: str | None = None


class Reporter(Protocol):
    def task_started(self, task: Task) -> None: ...
    def task_finished(self, result: TaskResult) -> None: ...
    def tick(self, running: dict[str, float]) -> None: ...


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


class Executor:
    def __init__(self, plan: Plan, ctx: BuildContext, jobs: int, keep_going: bool, reporter: Reporter) -> None:
        self.plan = plan
        self.ctx = ctx
        self.jobs = jobs
        self.keep_going = keep_going
        self.reporter = reporter
        self.procs = ProcessGroup()
        self.results: dict[str, TaskResult] = {}
        self._parts: dict[str, KeyParts] = {}  # keys computed by a local-hit check, reused by the worker
        ctx.tasks = plan.tasks

    def run(self) -> list[TaskResult]:
        """Run every task whose dependencies succeeded; on Ctrl-C stop all children and re-raise."""
        tasks = self.plan.tasks
        waiting = {i: set(t.deps) for i, t in tasks.items()}
        dependents: dict[str, list[str]] = {i: [] for i in tasks}
        for t in tasks.values():
            for d in t.deps:
                dependents[d].append(t.id)
        from polybuild.keys import toolchain_probes

        self.ctx.toolchains.prefetch({p for t in tasks.values() for p in toolchain_probes(t).values()})
        ready: list[tuple[float, str]] = [(-tasks[i].priority, i) for i, w in waiting.items() if not w]
        heapq.heapify(ready)
        running: dict[Future[TaskResult], tuple[str, float]] = {}
        stopping = False
        with ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="polybuild") as pool:
            try:
                while ready or running:
                    while ready and not stopping and len(running) < self.jobs:
                        _, tid = heapq.heappop(ready)
                        hit = self._local_hit(tasks[tid])
                        if hit is not None:  # no thread hand-off for the common no-op case
                            self._record(hit)
                            self._release(tid, dependents, waiting, ready)
                            continue
                        self.reporter.task_started(tasks[tid])
                        running[pool.submit(self._run_task, tasks[tid])] = (tid, time.monotonic())
                    if not running:
                        if ready and not stopping:
                            continue
                        break
                    done, _ = wait(running, timeout=0.25, return_when=FIRST_COMPLETED)
                    for fut in done:
                        tid, _ = running.pop(fut)
                        result = fut.result()
                        self._record(result)
                        if result.status in ("built", "cached"):
                            self._release(tid, dependents, waiting, ready)
                        elif result.status == "failed" and not stopping:
                            if self.keep_going:
                                self._skip_dependents(tid, dependents)
                            else:
                                stopping = True
                                self.procs.terminate_all()
                    self.reporter.tick({tid: start for tid, start in running.values()})
            except KeyboardInterrupt:
                self.procs.terminate_all(grace=2.0)
                raise
        for tid, task in tasks.items():
            if tid not in self.results:
                self._record(TaskResult(task, "skipped", reason="not started: the build stopped at a failure"))
        return [self.results[i] for i in tasks]

    def _release(self, tid: str, dependents: dict[str, list[str]], waiting: dict[str, set[str]],
                 ready: list[tuple[float, str]]) -> None:
        for dep in dependents[tid]:
            waiting[dep].discard(tid)
            if not waiting[dep]:
                heapq.heappush(ready, (-self.plan.tasks[dep].priority, dep))

    def _local_hit(self, task: Task) -> TaskResult | None:
        """Restore from the local store right here, or return None (and leave the key for the worker)."""
        cache = self.ctx.cache if _cacheable(task) else None
        if cache is None:
            return None
        start = time.monotonic()
        try:
            parts = self._parts[task.id] = self._key_parts(task)
            if not cache.store.has_manifest(parts.key):
                return None
            base = self._output_base(task)
            log_path = self._log_path(task)
            restored = cache.restore(parts.key, task.id, base, log_path, self._unchanged)
        except OSError:
            return None  # the worker will run it and report the problem
        if restored is None:
            return None
        self._remember(task, parts, restored)
        return TaskResult(task, "cached", time.monotonic() - start, [self._artifact(task, base, o) for o in restored],
                          log=log_path)

    def _unchanged(self, path: Path, sha256: str) -> bool:
        """Whether `path` holds that content, by the stat cache (one lstat when the file was not touched)."""
        root = self.ctx.ws.root
        try:
            rel = path.relative_to(root).as_posix()
            entry = self.ctx.stat_cache.entries(root, [rel]).get(rel)
        except (ValueError, OSError):
            return False
        return entry is not None and entry[1] == sha256

    def _log_path(self, task: Task) -> Path:
        path = self.ctx.state_dir / "logs" / f"{slug(task.id)}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _record(self, result: TaskResult) -> None:
        self.results[result.task.id] = result
        if result.status in ("built", "cached"):
            self.ctx.artifacts[result.task.id] = [a.path for a in result.artifacts]
        self.reporter.task_finished(result)

    def _skip_dependents(self, tid: str, dependents: dict[str, list[str]]) -> None:
        stack = list(dependents[tid])
        while stack:
            d = stack.pop()
            if d not in self.results:
                self._record(TaskResult(self.plan.tasks[d], "skipped", reason=f"dependency {tid} failed"))
                stack.extend(dependents[d])

    def _run_task(self, task: Task) -> TaskResult:
        ctx = self.ctx
        log_path = self._log_path(task)
        start = time.monotonic()
        result = TaskResult(task, "built", log=log_path)
        try:
            parts = self._parts.pop(task.id, None) or self._key_parts(task)
            base = self._output_base(task)
            cache = ctx.cache if _cacheable(task) else None
            restored = cache.restore(parts.key, task.id, base, log_path, self._unchanged) if cache else None
            if restored is not None:
                result.status = "cached"
                outputs = restored
            else:
                outputs = self._build(task, base, log_path, result)
                if outputs is not None and cache:
                    cache.save(parts.key, task.id, base, outputs, log_path)
            if outputs is not None:
                result.artifacts = [self._artifact(task, base, o) for o in outputs]
                self._remember(task, parts, outputs)
        except Cancelled:
            result.status, result.reason = "cancelled", "stopped because another task failed"
        except OSError as exc:
            result.status, result.reason = "failed", f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")
        finally:
            result.duration = time.monotonic() - start
        return result

    def _key_parts(self, task: Task) -> KeyParts:
        from polybuild.keys import key_parts

        return key_parts(task, self.ctx, {d: self.ctx.outputs[d] for d in sorted(task.deps)})

    def _output_base(self, task: Task) -> Path:
        """Build artifacts go to the dist directory (per variant and platform); task outputs stay in place."""
        if task.action != "build":
            return task.target.dir
        dest = self.ctx.ws.root / self.ctx.config["dist-dir"]
        if task.variant:
            dest /= task.variant.name
        if task.platform and task.platform != self.ctx.host:
            dest /= task.platform.slug
        return dest

    def _build(self, task: Task, base: Path, log_path: Path, result: TaskResult) -> list[Output] | None:
        """Run the builder's steps (builds write into a private staging directory, published on success)."""
        staging = None
        if task.action == "build":
            staging = self.ctx.state_dir / "tmp" / f"{slug(task.id)}-{uuid.uuid4().hex[:8]}"
            (staging / "out").mkdir(parents=True)
        try:
            with open(log_path, "wb") as log:
                out = staging / "out" if staging else base
                for step in builders.get(task.builder).steps(task, self.ctx, out):
                    if not self._run_step(step, task, log):
                        result.status, result.failed_step = "failed", step.display()
                        return None
            if staging:
                return self._publish(staging / "out", base)
            return self._declared_outputs(task, base)
        finally:
            if staging:
                shutil.rmtree(staging, ignore_errors=True)

    def _remember(self, task: Task, parts: KeyParts, outputs: list[Output]) -> None:
        """Dependents' keys use our output digest; `explain` compares against the parts recorded here."""
        from polybuild.keys import output_digest

        self.ctx.outputs[task.id] = output_digest([(o.path, o.sha256) for o in outputs])
        self.ctx.records.put(task.id, parts.key, self.ctx.outputs[task.id], parts.to_json())
        for lib, digest in parts.libraries.items():
            if self.ctx.records.library_digest(lib) != digest:
                entries = self.ctx.fingerprints.library_entries(lib)
                self.ctx.records.put_library(lib, digest, {p: f"{m} {d}" for p, (m, d) in entries.items()})

    def _artifact(self, task: Task, base: Path, out: Output) -> Artifact:
        return Artifact(task.id, task.target.id, task.variant.name if task.variant else None,
                        task.platform.name if task.platform else None, base / out.path, out.sha256, out.size)

    def _run_step(self, step: Step, task: Task, log) -> bool:
        log.write(f"$ {step.display()}\n".encode())
        log.flush()
        if step.action is not None:
            if self.procs.cancelled.is_set():
                raise Cancelled
            try:
                step.action()
            except PolybuildError as exc:  # e.g. the helper's one-line error: the log and summary show it
                log.write(f"{exc}\n".encode())
                return False
            return True
        env = {**self.ctx.env, **{k: str(v) for k, v in task.target.settings.get("env", {}).items()}, **step.env}
        code = self.procs.run(step.argv or [], step.cwd or task.target.dir, env, log)
        if code != 0:
            log.write(f"\n[polybuild] command exited with status {code}\n".encode())
        return code == 0

    def _publish(self, out: Path, dest: Path) -> list[Output]:
        """Move each output into the dist directory with a rename, so readers never see a partial file."""
        outputs = []
        for src in sorted(p for p in out.rglob("*") if p.is_file()):
            output = describe(src, out)
            target = dest / output.path
            target.parent.mkdir(parents=True, exist_ok=True)
            _atomic_move(src, target)
            outputs.append(output)
        return outputs

    def _declared_outputs(self, task: Task, base: Path) -> list[Output]:
        if task.builder != "command":
            return []
        patterns = task.spec["outputs"]
        found = {p for pattern in patterns for p in base.glob(pattern) if p.is_file()}
        return [describe(p, base) for p in sorted(found)]


def _cacheable(task: Task) -> bool:
    return task.spec is None or task.spec["cache"]


def _atomic_move(src: Path, dst: Path) -> None:
    try:
        os.replace(src, dst)
    except OSError:  # another filesystem: copy next to the destination, then rename
        tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:8]}.tmp")
        shutil.copy2(src, tmp)
        os.replace(tmp, dst)
