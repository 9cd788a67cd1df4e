"""Running the plan: a parallel scheduler that always starts the ready task with the longest critical path, and a
task runner that builds into a private staging directory and publishes artifacts atomically."""

from __future__ import annotations

import contextlib
import heapq
import re
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from polybuild import builders
from polybuild.cache.tasks import Output, describe
from polybuild.support.errors import PolybuildError
from polybuild.support.fs import move_into_place
from polybuild.support.process import Cancelled, ProcessGroup, TaskLog

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from polybuild.builders import BuildContext, Step
    from polybuild.cache.keys import KeyParts
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
    def task_output(self, task: Task, lines: list[str]) -> None: ...


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


class Executor:
    """Runs a plan on `jobs` worker threads. Each worker takes the next ready task itself as soon as it finishes one,
    so no task waits for a hand-off through the main thread, which only refreshes the progress line (woken by a
    timer, not by every task) and takes Ctrl-C. `remote_jobs` more workers let tasks run on a remote executor
    beyond `jobs`: every step that runs here holds one of `jobs` local slots."""

    def __init__(self, plan: Plan, ctx: BuildContext, jobs: int, keep_going: bool, reporter: Reporter,
                 refused: Mapping[str, str] | None = None, live_output: bool = False, remote_jobs: int = 0) -> None:
        self.plan = plan
        self.live_output = live_output  # children's lines also go to the reporter as they come (--output-logs full)
        self.ctx = ctx
        self.jobs = jobs
        self.workers = jobs + remote_jobs
        self._local_slots = threading.BoundedSemaphore(jobs)
        self.keep_going = keep_going
        self.reporter = reporter
        self.procs = ProcessGroup()
        self.results: dict[str, TaskResult] = {}
        ctx.tasks = plan.tasks
        tasks = plan.tasks
        self._waiting = {i: set(t.deps) for i, t in tasks.items()}
        self._dependents: dict[str, list[str]] = {i: [] for i in tasks}
        for t in tasks.values():
            for d in t.deps:
                self._dependents[d].append(t.id)
        self.refused = refused or {}  # task id -> why its builder refused it before anything ran
        self._ready = [(-t.priority, i) for i, t in tasks.items() if not t.deps and i not in self.refused]
        heapq.heapify(self._ready)
        self._running: dict[str, float] = {}  # task id -> start (monotonic)
        self._stopping = False
        self._stopped_because = "stopped because another task failed"  # what a cancelled task's line says
        self._error: BaseException | None = None  # a bug in a worker, re-raised by run()
        self._cond = threading.Condition()  # guards everything above, the results and the reporter

    def run(self) -> list[TaskResult]:
        """Run every task whose dependencies succeeded; on Ctrl-C stop all children and re-raise."""
        from polybuild.cache.keys import toolchain_probes

        tasks = self.plan.tasks
        self.ctx.toolchains.prefetch({p for t in tasks.values() for p in toolchain_probes(t).values()})
        (self.ctx.state_dir / "logs").mkdir(parents=True, exist_ok=True)
        self._refuse()
        # Each worker sets its event when it leaves. They are waited for, not joined: a Ctrl-C that interrupts
        # Thread.join can leave the thread marked as stopped while it runs (CPython 3.11), and the run would end
        # before the cancelled tasks were recorded.
        left = [threading.Event() for _ in range(self.workers)]
        workers = [threading.Thread(target=self._work, args=(done,), name=f"polybuild-{n}")
                   for n, done in enumerate(left)]
        for worker in workers:
            worker.start()
        try:
            for done in left:  # they stop when nothing is left to start
                while not done.wait(0.25):
                    with self._cond:
                        self.reporter.tick(dict(self._running))
        except BaseException as exc:  # Ctrl-C, SIGTERM, SIGHUP, or the progress stream was closed: stop every child
            self._stop(_why_stopped(exc))
            self.procs.terminate_all(grace=2.0)
            raise
        finally:
            for done in left:
                done.wait()
        if self._error is not None:
            raise self._error
        for tid, task in tasks.items():
            if tid not in self.results:
                self._record(TaskResult(task, "skipped", reason="not started: the build stopped at a failure"))
        return [self.results[i] for i in tasks]

    def _refuse(self) -> None:
        """Refused tasks fail before anything starts and what depends on them is skipped, as after a failure;
        the rest of the plan runs (a refusal is known up front: it is no reason to stop unrelated work)."""
        with self._cond:
            for tid, reason in self.refused.items():
                self._record(TaskResult(self.plan.tasks[tid], "failed", reason=reason))
            for tid in self.refused:  # after recording them all: a refused dependent reports its own refusal
                self._skip_dependents(tid)

    def _work(self, done: threading.Event) -> None:
        try:
            while (task := self._next()) is not None:
                try:
                    result = self._run_task(task)
                except BaseException as exc:  # a bug or bad input rather than a failed task: stop, re-raise in run()
                    self._error = exc
                    why = exc.message if isinstance(exc, PolybuildError) else f"internal error: {exc!r}"
                    result = TaskResult(task, "failed", reason=why)
                self._finish(result)
        except BaseException as exc:  # e.g. the reporter's stream was closed (`| head`): the whole run stops
            self._error = self._error or exc
            self._stop()
            self.procs.terminate_all()
        finally:
            done.set()

    def _stop(self, why: str | None = None) -> None:
        """No task starts from now on; workers waiting for one wake up and leave. `why` is what the lines of the
        tasks it cancels say (by default: another task failed)."""
        with self._cond:
            self._stopping = True
            if why:
                self._stopped_because = why
            self._cond.notify_all()

    def _next(self) -> Task | None:
        """The ready task with the longest critical path, waiting while running ones may release more; None when
        nothing is left to start."""
        with self._cond:
            while not self._ready or self._stopping:
                if self._stopping or not self._running:
                    return None
                self._cond.wait()
            _, tid = heapq.heappop(self._ready)
            self._running[tid] = time.monotonic()
            return self.plan.tasks[tid]

    def _finish(self, result: TaskResult) -> None:
        tid = result.task.id
        stop = False
        with self._cond:
            del self._running[tid]
            self._record(result)
            if result.status in ("built", "cached"):
                self._release(tid)
            elif result.status == "failed" and not self._stopping:
                if self.keep_going and self._error is None:
                    self._skip_dependents(tid)
                else:
                    self._stopping = stop = True
            self._cond.notify_all()
        if stop:
            self.procs.terminate_all()

    def _release(self, tid: str) -> None:
        for dep in self._dependents[tid]:
            self._waiting[dep].discard(tid)
            if not self._waiting[dep]:
                heapq.heappush(self._ready, (-self.plan.tasks[dep].priority, dep))

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
        return self.ctx.state_dir / "logs" / f"{slug(task.id)}.log"

    def _record(self, result: TaskResult) -> None:
        self.results[result.task.id] = result
        if result.status in ("built", "cached"):
            self.ctx.artifacts[result.task.id] = [a.path for a in result.artifacts]
        self.reporter.task_finished(result)

    def _skip_dependents(self, tid: str) -> None:
        stack = list(self._dependents[tid])
        while stack:
            d = stack.pop()
            if d not in self.results:
                self._record(TaskResult(self.plan.tasks[d], "skipped", reason=f"dependency {tid} failed"))
                stack.extend(self._dependents[d])

    def _run_task(self, task: Task) -> TaskResult:
        """Restore the task's outputs from the cache, or run it (reported as started) and cache what it made."""
        ctx = self.ctx
        log_path = self._log_path(task)
        start = time.monotonic()
        result = TaskResult(task, "built")
        try:
            parts = self._key_parts(task)
            base = self._output_base(task)
            cache = ctx.cache if _cacheable(task) else None
            restored = cache.restore(parts.key, task.id, base, log_path, self._unchanged) if cache else None
            if restored is not None:
                result.status = "cached"
                outputs, kept_log = restored
                result.log = log_path if kept_log else None
            else:
                with self._cond:
                    self.reporter.task_started(task)
                outputs, log = self._build(task, base, TaskLog(log_path), result)
                result.log = log_path if log is not None else None
                if outputs is not None and cache:
                    cache.save(parts.key, task.id, base, outputs, log)
            if outputs is not None:
                result.artifacts = [self._artifact(task, base, o) for o in outputs]
                self._remember(task, parts, outputs)
        except Cancelled:
            result.status, result.reason = "cancelled", self._stopped_because
        except OSError as exc:
            result.status, result.reason = "failed", f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")
        finally:
            result.duration = time.monotonic() - start
        return result

    def _key_parts(self, task: Task) -> KeyParts:
        from polybuild.cache.keys import key_parts

        return key_parts(task, self.ctx, {d: self.ctx.outputs[d] for d in sorted(task.deps)})

    def _output_base(self, task: Task) -> Path:
        """Build artifacts go to the dist directory (per variant and platform); task outputs stay in place."""
        if task.action != "build":
            return task.target.dir
        return self.ctx.ws.config.dist_dir / task.dist_subdir(self.ctx.host)

    def _build(self, task: Task, base: Path, log: TaskLog,
               result: TaskResult) -> tuple[list[Output] | None, bytes | None]:
        """Run the builder's steps (builds write into a private staging directory, published on success); the
        outputs (None if a step failed) and the log's content if it was kept."""
        staging = None
        if task.action == "build":
            staging = self.ctx.state_dir / "tmp" / f"{slug(task.id)}-{uuid.uuid4().hex[:8]}"
            (staging / "out").mkdir(parents=True)
        try:
            out = staging / "out" if staging else base
            builder = builders.get(task.builder)
            for step in builder.steps(task, self.ctx, out):
                if not self._run_step(step, task, log):
                    result.status, result.failed_step = "failed", step.display()
                    return None, log.finish(keep=True)
            outputs = self._publish(staging / "out", base) if staging else self._declared_outputs(task, base)
            if staging and not outputs and builder.publishes_artifacts:  # e.g. `[python] interpreter = "/bin/true"`
                log.note(f"[polybuild] every command succeeded, but the {task.builder} build produced no artifact")
                result.status, result.failed_step = "failed", step.display()
                return None, log.finish(keep=True)
            return outputs, log.finish(keep=False)
        except BaseException:  # cancelled, or an OSError: keep what the steps printed
            log.finish(keep=True)
            raise
        finally:
            if staging:
                shutil.rmtree(staging, ignore_errors=True)

    def _remember(self, task: Task, parts: KeyParts, outputs: list[Output]) -> None:
        """Dependents' keys use our output digest; `explain` compares against the parts recorded here."""
        from polybuild.cache.keys import output_digest

        self.ctx.outputs[task.id] = output_digest([(o.path, o.sha256) for o in outputs])
        self.ctx.records.put(task.id, parts.key, self.ctx.outputs[task.id], parts.to_json())
        for lib, digest in parts.libraries.items():
            if self.ctx.records.library_digest(lib) != digest:
                entries = self.ctx.fingerprints.library_entries(lib)
                self.ctx.records.put_library(lib, digest, {p: f"{m} {d}" for p, (m, d) in entries.items()})

    def _artifact(self, task: Task, base: Path, out: Output) -> Artifact:
        return Artifact(task.id, task.target.id, task.variant.name if task.variant else None,
                        task.platform.name if task.platform else None, base / out.path, out.sha256, out.size)

    def _run_step(self, step: Step, task: Task, log: TaskLog) -> bool:
        log.command(step.display())
        if step.action is not None:
            if self.procs.cancelled.is_set():
                raise Cancelled
            try:
                with self._local_slot():
                    step.action()
            except PolybuildError as exc:  # e.g. the helper's one-line error: the log and summary show it
                log.note(str(exc))
                return False
            return True
        code = self._run_remotely(step, task, log) if step.remote is not None else None
        if code is None:
            env = {**self.ctx.env, **{k: str(v) for k, v in task.target.settings.get("env", {}).items()}, **step.env}
            echo = (lambda lines: self._echo(task, lines)) if self.live_output else None
            with self._local_slot():
                code = self.procs.run(step.argv or [], step.cwd or task.target.dir, env, log.file, echo)
        if code != 0:
            log.note(f"\n[polybuild] command exited with status {code}")
        return code == 0

    def _run_remotely(self, step: Step, task: Task, log: TaskLog) -> int | None:
        """The step on the remote executor (its output into the log, and to the reporter with --output-logs full,
        once it is back); None when it could not run there."""
        assert step.remote is not None
        start = log.file.tell()
        code = step.remote(log.file)
        if code is not None and self.live_output:
            log.file.seek(start)
            output = log.file.read()
            log.file.seek(0, 2)
            if output:
                self._echo(task, [line.rstrip("\r") for line in output.decode("utf-8", "replace").splitlines()])
        return code

    @contextlib.contextmanager
    def _local_slot(self) -> Iterator[None]:
        """One of the `jobs` slots for work on this machine (never waited for when there are no remote workers)."""
        while not self._local_slots.acquire(timeout=0.25):
            if self.procs.cancelled.is_set():
                raise Cancelled
        try:
            yield
        finally:
            self._local_slots.release()

    def _echo(self, task: Task, lines: list[str]) -> None:
        """Whole lines a child printed, to the reporter: under the lock, so lines of parallel tasks and the
        reporter's own lines never tear each other."""
        with self._cond:
            self.reporter.task_output(task, lines)

    def _publish(self, out: Path, dest: Path) -> list[Output]:
        """Move each output into the dist directory with a rename, so readers never see a partial file."""
        outputs = []
        for src in sorted(p for p in out.rglob("*") if p.is_file()):
            output = describe(src, out)
            target = dest / output.path
            target.parent.mkdir(parents=True, exist_ok=True)
            move_into_place(src, target)  # durably: a published artifact
            outputs.append(output)
        return outputs

    def _declared_outputs(self, task: Task, base: Path) -> list[Output]:
        patterns = builders.get(task.builder).declared_outputs(task)
        found = {p for pattern in patterns for p in base.glob(pattern) if p.is_file()}
        return [describe(p, base) for p in sorted(found)]


def _why_stopped(exc: BaseException) -> str:
    """The reason a cancelled task's line gives when the run itself was stopped (not by a failed task)."""
    from polybuild.support.signals import Terminated

    if isinstance(exc, Terminated):
        return f"terminated by {exc}"
    return "interrupted" if isinstance(exc, KeyboardInterrupt) else "the run stopped"


def _cacheable(task: Task) -> bool:
    return task.spec is None or task.spec["cache"]
