"""Running the real ``orchestrate`` command line as a child process, as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def orchestrate(
    args: list[str], env: dict[str, str], cwd: Path, *, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def last_json(proc: subprocess.CompletedProcess[str]) -> Any:
    """The final JSON line of ``--json`` output (the run's summary)."""
    return json.loads(proc.stdout.strip().splitlines()[-1])


def start_and_wait(
    spec: str,
    env: dict[str, str],
    cwd: Path,
    *,
    journal_query: str,
    timeout: float = 60,
    **popen: Any,
) -> tuple[subprocess.Popen[str], tuple[Any, ...]]:
    """``orchestrate run SPEC`` in the background; returns once ``journal_query`` (read-only,
    on the state dir's journal) yields a row, with that row. Kills the run if none comes."""
    import sqlite3
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run", spec], env=env, cwd=cwd, text=True, **popen
    )
    db = Path(env["ORCHESTRATE_STATE_DIR"]) / "journal.sqlite"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            row = conn.execute(journal_query).fetchone()
        except sqlite3.OperationalError:  # no journal or no schema yet
            continue
        if row:
            return proc, tuple(row)
    proc.kill()
    raise AssertionError(f"the journal never showed: {journal_query}")
