"""Running the plan: a parallel scheduler that always starts the ready task with the longest critical path, and a
task runner that builds into a private staging directory and publishes artifacts atomically."""

from __future__ import annotations

import hashlib
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
from polybuild.process import Cancelled, ProcessGroup

if TYPE_CHECKING:
    from polybuild.builders import BuildContext, Step
    from polybuild.plan import Plan, Task

# Reproducible by default: archive timestamps are fixed unless the caller chose an epoch (1980-01-01, the zip minimum).
DEFAULT_SOURCE_DATE_EPOCH = "315532800"


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
    status: str  # "built", "failed", "cancelled" or "skipped"
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


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Executor:
    def __init__(self, plan: Plan, ctx: BuildContext, jobs: int, keep_going: bool, reporter: Reporter) -> None:
        self.plan = plan
        self.ctx = ctx
        self.jobs = jobs
        self.keep_going = keep_going
        self.reporter = reporter
        self.procs = ProcessGroup()
        self.results: dict[str, TaskResult] = {}
        self.env = {**os.environ}
        self.env.setdefault("SOURCE_DATE_EPOCH", DEFAULT_SOURCE_DATE_EPOCH)

    def run(self) -> list[TaskResult]:
        """Run every task whose dependencies succeeded; on Ctrl-C stop all children and re-raise."""
        tasks = self.plan.tasks
        waiting = {i: set(t.deps) for i, t in tasks.items()}
        dependents: dict[str, list[str]] = {i: [] for i in tasks}
        for t in tasks.values():
            for d in t.deps:
                dependents[d].append(t.id)
        ready: list[tuple[float, str]] = [(-tasks[i].priority, i) for i, w in waiting.items() if not w]
        heapq.heapify(ready)
        running: dict[Future[TaskResult], tuple[str, float]] = {}
        stopping = False
        with ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="polybuild") as pool:
            try:
                while ready or running:
                    while ready and not stopping and len(running) < self.jobs:
                        _, tid = heapq.heappop(ready)
                        self.reporter.task_started(tasks[tid])
                        running[pool.submit(self._run_task, tasks[tid])] = (tid, time.monotonic())
                    if not running:
                        break
                    done, _ = wait(running, timeout=0.25, return_when=FIRST_COMPLETED)
                    for fut in done:
                        tid, _ = running.pop(fut)
                        result = fut.result()
                        self._record(result)
                        if result.status == "built":
                            for dep in dependents[tid]:
                                waiting[dep].discard(tid)
                                if not waiting[dep]:
                                    heapq.heappush(ready, (-tasks[dep].priority, dep))
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

    def _record(self, result: TaskResult) -> None:
        self.results[result.task.id] = result
        if result.status == "built":
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
        state = self.ctx.state_dir
        name = slug(task.id)
        log_path = state / "logs" / f"{name}.log"
        staging = state / "tmp" / f"{name}-{uuid.uuid4().hex[:8]}"
        out = staging / "out"
        out.mkdir(parents=True)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        result = TaskResult(task, "built", log=log_path)
        try:
            with open(log_path, "wb") as log:
                for step in builders.get(task.builder).steps(task, self.ctx, out):
                    if not self._run_step(step, task, log):
                        result.status, result.failed_step = "failed", step.display()
                        break
            if result.status == "built":
                result.artifacts = self._publish(task, out)
        except Cancelled:
            result.status, result.reason = "cancelled", "stopped because another task failed"
        except OSError as exc:
            result.status, result.reason = "failed", f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            result.duration = time.monotonic() - start
        return result

    def _run_step(self, step: Step, task: Task, log) -> bool:
        log.write(f"$ {step.display()}\n".encode())
        log.flush()
        if step.action is not None:
            if self.procs.cancelled.is_set():
                raise Cancelled
            step.action()
            return True
        env = {**self.env, **{k: str(v) for k, v in task.target.settings.get("env", {}).items()}, **step.env}
        code = self.procs.run(step.argv or [], step.cwd or task.target.dir, env, log)
        if code != 0:
            log.write(f"\n[polybuild] command exited with status {code}\n".encode())
        return code == 0

    def _publish(self, task: Task, out: Path) -> list[Artifact]:
        """Move each output into the dist directory with a rename, so readers never see a partial file."""
        dest = self.ctx.ws.root / self.ctx.config["dist-dir"]
        if task.variant:
            dest /= task.variant.name
        if task.platform and task.platform != self.ctx.host:
            dest /= task.platform.slug
        artifacts = []
        for src in sorted(p for p in out.rglob("*") if p.is_file()):
            target = dest / src.relative_to(out)
            target.parent.mkdir(parents=True, exist_ok=True)
            digest, size = sha256_file(src), src.stat().st_size
            _atomic_move(src, target)
            artifacts.append(Artifact(task.id, task.target.id, task.variant.name if task.variant else None,
                                      task.platform.name if task.platform else None, target, digest, size))
        return artifacts


def _atomic_move(src: Path, dst: Path) -> None:
    try:
        os.replace(src, dst)
    except OSError:  # another filesystem: copy next to the destination, then rename
        tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:8]}.tmp")
        shutil.copy2(src, tmp)
        os.replace(tmp, dst)
