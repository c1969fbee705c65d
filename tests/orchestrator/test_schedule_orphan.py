"""Policy 2's orphan (issue 16, point 5): a firing whose previous run is ``running`` but whose
orchestrator died attaches to that run and finishes it; a live previous run is still skipped.

The decision with a real journal and real leases; then through real processes: a
``schedule tick`` whose run is killed with ``kill -9`` mid-run, and the next tick attaching.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from orchestrator.errors import RunBusy
from orchestrator.lease import LEASE_TTL_S, RunLease, _ensure, orphaned
from orchestrator.schedule import tick
from orchestrator.schedule_store import ScheduleRow, ScheduleStore
from orchestrator.state import Journal
from tests.cli import orchestrate
from tests.fakes import FAKE_TRAINERS
from tests.integration.test_kill_matrix import TRAINER, experiment
from tests.orchestrator.test_schedule import T0, Runs

HOURLY = "0 * * * *"


def _store(tmp_path: Path) -> ScheduleStore:
    store = ScheduleStore(Journal.in_dir(tmp_path))
    store.add(ScheduleRow("nightly", "exp.yaml", HOURLY, None, T0.timestamp(), None, "r"))
    return store


def _lease(journal: Journal, run_id: str, *, host: str, start: str, beat: float) -> None:
    """A lease row as an orchestrator leaves it (this pid, with ``start`` as its start time)."""
    _ensure(journal)
    with journal._tx() as db:
        db.execute(
            "INSERT INTO leases VALUES (?,?,?,?,?,?,NULL)",
            (run_id, os.getpid(), host, start, beat, beat),
        )


class Attach:
    """The scheduler's ``attach RUN``: records what it was asked to finish, and finishes it."""

    def __init__(self, journal: Journal, error: Exception | None = None) -> None:
        self.journal, self.error = journal, error
        self.asked: list[str] = []

    def __call__(self, run_id: str) -> None:
        self.asked.append(run_id)
        if self.error is not None:
            raise self.error
        self.journal.set_run_status(run_id, "done")


def _fire(store: ScheduleStore, hours: int, runs: Runs, attach: Attach) -> tuple[str, str | None]:
    (d,) = tick(
        store,
        now=T0 + timedelta(hours=hours, minutes=1),
        forecast=lambda r: 0.0,
        start_run=runs,
        attach_run=attach,
    )
    return d.outcome, d.run_id


def test_the_next_firing_attaches_to_an_orphaned_run_and_starts_none(tmp_path: Path) -> None:
    store = _store(tmp_path)
    runs, attach = Runs(store.journal), Attach(store.journal)
    assert _fire(store, 1, runs, attach) == ("ran", "run-0")
    # its orchestrator died: this pid's row, but another process start time (a recycled pid)
    _lease(store.journal, "run-0", host=socket.gethostname(), start="1", beat=time.time())
    assert _fire(store, 2, runs, attach) == ("attached", "run-0")
    assert attach.asked == ["run-0"] and runs.started == ["run-0"]
    last = store.history("nightly")[-1]
    assert (last["outcome"], last["run_id"]) == ("attached", "run-0")
    assert "orphaned" in last["reason"]
    assert _fire(store, 3, runs, attach) == ("ran", "run-1")  # finished: the schedule goes on


def test_a_live_previous_run_is_still_skipped(tmp_path: Path) -> None:
    store = _store(tmp_path)
    runs, attach = Runs(store.journal), Attach(store.journal)
    _fire(store, 1, runs, attach)
    lease = RunLease.take(store.journal, "run-0")  # this very process runs it
    try:
        assert _fire(store, 2, runs, attach) == ("skipped", None)
    finally:
        lease.release()
    assert attach.asked == [] and runs.started == ["run-0"]
    assert "run-0 still running" in store.history("nightly")[-1]["reason"]


@pytest.mark.parametrize(
    ("error", "outcome", "words"),
    [
        (RunBusy("taken"), "skipped", "attached by another orchestrator"),
        (RuntimeError("spec file gone"), "error", "RuntimeError: spec file gone"),
    ],
)
def test_an_attach_that_fails_is_recorded_and_the_scheduler_goes_on(
    tmp_path: Path, error: Exception, outcome: str, words: str
) -> None:
    store = _store(tmp_path)
    runs, attach = Runs(store.journal), Attach(store.journal, error)
    _fire(store, 1, runs, attach)
    _lease(store.journal, "run-0", host=socket.gethostname(), start="1", beat=time.time())
    assert _fire(store, 2, runs, attach)[0] == outcome
    assert words in store.history("nightly")[-1]["reason"]


def test_orphaned_follows_the_lease_rules(tmp_path: Path) -> None:
    journal = Journal.in_dir(tmp_path)
    journal.create_run("r", name="x", spec_path="e", provider="local", runs_dir="d")
    now = time.time()
    assert orphaned(journal, "r", now=now)  # running, nobody holds it
    _lease(journal, "r", host="elsewhere", start="", beat=now - 1)
    assert not orphaned(journal, "r", now=now)  # another host's fresh beat: give it its grace
    assert orphaned(journal, "r", now=now + LEASE_TTL_S + 1)  # silent past the grace
    journal.set_run_status("r", "done")
    assert not orphaned(journal, "r", now=now + LEASE_TTL_S + 1)  # ended: nothing to attach to
    assert not orphaned(journal, "unknown", now=now)


def _journal_row(state: Path, query: str, timeout: float = 90) -> tuple[object, ...]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            conn = sqlite3.connect(f"file:{state / 'journal.sqlite'}?mode=ro", uri=True)
            row = conn.execute(query).fetchone()
            conn.close()
        except sqlite3.OperationalError:
            continue
        if row:
            return tuple(row)
    raise AssertionError(f"the journal never showed: {query}")


@pytest.mark.slow
def test_tick_attaches_to_the_run_a_killed_tick_left_behind(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "t.py").write_text(TRAINER.replace("{go!r}", repr(str(tmp_path / "go"))))
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(experiment("running", tmp_path, None)))
    state = tmp_path / "state"
    env = dict(
        os.environ,
        ORCHESTRATE_STATE_DIR=str(state),
        ORCHESTRATE_TRAINERS_SRC=str(FAKE_TRAINERS),
        ORCHESTRATE_LOCAL_GPUS="0",
    )
    add = orchestrate(["schedule", "add", "exp.yaml", "--cron", "0 3 * * *"], env, tmp_path)
    assert add.returncode == 0, add.stderr
    day = datetime.now(UTC) + timedelta(days=1, hours=1)

    def tick_at(days: int) -> list[str]:
        return ["schedule", "tick", "--now", (day + timedelta(days=days)).isoformat(), "--json"]

    first = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *tick_at(0)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        (run_id,) = _journal_row(
            state, "SELECT run_id FROM tasks WHERE status='running' AND job IS NOT NULL"
        )
        live = orchestrate(tick_at(1), env, tmp_path, timeout=120)  # its orchestrator is alive
        assert json.loads(live.stdout.strip().splitlines()[-1])["outcome"] == "skipped"
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()

    attached = orchestrate(tick_at(2), env, tmp_path, timeout=180)
    assert attached.returncode == 0, attached.stdout[-3000:] + attached.stderr[-3000:]
    decision = json.loads(attached.stdout.strip().splitlines()[-1])
    assert (decision["outcome"], decision["run_id"]) == ("attached", run_id), decision
    conn = sqlite3.connect(f"file:{state / 'journal.sqlite'}?mode=ro", uri=True)
    runs = conn.execute("SELECT id, status FROM runs").fetchall()
    outcomes = [o for (o,) in conn.execute("SELECT outcome FROM schedule_events ORDER BY id")]
    conn.close()
    assert runs == [(run_id, "done")]  # finished, and no second run was started
    # The killed tick never recorded its firing (a decision is recorded once its run ends).
    assert outcomes == ["skipped", "attached"]
    for task_id in ("short-cpu", "long-cpu"):
        assert (tmp_path / "runs" / str(run_id) / task_id / "metrics.json").is_file(), task_id
