"""Reattaching to a run whose orchestrator died while its machines and trainers lived on.

Why: trainers run detached (``Transport.start``) and the journal names every machine (with
its acquire token) and every started job (pid, job directory, log), so a new orchestrator can
pick the run up instead of throwing the work away (``down``) or starting it again.

Rules, used by the engine when it resumes a run (``attach RUN``, ``run FILE --resume RUN``):

  1. A machine row the journal still holds (requested or running) is reused with its token:
     acquiring again with the same token finds the same machine (EC2: the token tag and
     ``ClientToken``; ssh and local hosts are the same host), so no second machine is made
     and spend keeps counting from the first acquire.
  2. A task the journal shows ``running`` with a job is adopted, not restarted: its job is
     followed where it is (log streamed from the start, results fetched when it ends).
  3. An adopted job that is gone (not running and no exit code: the machine was replaced,
     or the job was killed) is really gone: its task goes back to the queue and runs again.
  4. A ``setup:`` command left running by the dead orchestrator is stopped before any task
     runs on that machine, so the setup gate starts it once more, alone.
  5. A machine with adopted tasks is not synced again: its code is there already, and
     mirroring the workdir would delete what running tasks wrote into it.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.errors import OrchestrateError
from infra.transport.base import Job, Transport
from orchestrator.state import MACHINE_HELD, Journal, MachineRow, TaskStatus

HELD = MACHINE_HELD


@dataclass(frozen=True)
class Adopted:
    """A task whose trainer a dead orchestrator started (rule 2)."""

    task_id: str
    machine: str  # the machine class / host name it runs on
    job: Job
    started_at: float | None


def held_machine(journal: Journal, run_id: str, name: str) -> MachineRow | None:
    """Rule 1: the journal's live row for machine ``name`` of ``run_id``, if any."""
    rows = [m for m in journal.machines(run_id) if m.name == name and m.status in HELD]
    return rows[-1] if rows else None


def adoptable(journal: Journal, run_id: str) -> dict[str, Adopted]:
    """Rule 2: every task of ``run_id`` the journal shows running with a job, by task id."""
    found: dict[str, Adopted] = {}
    for t in journal.tasks(run_id):
        ref = t.job_ref
        if t.status != TaskStatus.RUNNING or ref is None:
            continue
        found[t.task_id] = Adopted(t.task_id, t.machine, ref.job(t.task_id), t.started_at)
    return found


def stop_stale_setups(
    journal: Journal, run_id: str, machine: str, transport: Transport
) -> list[int]:
    """Rule 4: stop ``setup:`` commands the journal shows on ``machine`` that still run;
    returns their process groups."""
    stopped: list[int] = []
    for ref in journal.setup_jobs(run_id):
        if ref.machine != machine:
            continue
        job = ref.job("setup")
        try:
            if transport.poll(job).running:
                transport.stop(job, grace_s=5.0)
                stopped.append(job.pid)
        except OrchestrateError:
            continue  # its machine is not the one it ran on any more: nothing to stop
    return stopped
