"""The steps of one task on one machine, for the engine: start it (after its ``setup:``),
or adopt one a dead orchestrator started, then follow it, fetch what it wrote and record how
it ended.

``Engine`` (``orchestrator.engine``) keeps the *when* (queues, slots, machines, stopping); this
mixin the *how* of a task, over ``orchestrator.task_run``'s pieces. Split to keep each module
under the 400-line house rule.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from infra.errors import ConnectError
from infra.provider import Machine
from infra.transport.base import Job, Transport
from orchestrator.engine_config import EngineConfig
from orchestrator.events import Reporter, TaskEvent
from orchestrator.gang import Gang
from orchestrator.paths import RunPaths, Workspace
from orchestrator.plan import Plan, PlannedTask
from orchestrator.reattach import Adopted
from orchestrator.recovery import (
    MARKER_FILES,
    PREEMPTED_FILE,
    CheckpointPuller,
    notice_text,
    restore_checkpoint,
    set_aside_markers,
)
from orchestrator.state import JobRef, Journal, TaskStatus
from orchestrator.task_run import (
    SetupGate,
    collect_outputs,
    follow,
    ready_wait,
    start_prelude,
    task_command,
    task_outcome,
    wrote_end_ok,
)


class TaskSteps:
    """Task steps over the engine's state (declared here, set by ``Engine.__init__``)."""

    journal: Journal
    reporter: Reporter
    config: EngineConfig
    stop_reason: str | None
    _lock: threading.Lock
    _queue: list[PlannedTask]
    _setup: SetupGate
    _failed: bool
    _lost: dict[str, str]
    _tokens: dict[str, int]
    _interrupted: dict[str, int]

    def _fail(self, run_id: str, task_id: str, reason: str, trace: str = "") -> None:
        raise NotImplementedError

    @property
    def stopping(self) -> bool:
        """Whether a stop was asked for (the engine's)."""
        raise NotImplementedError

    def _run_task(
        self,
        plan: Plan,
        pt: PlannedTask,
        machine: Machine,
        transport: Transport,
        ws: Workspace,
        paths: RunPaths,
        gpu: int | None,
        gang: tuple[Gang, dict[str, str]] | None = None,
    ) -> TaskStatus:
        """Start the task (after its setup), follow it, fetch and record it; with a ``gang``
        this is its worker 0, given the gang's variables and stopped when another fails."""
        run_id, task = plan.run_id, pt.task
        out, log = ws.out(task.id), ws.log(task.id)
        command = task_command(
            task,
            machine,
            ws,
            run_id=run_id,
            data_dir=self.config.data_dir,
            gpu=gpu,
            measured=(self.config.trainers_src / "measure.py").exists(),
            metadata_url=self.config.imds_url,
        )
        command.env.update(self.config.code_env)
        command.env.update(gang[1] if gang else {})
        # Run by the job itself before its command (one process start or round trip less).
        prelude = start_prelude(
            out,
            # A retry on the same machine must not find the last attempt's notice files.
            stale=[f"{out}/{name}" for name in MARKER_FILES],
            started=f"{log}.started",  # outputs newer than this belong to this task
        )
        if wait := ready_wait(machine, task.framework or None):  # a staged setup's stage
            prelude = f"{wait} && {prelude}"
        if task.setup:  # journalled like a task's job, so `down` can stop it after a crash
            self._setup.run_once(
                machine,
                transport,
                ws,
                task.setup,
                should_stop=lambda: self.stopping,
                on_start=lambda job: self.journal.setup_started(run_id, JobRef.of(job, machine)),
                grace_s=self.config.stop_grace_s,
            )
        paths.task_dir(task.id).mkdir(parents=True, exist_ok=True)
        if task.id in self._interrupted:  # a retry resumes from what came back (recovery rule 3)
            restore_checkpoint(
                transport,
                paths.checkpoints(task.id),
                ws.checkpoints(task.id),
                task_id=task.id,
                store=self.config.checkpoint_store,
            )
        t0 = time.monotonic()
        job = transport.start(
            command.argv, env=command.env, log=log, cwd=command.cwd, prelude=prelude
        )
        self.journal.task_started(run_id, task.id, JobRef.of(job, machine), machine=machine.name)
        attempt = self.journal.attempt_started(
            run_id, task.id, machine=machine.name, machine_token=self._tokens.get(machine.name, 0)
        )
        if gang:  # a resume stops a gang's every worker and runs it again (orchestrator.gang)
            self.journal.worker_started(run_id, JobRef.of(job, machine))
        self.reporter.event(TaskEvent(task.id, TaskStatus.RUNNING, machine.name))
        also = (lambda: gang[0].failed) if gang else None
        return self._see_through(
            plan, pt, transport, ws, paths, job, t0, also_stop=also, attempt=(machine.name, attempt)
        )

    def _adopt_task(
        self,
        plan: Plan,
        pt: PlannedTask,
        held: Adopted,
        machine: Machine,
        transport: Transport,
        ws: Workspace,
        paths: RunPaths,
    ) -> None:
        """Follow a trainer a dead orchestrator started (reattach rules 2 and 3)."""
        task = pt.task
        first = transport.poll(held.job)
        if first.finished and first.exit_code is None:  # gone: it runs again
            with self._lock:
                self._queue.append(pt)
            self.reporter.event(
                TaskEvent(task.id, TaskStatus.PENDING, "its trainer was gone; runs again")
            )
            return
        paths.task_dir(task.id).mkdir(parents=True, exist_ok=True)
        paths.task_log(task.id).unlink(missing_ok=True)  # streamed again, whole
        ran_s = time.time() - held.started_at if held.started_at else 0.0
        self.reporter.event(TaskEvent(task.id, TaskStatus.RUNNING, f"{machine.name} (reattached)"))
        self._see_through(plan, pt, transport, ws, paths, held.job, time.monotonic() - ran_s)

    def _see_through(
        self,
        plan: Plan,
        pt: PlannedTask,
        transport: Transport,
        ws: Workspace,
        paths: RunPaths,
        job: Job,
        t0: float,
        also_stop: Callable[[], bool] | None = None,
        attempt: tuple[str, int] | None = None,
    ) -> TaskStatus:
        """Follow a started job to its end, fetch what it wrote, and record its outcome; with
        ``attempt`` (its machine's name and the attempt's number) an end caused by the machine
        going away is an interrupted attempt, not a failure (``orchestrator.recovery``)."""
        run_id, task = plan.run_id, pt.task
        out, log = ws.out(task.id), ws.log(task.id)
        started = f"{log}.started"  # outputs newer than this belong to this task
        local_dir = paths.task_dir(task.id)
        puller = CheckpointPuller(
            transport,
            ws.checkpoints(task.id),
            paths.checkpoints(task.id),
            task.id,
            self.config.checkpoint_every_s,
            self.config.checkpoint_store,
        )
        try:
            exit_code, stopped, timed_out = follow(
                transport,
                job,
                paths.task_log(task.id),
                task.id,
                self.reporter,
                should_stop=lambda: self.stopping or (also_stop is not None and also_stop()),
                timeout_s=task.timeout_s or self.config.task_timeout_s,
                grace_s=self.config.stop_grace_s,
                poll_max_s=self.config.poll_max_s,
                tick=puller.tick if attempt is not None else None,
            )
            wall = time.monotonic() - t0
            if task.outputs:
                script = collect_outputs(ws.work, out, task.outputs, newer_than=started)
                transport.run(["sh", "-c", script], check=False)
            transport.get_tree(out, local_dir)
        except ConnectError as exc:  # the machine, not the task: a refused file stays a failure
            if attempt is None:
                raise
            why = f"{attempt[0]} stopped answering ({str(exc).splitlines()[0][:200]})"
            return self._interrupted_attempt(
                plan, pt, paths, TaskStatus.LOST, why, time.monotonic() - t0, attempt
            )
        notice = paths.task_dir(task.id) / PREEMPTED_FILE
        if (
            attempt is not None
            and notice.exists()
            and not stopped
            and not wrote_end_ok(paths.timing(task.id))
        ):
            puller.pull()  # the checkpoint it wrote on the notice
            why = f"{attempt[0]}: {notice_text(notice)}"
            return self._interrupted_attempt(
                plan, pt, paths, TaskStatus.PREEMPTED, why, wall, attempt
            )
        status, detail = task_outcome(
            exit_code=exit_code,
            stopped=stopped,
            timed_out=timed_out,
            timing=paths.timing(task.id),
            log=paths.task_log(task.id),
            stop_reason=self.stop_reason,
            timeout_s=task.timeout_s or self.config.task_timeout_s,
        )
        if status in (TaskStatus.FAILED, TaskStatus.TIMEOUT):
            self._failed = True
        self.journal.task_ended(
            run_id, task.id, status=status, exit_code=exit_code, wall_s=wall, detail=detail
        )
        if attempt is not None:
            self.journal.attempt_ended(
                run_id, task.id, attempt[1], status=status, wall_s=wall, detail=detail
            )
        self.reporter.event(TaskEvent(task.id, status, detail or f"{wall:.1f}s"))
        return TaskStatus(status)

    def _interrupted_attempt(
        self,
        plan: Plan,
        pt: PlannedTask,
        paths: RunPaths,
        status: TaskStatus,
        why: str,
        wall: float,
        attempt: tuple[str, int],
    ) -> TaskStatus:
        """Recovery rule 2: the attempt ends ``preempted``/``lost``, its machine is marked
        for replacement, and the task is queued again unless retries or the policy say no."""
        run_id, task = plan.run_id, pt.task
        machine, n = attempt
        set_aside_markers(paths.task_dir(task.id), n)
        with self._lock:
            self._lost.setdefault(machine, why)
            tries = self._interrupted[task.id] = self._interrupted.get(task.id, 0) + 1
        self.journal.attempt_ended(run_id, task.id, n, status=status, wall_s=wall, detail=why)
        refusal = (
            "a nodes: N task is not recovered"
            if task.nodes > 1
            else "recovery.capacity is fail"
            if self.config.recovery_capacity == "fail"
            else f"recovery.retries ({self.config.retries}) spent"
            if tries > self.config.retries
            else "the run is stopping"
            if self.stopping
            else None
        )
        if refusal is not None:
            self._fail(run_id, task.id, f"{why}; {refusal}")
            return TaskStatus.FAILED
        self.journal.task_ended(
            run_id, task.id, status=status, exit_code=None, wall_s=wall, detail=why
        )
        with self._lock:
            self._queue.insert(0, pt)
        self.reporter.event(
            TaskEvent(task.id, status, f"{why}; attempt {n + 1} resumes from its checkpoint")
        )
        return status
