"""Keeping a task's work when its machine goes away: checkpoints that come back while it runs,
the checkpoint a retry starts from, and the replacement machine a recovery may launch.

Rules, used by the engine (``orchestrator.engine_tasks`` and ``orchestrator.engine_machines``):

  1. While a task runs, its checkpoint folder (``ORCHESTRATE_CHECKPOINT_DIR``: the MNIST
     trainer's ``--checkpoint-dir``, or any folder a user's script writes there) is pulled
     back every ``checkpoint_every`` and at once when its log shows a notice line from the
     task wrapper (``[orchestrate] notice:`` — a spot interruption or a rebalance
     recommendation). Only changed files move (``Transport.get_tree``). With an off-machine
     store (``checkpoints: s3://...``) what came back is pushed there too, so a lost laptop
     does not lose it either.
  2. An attempt that ends ``preempted`` (the wrapper's ``preempted.json`` came back) or
     ``lost`` (the machine stopped answering) does not fail the task: it is queued again,
     up to ``recovery.retries`` times, and its machine is replaced (``recovery.capacity``:
     the same market as planned, ``on-demand``, or ``fail`` for no replacement).
  3. A retry starts from the newest checkpoint that came back: it is put on the new machine
     before the trainer starts, which then resumes after its last saved epoch.
  4. A replacement machine is refused when its forecast (spend so far + its price x the
     queued work's estimate) would pass ``budget.max_usd``: the run ends ``capped``, every
     machine released. Its own deadline (layer 3) is the sooner of the plan's and what the
     budget left buys.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from infra.errors import TransportError
from infra.provider import LaunchRequest, Provider
from infra.tags import machine_tags
from infra.transport.base import Transport
from orchestrator.checkpoint_store import CheckpointStore
from orchestrator.cost import instance_deadline

NOTICE_PREFIX = "[orchestrate] notice:"  # what the task wrapper prints on a spot/rebalance notice
PREEMPTED_FILE = "preempted.json"  # the wrapper's record that it acted on an interruption notice
MARKER_FILES = (PREEMPTED_FILE, "rebalance.json", "preempt-now")  # one attempt's, not the next's


@dataclass
class CheckpointPuller:
    """Rule 1 for one running attempt: ``tick`` after every poll with the new log text."""

    transport: Transport
    remote_dir: str
    local_dir: Path
    task_id: str
    every_s: float
    store: CheckpointStore | None = None
    last_pull: float = 0.0
    pulls: int = 0

    def __post_init__(self) -> None:
        self.last_pull = time.monotonic()

    def tick(self, log_chunk: str) -> None:
        """Pull back when the interval has passed or the wrapper printed a notice."""
        due = time.monotonic() - self.last_pull >= self.every_s
        if due or NOTICE_PREFIX in log_chunk:
            self.pull()

    def pull(self) -> int:
        """Bring the checkpoint folder back now (and to the store); files that moved.

        A machine that stopped answering is not an error here: the next poll says so, and
        the engine then treats the attempt as lost.
        """
        self.last_pull = time.monotonic()
        try:
            moved = self.transport.get_tree(self.remote_dir, self.local_dir).files_sent
        except TransportError:
            return 0
        self.pulls += 1
        if moved and self.store is not None:
            self.store.push(self.task_id, self.local_dir)
        return moved


def restore_checkpoint(
    transport: Transport,
    local_dir: Path,
    remote_dir: str,
    *,
    task_id: str,
    store: CheckpointStore | None = None,
) -> int:
    """Rule 3: put the newest checkpoint that came back onto the machine; files put."""
    if store is not None and not _has_files(local_dir):
        store.pull(task_id, local_dir)  # this laptop lost it (attach from elsewhere)
    if not _has_files(local_dir):
        return 0
    transport.run(["mkdir", "-p", remote_dir])
    return transport.put_tree(local_dir, remote_dir).files_sent


def _has_files(folder: Path) -> bool:
    return folder.is_dir() and any(p.is_file() for p in folder.rglob("*"))


def set_aside_markers(task_dir: Path, attempt: int) -> None:
    """Keep one attempt's notice files under its number, so the next attempt's fetch cannot be
    mistaken for another interruption (fetching never deletes local files)."""
    for name in MARKER_FILES:
        marker = task_dir / name
        if marker.exists():
            marker.replace(task_dir / f"attempt-{attempt}.{name}")


def notice_text(path: Path) -> str:
    """How an interruption notice reads in the task's status and the report."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return "interruption notice"
    if not isinstance(record, dict):
        return "interruption notice"
    if record.get("source") == "file":
        return "drained (preempt-now)"
    notice = record.get("notice")
    detail = ""
    if isinstance(notice, dict) and notice.get("action"):
        detail = f" ({notice['action']} at {notice.get('time', '?')})"
    return f"spot interruption notice{detail}"


def replacement_launch(
    provider: Provider,
    launch: LaunchRequest,
    *,
    capacity: str,
    now: datetime,
    cap_usd: float | None,
    spent_usd: float,
) -> LaunchRequest:
    """Rules 2 and 4: the launch for a machine that replaces a lost one.

    ``on-demand`` asks for the same types without spot; the deadline is the sooner of the
    plan's (it is absolute) and what the budget left buys at the replacement's price.
    """
    request = launch.request
    if capacity == "on-demand" and request.spot != "no":
        request = replace(request, spot="no")
    if request.deadline is not None:
        hours_left = max((request.deadline - now).total_seconds() / 3600, 0.0)
        deadline = instance_deadline(
            now=now,
            max_hours=hours_left,
            cap_usd=cap_usd,
            spent_usd=spent_usd,
            hourly_usd=launch.hourly_usd,
        )
        request = replace(
            request, deadline=deadline, tags=machine_tags(request.run_id, request.name, deadline)
        )
    return provider.prepare(request) if request != launch.request else launch


def recovery_refusal(
    *, cap_usd: float | None, spent_usd: float, hourly_usd: float, hours: float, name: str
) -> str | None:
    """Rule 4: why a replacement would break the budget, or None when it fits."""
    if cap_usd is None:
        return None
    forecast = spent_usd + hourly_usd * hours
    if forecast <= cap_usd:
        return None
    return (
        f"recovering {name} would take spend to ${forecast:.4f} "
        f"(${spent_usd:.4f} spent + ${hourly_usd:.4f}/h x {hours:.3f} h of queued work), "
        f"over the cap ${cap_usd:.2f}"
    )
