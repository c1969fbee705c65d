"""``orchestrate down``: finish a run from the journal alone (after a crash, or on request).

Stops trainers still running (through each machine's transport), releases every machine the
journal says we hold, removes what the run made besides machines, and marks the run. Safe to
repeat: every step is idempotent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra.errors import OrchestrateError
from infra.provider import MachineRequest, Provider, TearsDownRuns
from infra.transport.base import Job
from orchestrator.state import Journal, RunRow

ProviderForRun = Callable[[RunRow], Provider | None]


def down_run(journal: Journal, run_id: str, *, provider_for: ProviderForRun) -> dict[str, Any]:
    """Stop, release and tear down ``run_id``; returns what was done, for the CLI."""
    actions: list[str] = []
    run = journal.run(run_id)
    assert run is not None
    provider = provider_for(run)
    for task in journal.tasks(run_id):
        if task.status != "running" or not task.job:
            continue
        info = json.loads(task.job)
        job = Job(task.task_id, int(info["pid"]), info["job_dir"], info["log"])
        if str(info.get("machine_id", "")).startswith("local:"):
            from infra.transport.local import LocalTransport

            LocalTransport().stop(job, grace_s=5.0)
            actions.append(f"stopped task {task.task_id} (process group {job.pid})")
        elif run.provider == "ssh" and provider is not None:
            actions.append(_stop_on_host(provider, run_id, task.machine, job))
        # On aws the trainer goes with its instance, terminated below.
        journal.task_ended(
            run_id,
            task.task_id,
            status="stopped",
            exit_code=None,
            wall_s=None,
            detail="stopped by `orchestrate down`",
        )
    receipt: str | None = None
    for m in journal.machines(run_id):
        if m.status in ("released", "failed"):
            continue
        try:
            if provider is not None and m.machine_id:
                provider.release(m.machine_id)
            journal.machine_status(m.token, "released", "released by `orchestrate down`")
            actions.append(f"released machine {m.name} ({m.machine_id or 'never acquired'})")
        except OrchestrateError as exc:
            actions.append(f"could not release {m.name}: {exc}")
    if isinstance(provider, TearsDownRuns):
        result = provider.teardown_run(run_id)
        receipt = result.render()
        actions.append(receipt)
        run_dir = Path(run.runs_dir) / run_id
        if run_dir.is_dir():
            (run_dir / "teardown.txt").write_text(receipt + "\n")
        if not getattr(result, "ok", True):
            raise OrchestrateError(f"teardown of {run_id} incomplete:\n{receipt}")
    status = "down" if run.status in ("running", "planned") else run.status
    journal.set_run_status(run_id, status, "orchestrate down")
    return {"run": run_id, "status": status, "actions": actions, "receipt": receipt}


def _stop_on_host(provider: Provider, run_id: str, host: str, job: Job) -> str:
    """Reach an owned host again and stop a detached trainer the crashed run left there."""
    try:
        launch = provider.prepare(MachineRequest(run_id=run_id, name=host))
        machine = provider.acquire(launch, token=f"{run_id}-down")
        transport = provider.connect(machine)
        try:
            transport.stop(job, grace_s=5.0)
        finally:
            transport.close()
    except OrchestrateError as exc:
        return f"could not stop task {job.id} on {host}: {str(exc).splitlines()[0]}"
    return f"stopped task {job.id} on {host} (process group {job.pid})"
