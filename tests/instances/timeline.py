"""Time to first task, read from a run's journal (shared by the tests and the benchmark)."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def first_task_s(state_dir: Path, run_id: str) -> float:
    """Seconds from the run's creation to its first task starting: launch, boot, readiness,
    setup (when the image is not baked) and the first sync, as the user waits for them."""
    db = sqlite3.connect(f"file:{state_dir / 'journal.sqlite'}?mode=ro", uri=True)
    try:
        row = db.execute(
            "SELECT r.created_at, MIN(t.started_at) FROM runs r JOIN tasks t ON t.run_id = r.id"
            " WHERE r.id = ? AND t.started_at IS NOT NULL",
            (run_id,),
        ).fetchone()
    finally:
        db.close()
    if row is None or row[1] is None:
        raise AssertionError(f"run {run_id}: no task started")
    return float(row[1]) - float(row[0])
