"""Attempts: each try of a task on one machine, kept in the journal beside the task's row.

A task whose machine goes away (a spot interruption, a vanished host) ends that attempt
``preempted`` or ``lost`` and runs again on new capacity (issue 16). The task row keeps how the
task ended; an attempt row keeps each try, with the machine row (``machine_token``) it ran on,
so the report and the ledger can say what each try cost and what interruptions cost in all.

``JournalAttempts`` is mixed into ``orchestrator.state.Journal``: it shares the journal's one
connection and lock, and ``ATTEMPTS_SCHEMA`` is created with the journal's own tables, so a
journal written before attempts existed gains the table when it is opened.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from orchestrator.status import TaskStatus

ATTEMPTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS attempts (
    run_id TEXT NOT NULL, task_id TEXT NOT NULL, n INTEGER NOT NULL, machine TEXT NOT NULL,
    machine_token INTEGER NOT NULL, status TEXT NOT NULL, started_at REAL NOT NULL,
    ended_at REAL, wall_s REAL, detail TEXT, PRIMARY KEY (run_id, task_id, n)
);
"""

# How an attempt ends when its machine went away: the work it did since its last checkpoint is
# lost, and what it cost is the price of the interruption.
INTERRUPTED = (TaskStatus.PREEMPTED, TaskStatus.LOST)


@dataclass(frozen=True)
class AttemptRow:
    run_id: str
    task_id: str
    n: int  # 1-based, per task
    machine: str  # the plan's machine name
    machine_token: int  # the ``machines`` row it ran on (instance id, type, price)
    status: str  # ``running`` until it ends, then a TaskStatus
    started_at: float
    ended_at: float | None
    wall_s: float | None
    detail: str | None

    @property
    def interrupted(self) -> bool:
        """Whether its machine went away under it (the attempt's work was redone)."""
        return self.status in INTERRUPTED


class JournalAttempts:
    """The ``attempts`` table's verbs, for ``Journal`` (which supplies ``_tx`` and ``_now``)."""

    _now: Callable[[], float]
    _tx: Callable[[], AbstractContextManager[sqlite3.Connection]]

    def attempt_started(
        self, run_id: str, task_id: str, *, machine: str, machine_token: int
    ) -> int:
        """Journal a new try of a task on a machine and return its number (1, 2, ...), so the
        engine can end that very attempt and the report can tell the tries apart."""
        with self._tx() as db:
            row = db.execute(
                "INSERT INTO attempts (run_id, task_id, n, machine, machine_token, status, "
                "started_at) SELECT ?, ?, COALESCE(MAX(n), 0) + 1, ?, ?, ?, ? FROM attempts "
                "WHERE run_id=? AND task_id=? RETURNING n",
                (
                    run_id,
                    task_id,
                    machine,
                    machine_token,
                    TaskStatus.RUNNING,
                    self._now(),
                    run_id,
                    task_id,
                ),
            ).fetchone()
        return int(row[0])

    def attempt_ended(
        self,
        run_id: str,
        task_id: str,
        attempt: int,
        *,
        status: str,
        wall_s: float | None,
        detail: str | None,
    ) -> None:
        """Record how one try ended (done, preempted, lost, failed...), its wall time and why:
        the attempt's cost is its machine's price for that time."""
        with self._tx() as db:
            db.execute(
                "UPDATE attempts SET status=?, ended_at=?, wall_s=?, detail=? "
                "WHERE run_id=? AND task_id=? AND n=?",
                (status, self._now(), wall_s, detail, run_id, task_id, attempt),
            )

    def attempts(self, run_id: str) -> list[AttemptRow]:
        """Every try of every task of the run, in the order they started."""
        with self._tx() as db:
            rows = db.execute(
                "SELECT * FROM attempts WHERE run_id=? ORDER BY rowid", (run_id,)
            ).fetchall()
        return [AttemptRow(**dict(r)) for r in rows]
