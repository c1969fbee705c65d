"""``orchestrate down``: finish a run from the journal alone (after a crash, or on request).

Settles every task the journal shows with a job (fetching what finished trainers left, stopping
and fetching what still runs, stopping trainers orphaned by a host outage), releases every
machine the journal says we hold, removes what the run made besides machines, and marks the
run. Safe to repeat: every step is idempotent.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from infra.errors import OrchestrateError
from infra.provider import Provider
from infra.transport.base import Transport
from orchestrator.state import (
    MACHINE_GONE,
    RUN_ACTIVE,
    Journal,
    MachineStatus,
    RunRow,
    RunStatus,
    TaskRow,
    TaskStatus,
)

ProviderForRun = Callable[[RunRow], Provider]


def down_run(journal: Journal, run_id: str, *, provider_for: ProviderForRun) -> dict[str, Any]:
    """Stop, release and tear down ``run_id``; returns what was done, for the CLI."""
    actions: list[str] = []
    run = journal.run(run_id)
    assert run is not None
    provider = provider_for(run)
    reach = _Reach(run, provider)
    try:
        for task in journal.tasks(run_id):
            if task.job and task.status in (TaskStatus.RUNNING, TaskStatus.FAILED):
                actions.extend(_finish_task(journal, run, task, reach))
        actions.extend(_stop_setups(journal, run_id, reach))
    finally:
        reach.close()
    receipt: str | None = None
    for m in journal.machines(run_id):
        if m.status in MACHINE_GONE:
            continue
        try:
            if m.machine_id:
                provider.release(m.machine_id)
            journal.machine_status(
                m.token, MachineStatus.RELEASED, "released by `orchestrate down`"
            )
            actions.append(f"released machine {m.name} ({m.machine_id or 'never acquired'})")
        except OrchestrateError as exc:
            actions.append(f"could not release {m.name}: {exc}")
    result = provider.teardown_run(run_id)
    if result is not None:  # the run made more than machines (AWS: key pair, SG)
        receipt = result.render()
        actions.append(receipt)
        run_dir = Path(run.runs_dir) / run_id
        if run_dir.is_dir():
            (run_dir / "teardown.txt").write_text(receipt + "\n")
        if not result.ok:
            raise OrchestrateError(f"teardown of {run_id} incomplete:\n{receipt}")
    status = RunStatus.DOWN if run.status in RUN_ACTIVE else run.status
    journal.set_run_status(run_id, status, "orchestrate down")
    return {"run": run_id, "status": status, "actions": actions, "receipt": receipt}


class _Reach:
    """One transport per machine for the whole ``down`` (and one failed attempt per machine:
    an unreachable host costs its connect deadline once, not once per task)."""

    def __init__(self, run: RunRow, provider: Provider) -> None:
        self.run, self.provider = run, provider
        self._open: dict[str, Transport | None] = {}
        self.errors: dict[str, str] = {}

    def get(self, machine: str) -> Transport | None:
        """A transport to ``machine``, or None where its jobs end with it (an EC2 instance:
        releasing it stops them)."""
        if machine in self._open or machine in self.errors:
            return self._open.get(machine)
        transport: Transport | None = None
        try:
            transport = self.provider.reconnect(self.run.id, machine)
        except OrchestrateError as exc:
            self.errors[machine] = _line(exc)
        self._open[machine] = transport
        return transport

    def close(self) -> None:
        """Close every transport opened for this ``down``."""
        for transport in self._open.values():
            if transport is not None:
                transport.close()


def _finish_task(journal: Journal, run: RunRow, task: TaskRow, reach: _Reach) -> list[str]:
    """Settle one task the journal still shows with a job, on a machine we can reach.

    A ``running`` task whose trainer has finished (the orchestrator died while fetching) gets
    its results fetched and its real outcome; one still running is stopped, then what it
    wrote is fetched. A ``failed`` task whose trainer still runs (orphaned by a host outage)
    is stopped. Without a reachable machine a running task is marked ``stopped``.
    """
    ref = task.job_ref
    assert ref is not None  # only tasks with a job are settled
    job = ref.job(task.task_id)
    out = f"{PurePosixPath(job.log).parent.parent}/out/{task.task_id}"
    local = Path(run.runs_dir) / run.id / task.task_id
    actions: list[str] = []
    status, code, detail = TaskStatus.STOPPED, None, "stopped by `orchestrate down`"
    transport = reach.get(task.machine)
    if task.machine in reach.errors:
        actions.append(
            f"could not reach {task.machine} for {task.task_id}: {reach.errors[task.machine]}"
        )
    if transport is not None:
        try:
            seen = transport.poll(job)
            if seen.running:
                transport.stop(job, grace_s=5.0)
                on = "" if ref.machine_id.startswith("local:") else f" on {task.machine}"
                actions.append(f"stopped task {task.task_id}{on} (process group {job.pid})")
            elif task.status == TaskStatus.RUNNING:
                code = seen.exit_code
                status = TaskStatus.DONE if code == 0 else TaskStatus.FAILED
                detail = "finished; results fetched by `orchestrate down`"
            if task.status == TaskStatus.RUNNING or seen.running:
                transport.get_tree(out, local)
                actions.append(f"fetched {task.task_id} ({status})")
        except OrchestrateError as exc:
            actions.append(f"could not settle {task.task_id}: {_line(exc)}")
    if task.status == TaskStatus.RUNNING:
        journal.task_ended(
            run.id, task.task_id, status=status, exit_code=code, wall_s=None, detail=detail
        )
    return actions


def _stop_setups(journal: Journal, run_id: str, reach: _Reach) -> list[str]:
    """Stop ``setup:`` commands still running (the engine journals each as a "setup" event)."""
    actions: list[str] = []
    for ref in journal.setup_jobs(run_id):
        transport = reach.get(ref.machine)
        if transport is None:
            continue
        job = ref.job("setup")
        try:
            if transport.poll(job).running:
                transport.stop(job, grace_s=5.0)
                actions.append(f"stopped a setup command on {ref.machine} ({job.pid})")
        except OrchestrateError as exc:
            actions.append(f"could not stop a setup command: {_line(exc)}")
    return actions


def _line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [""])[0]
