"""The journal's schedules: what to run when, and what each firing decided.

Kept in the same SQLite file as runs, so a schedule's month spend is one join away.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.state import Journal


@dataclass(frozen=True)
class ScheduleRow:
    name: str
    spec_path: str
    cron: str
    budget_month_usd: float | None
    created_at: float
    last_fire: float | None
    runs_dir: str


class ScheduleStore:
    """The schedules table: what to run when, and what each firing decided."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def add(self, row: ScheduleRow) -> None:
        """Keep a schedule (a second add of the same name replaces it)."""
        with self.journal._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO schedules VALUES (?,?,?,?,?,?,?)",
                (
                    row.name,
                    row.spec_path,
                    row.cron,
                    row.budget_month_usd,
                    row.created_at,
                    row.last_fire,
                    row.runs_dir,
                ),
            )

    def remove(self, name: str) -> bool:
        """Forget a schedule; False when there was none of that name."""
        with self.journal._tx() as db:
            return db.execute("DELETE FROM schedules WHERE name=?", (name,)).rowcount > 0

    def all(self) -> list[ScheduleRow]:
        """Every schedule, by name."""
        with self.journal._tx() as db:
            rows = db.execute("SELECT * FROM schedules ORDER BY name").fetchall()
        return [ScheduleRow(**dict(r)) for r in rows]

    def get(self, name: str) -> ScheduleRow | None:
        """One schedule by name, or None."""
        return next((s for s in self.all() if s.name == name), None)

    def fired(self, name: str, fire_time: float) -> None:
        """Remember the last firing, so a missed one is caught up once, not twice."""
        with self.journal._tx() as db:
            db.execute("UPDATE schedules SET last_fire=? WHERE name=?", (fire_time, name))

    def record(
        self, name: str, *, fire_time: float, outcome: str, run_id: str | None, reason: str | None
    ) -> None:
        """Log what a firing did (ran, skipped and why, error) for ``schedule list``."""
        with self.journal._tx() as db:
            db.execute(
                "INSERT INTO schedule_events (schedule, t, fire_time, outcome, run_id, reason) "
                "VALUES (?,?,?,?,?,?)",
                (name, self.journal._now(), fire_time, outcome, run_id, reason),
            )

    def history(self, name: str | None = None) -> list[dict[str, Any]]:
        """The firing log (of one schedule when named), oldest first."""
        query = "SELECT * FROM schedule_events"
        args: tuple[str, ...] = ()
        if name:
            query, args = query + " WHERE schedule=?", (name,)
        with self.journal._tx() as db:
            return [dict(r) for r in db.execute(query + " ORDER BY id", args).fetchall()]

    def month_spend(self, name: str, month_start: float) -> float:
        """What runs started by this schedule since ``month_start`` have cost so far."""
        with self.journal._tx() as db:
            row = db.execute(
                "SELECT COALESCE(SUM(m.spend_usd), 0) FROM machines m JOIN runs r "
                "ON m.run_id = r.id WHERE r.schedule=? AND r.created_at >= ?",
                (name, month_start),
            ).fetchone()
        return float(row[0])

    def active_run(self, name: str) -> str | None:
        """The schedule's run still running, if any: a schedule never overlaps itself."""
        with self.journal._tx() as db:
            row = db.execute(
                "SELECT id FROM runs WHERE schedule=? AND status='running' LIMIT 1", (name,)
            ).fetchone()
        return str(row[0]) if row else None
