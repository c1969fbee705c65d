"""The journal: one SQLite file that remembers every run, machine and task.

"Journal before act": a machine row is written before the provider is asked for it and
confirmed after, so a crash at any point leaves a record that ``down``/``gc`` can finish.
WAL mode lets ``status``/``logs -f`` read while a run writes.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.attempts import ATTEMPTS_SCHEMA, AttemptRow, JournalAttempts
from orchestrator.errors import UnusableDir
from orchestrator.job_ref import JobRef
from orchestrator.paths import usable_dir
from orchestrator.status import (
    MACHINE_GONE,
    MACHINE_HELD,
    RUN_ACTIVE,
    TASK_DONE,
    MachineStatus,
    RunStatus,
    TaskStatus,
)

# The statuses and JobRef are read with the rows, so they are importable from here too.
__all__ = [
    "MACHINE_GONE",
    "MACHINE_HELD",
    "RUN_ACTIVE",
    "TASK_DONE",
    "AttemptRow",
    "JobRef",
    "Journal",
    "MachineRow",
    "MachineStatus",
    "RunRow",
    "RunStatus",
    "TaskRow",
    "TaskStatus",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, spec_path TEXT NOT NULL, provider TEXT NOT NULL,
    runs_dir TEXT NOT NULL, status TEXT NOT NULL, created_at REAL NOT NULL, ended_at REAL,
    detail TEXT, forecast_usd REAL, schedule TEXT
);
CREATE TABLE IF NOT EXISTS schedules (
    name TEXT PRIMARY KEY, spec_path TEXT NOT NULL, cron TEXT NOT NULL,
    budget_month_usd REAL, created_at REAL NOT NULL, last_fire REAL, runs_dir TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS schedule_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, schedule TEXT NOT NULL, t REAL NOT NULL,
    fire_time REAL NOT NULL, outcome TEXT NOT NULL, run_id TEXT, reason TEXT
);
CREATE TABLE IF NOT EXISTS machines (
    token INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, name TEXT NOT NULL,
    provider TEXT NOT NULL, machine_id TEXT, instance_type TEXT, hourly_usd REAL DEFAULT 0,
    status TEXT NOT NULL, requested_at REAL NOT NULL, acquired_at REAL, released_at REAL,
    detail TEXT, spend_usd REAL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS tasks (
    run_id TEXT NOT NULL, task_id TEXT NOT NULL, machine TEXT NOT NULL, trainer TEXT NOT NULL,
    device TEXT NOT NULL, params TEXT NOT NULL, status TEXT NOT NULL, exit_code INTEGER,
    started_at REAL, ended_at REAL, wall_s REAL, detail TEXT, job TEXT,
    PRIMARY KEY (run_id, task_id)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, t REAL NOT NULL,
    kind TEXT NOT NULL, payload TEXT NOT NULL
);
"""

# Columns added after a table first shipped: journals written by older versions gain them on
# open (SQLite's ALTER TABLE ADD COLUMN), so a state dir outlives upgrades.
_ADDED_COLUMNS = (
    ("runs", "forecast_usd", "REAL"),
    ("runs", "schedule", "TEXT"),
    ("runs", "provider_config", "TEXT"),  # infra.registry's JSON: `down` needs no file
    ("machines", "spend_usd", "REAL DEFAULT 0"),
)


@dataclass(frozen=True)
class RunRow:
    id: str
    name: str
    spec_path: str
    provider: str
    runs_dir: str
    status: str
    created_at: float
    ended_at: float | None
    detail: str | None
    forecast_usd: float | None = None
    schedule: str | None = None
    provider_config: str | None = None  # infra.registry.config_to_json; None before it was kept


@dataclass(frozen=True)
class MachineRow:
    token: int
    run_id: str
    name: str
    provider: str
    machine_id: str | None
    instance_type: str | None
    hourly_usd: float
    status: str
    requested_at: float
    acquired_at: float | None
    released_at: float | None
    detail: str | None
    spend_usd: float


@dataclass(frozen=True)
class TaskRow:
    run_id: str
    task_id: str
    machine: str
    trainer: str
    device: str
    params: str
    status: str
    exit_code: int | None
    started_at: float | None
    ended_at: float | None
    wall_s: float | None
    detail: str | None
    job: str | None  # JobRef JSON

    @property
    def job_ref(self) -> JobRef | None:
        """The task's detached job, once it started."""
        return JobRef.from_json(self.job) if self.job else None


class Journal(JournalAttempts):
    """Thread-safe access to the state database (one connection, one lock; attempts mixed in)."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._now = clock  # injected so spend and deadlines can be tested without waiting
        # The journal names hosts, keys and commands: 0600 in a 0700 directory. SQLite gives
        # the -wal and -shm files the database file's permissions.
        usable_dir(self.path.parent, "state directory", private=True)
        self._lock = threading.Lock()
        try:
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            os.chmod(self.path, 0o600)  # journals made by older versions, too
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL never corrupts the file; a power cut may drop the last commits.
            # FULL would fsync every state change (~3 per task).
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA + ATTEMPTS_SCHEMA)
            self._migrate()
        except (OSError, sqlite3.Error) as exc:
            raise UnusableDir(f"cannot use the journal {self.path}: {exc}") from exc

    def _migrate(self) -> None:
        with self._lock, self._db:
            for table, column, decl in _ADDED_COLUMNS:
                have = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")

    @classmethod
    def in_dir(cls, state_dir: Path, *, clock: Callable[[], float] = time.time) -> Journal:
        """The journal of a state directory (``journal.sqlite`` in it)."""
        return cls(Path(state_dir) / "journal.sqlite", clock=clock)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._db:
            yield self._db

    # ---------------------------------------------------------------- runs
    def create_run(
        self,
        run_id: str,
        *,
        name: str,
        spec_path: str,
        provider: str,
        runs_dir: str,
        forecast_usd: float | None = None,
        schedule: str | None = None,
        provider_config: str | None = None,
    ) -> None:
        """Journal a new run, ``running``, with the provider config that ``down`` rebuilds
        its provider from (so ``down`` works with the experiment file gone)."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO runs (id, name, spec_path, provider, runs_dir, status, created_at, "
                "forecast_usd, schedule, provider_config) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    name,
                    spec_path,
                    provider,
                    runs_dir,
                    RunStatus.RUNNING,
                    self._now(),
                    forecast_usd,
                    schedule,
                    provider_config,
                ),
            )

    def set_provider_config(self, run_id: str, provider_config: str) -> None:
        """Keep the provider config a resumed run now uses (``--resume --local`` changes it)."""
        with self._tx() as db:
            db.execute("UPDATE runs SET provider_config=? WHERE id=?", (provider_config, run_id))

    def run_forecast(self, run_id: str) -> float | None:
        """The forecast the plan made for the run, for ``cost`` against its spend."""
        run = self.run(run_id)
        return run.forecast_usd if run else None

    def set_run_status(self, run_id: str, status: str, detail: str | None = None) -> None:
        """Set a run's status; an ended one gets its end time (active ones none)."""
        ended = None if status in RUN_ACTIVE else self._now()
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET status=?, ended_at=?, detail=? WHERE id=?",
                (status, ended, detail, run_id),
            )

    def run(self, run_id: str) -> RunRow | None:
        """One run's row, or None for an id the journal does not know."""
        with self._tx() as db:
            row = db.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        return RunRow(**dict(row)) if row else None

    def runs(self, limit: int = 50) -> list[RunRow]:
        """The newest runs first."""
        with self._tx() as db:
            rows = db.execute(
                "SELECT * FROM runs ORDER BY created_at DESC LIMIT ?", (limit,)
            ).fetchall()
        return [RunRow(**dict(r)) for r in rows]

    # ---------------------------------------------------------------- machines
    def machine_requested(self, run_id: str, name: str, provider: str) -> int:
        """Journal a machine before asking for it; the row id is the idempotency token."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO machines (run_id, name, provider, status, requested_at) "
                "VALUES (?,?,?,?,?)",
                (run_id, name, provider, MachineStatus.REQUESTED, self._now()),
            )
            return int(cur.lastrowid or 0)

    def machine_acquired(
        self, token: int, machine_id: str, *, instance_type: str, hourly_usd: float
    ) -> None:
        """Confirm a requested machine: its provider id, type and price (spend starts now)."""
        with self._tx() as db:
            db.execute(
                "UPDATE machines SET machine_id=?, instance_type=?, hourly_usd=?, "
                "status='running', acquired_at=? WHERE token=?",
                (machine_id, instance_type, hourly_usd, self._now(), token),
            )

    def machine_status(self, token: int, status: str, detail: str | None = None) -> None:
        """Set a machine's status; a released or failed one gets its end time (spend stops)."""
        released = self._now() if status in MACHINE_GONE else None
        with self._tx() as db:
            db.execute(
                "UPDATE machines SET status=?, detail=COALESCE(?, detail), "
                "released_at=COALESCE(?, released_at) WHERE token=?",
                (status, detail, released, token),
            )

    def machine_spend(self, token: int, spend_usd: float) -> None:
        """Record what a machine has cost so far (the guard's ledger, read by ``cost``)."""
        with self._tx() as db:
            db.execute("UPDATE machines SET spend_usd=? WHERE token=?", (spend_usd, token))

    def machines(self, run_id: str | None = None) -> list[MachineRow]:
        """Every machine row (of ``run_id`` when given), in the order they were requested."""
        query, args = "SELECT * FROM machines", ()
        if run_id is not None:
            query, args = query + " WHERE run_id=?", (run_id,)  # type: ignore[assignment]
        with self._tx() as db:
            rows = db.execute(query + " ORDER BY token", args).fetchall()
        return [MachineRow(**dict(r)) for r in rows]

    # ---------------------------------------------------------------- tasks
    def add_task(
        self,
        run_id: str,
        task_id: str,
        *,
        machine: str,
        trainer: str,
        device: str,
        params: Mapping[str, Any],
        status: str = TaskStatus.PENDING,
        detail: str | None = None,
    ) -> None:
        """Add (or, on resume, update) a task; a task already ``done`` stays done."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO tasks (run_id, task_id, machine, trainer, device, params, status, "
                "detail) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(run_id, task_id) DO UPDATE SET "
                "machine=excluded.machine, status=CASE WHEN tasks.status='done' THEN 'done' "
                "ELSE excluded.status END, detail=excluded.detail",
                (run_id, task_id, machine, trainer, device, json.dumps(params), status, detail),
            )

    def task_started(self, run_id: str, task_id: str, job: JobRef, *, machine: str) -> None:
        """Mark a task running with its detached job, so ``down`` can find and stop it."""
        with self._tx() as db:
            db.execute(
                "UPDATE tasks SET status='running', started_at=?, job=?, exit_code=NULL, "
                "machine=? WHERE run_id=? AND task_id=?",
                (self._now(), job.to_json(), machine, run_id, task_id),
            )

    def task_ended(
        self,
        run_id: str,
        task_id: str,
        *,
        status: str,
        exit_code: int | None,
        wall_s: float | None,
        detail: str | None = None,
    ) -> None:
        """Record how a task ended: status, exit code, wall time and why."""
        with self._tx() as db:
            db.execute(
                "UPDATE tasks SET status=?, exit_code=?, ended_at=?, wall_s=?, detail=? "
                "WHERE run_id=? AND task_id=?",
                (status, exit_code, self._now(), wall_s, detail, run_id, task_id),
            )

    def tasks(self, run_id: str) -> list[TaskRow]:
        """The run's tasks in plan order."""
        with self._tx() as db:
            rows = db.execute(
                "SELECT * FROM tasks WHERE run_id=? ORDER BY rowid", (run_id,)
            ).fetchall()
        return [TaskRow(**dict(r)) for r in rows]

    def past_wall_s(self, task_id: str, machine_name: str) -> list[float]:
        """Wall times of finished runs of the same task on the same machine class."""
        with self._tx() as db:
            rows = db.execute(
                "SELECT wall_s FROM tasks WHERE task_id=? AND machine=? AND status='done' "
                "AND wall_s IS NOT NULL ORDER BY ended_at DESC LIMIT 20",
                (task_id, machine_name),
            ).fetchall()
        return [float(r[0]) for r in rows]

    # ---------------------------------------------------------------- events
    def setup_started(self, run_id: str, job: JobRef) -> None:
        """Journal a started ``setup:`` command, so ``down``/``attach`` can stop it."""
        self.event(run_id, "setup", json.loads(job.to_json()))

    def worker_started(self, run_id: str, job: JobRef) -> None:
        """Journal a gang's worker (``orchestrator.gang``): ``down`` and a resume stop it."""
        self.event(run_id, "worker", json.loads(job.to_json()))

    def setup_jobs(self, run_id: str) -> list[JobRef]:
        """Every ``setup:`` command and gang worker the run started, oldest first."""
        with self._tx() as db:
            rows = db.execute(
                "SELECT payload FROM events WHERE run_id=? AND kind IN ('setup', 'worker') "
                "ORDER BY id",
                (run_id,),
            ).fetchall()
        return [JobRef.from_json(payload) for (payload,) in rows]

    def event(self, run_id: str, kind: str, payload: Mapping[str, Any]) -> None:
        """Append one event (e.g. a started ``setup:`` command, so ``down`` can stop it)."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO events (run_id, t, kind, payload) VALUES (?,?,?,?)",
                (run_id, self._now(), kind, json.dumps(payload, default=str)),
            )
