from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.errors import SpecError
from orchestrator.schedule import due_times, serve, tick, validate_cron
from orchestrator.schedule_store import ScheduleRow, ScheduleStore
from orchestrator.state import Journal
from tests.cli import orchestrate
from tests.fakes import FAKE_TRAINERS

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _store(tmp_path: Path, cron: str = "0 3 * * *", budget: float | None = None) -> ScheduleStore:
    store = ScheduleStore(Journal.in_dir(tmp_path))
    store.add(ScheduleRow("nightly", "exp.yaml", cron, budget, T0.timestamp(), None, str(tmp_path)))
    return store


class Runs:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.started: list[str] = []

    def __call__(self, row: ScheduleRow) -> str:
        run_id = f"run-{len(self.started)}"
        self.journal.create_run(
            run_id,
            name="x",
            spec_path=row.spec_path,
            provider="fake",
            runs_dir="r",
            schedule=row.name,
        )
        self.started.append(run_id)
        return run_id


def test_not_due_before_the_first_time_then_fires_once(tmp_path: Path) -> None:
    store = _store(tmp_path)
    runs = Runs(store.journal)
    assert tick(store, now=T0 + timedelta(hours=10), forecast=lambda r: 0.0, start_run=runs) == []
    (d,) = tick(
        store, now=T0 + timedelta(hours=15, minutes=1), forecast=lambda r: 0.0, start_run=runs
    )
    assert (d.outcome, d.run_id, d.missed) == ("ran", "run-0", 0)
    assert d.fire_time == datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
    # the same instant again: nothing new is due
    store.journal.set_run_status("run-0", "done")
    assert (
        tick(store, now=T0 + timedelta(hours=15, minutes=2), forecast=lambda r: 0.0, start_run=runs)
        == []
    )


def test_missed_firings_coalesce_into_one_run(tmp_path: Path) -> None:
    store = _store(tmp_path)
    runs = Runs(store.journal)
    (d,) = tick(store, now=T0 + timedelta(days=3, hours=16), forecast=lambda r: 0.0, start_run=runs)
    assert d.outcome == "ran" and d.missed == 3
    assert runs.started == ["run-0"]
    assert "coalesced 3 missed" in store.history("nightly")[-1]["reason"]


def test_a_schedule_never_overlaps_itself(tmp_path: Path) -> None:
    store = _store(tmp_path, cron="0 * * * *")
    runs = Runs(store.journal)
    tick(store, now=T0 + timedelta(hours=1, minutes=1), forecast=lambda r: 0.0, start_run=runs)
    (d,) = tick(
        store, now=T0 + timedelta(hours=2, minutes=1), forecast=lambda r: 0.0, start_run=runs
    )
    assert d.outcome == "skipped" and "run-0 still running" in (d.reason or "")
    assert runs.started == ["run-0"]


def test_a_firing_over_the_month_budget_is_skipped_with_the_figures(tmp_path: Path) -> None:
    store = _store(tmp_path, cron="0 * * * *", budget=10.0)
    journal = store.journal
    runs = Runs(journal)
    # an earlier run of this schedule this month spent $8
    journal.create_run(
        "old", name="x", spec_path="e", provider="aws", runs_dir="r", schedule="nightly"
    )
    token = journal.machine_requested("old", "gpu", "aws")
    journal.machine_spend(token, 8.0)
    journal.set_run_status("old", "done")
    (d,) = tick(
        store, now=T0 + timedelta(hours=1, minutes=1), forecast=lambda r: 3.0, start_run=runs
    )
    assert d.outcome == "skipped"
    assert d.reason == "would overrun the month's budget: spent $8.00 + forecast $3.00 > $10.00"
    assert runs.started == []
    (d2,) = tick(
        store, now=T0 + timedelta(hours=2, minutes=1), forecast=lambda r: 1.5, start_run=runs
    )
    assert d2.outcome == "ran"


def test_bad_cron_is_a_spec_error() -> None:
    with pytest.raises(SpecError):
        validate_cron("every night")
    validate_cron("*/5 * * * *")


def test_due_times_lists_every_missed_time() -> None:
    row = ScheduleRow("s", "f", "0 */6 * * *", None, T0.timestamp(), None, "r")
    assert len(due_times(row, T0 + timedelta(days=1))) == 4


def test_scheduler_catches_up_then_registers_cron_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apscheduler.schedulers.blocking import BlockingScheduler

    seen: dict[str, object] = {}

    def fake_start(self: BlockingScheduler) -> None:
        seen["jobs"] = [
            (j.id, str(j.trigger), j.coalesce, j.max_instances) for j in self.get_jobs()
        ]

    monkeypatch.setattr(BlockingScheduler, "start", fake_start)
    store = _store(tmp_path)
    runs = Runs(store.journal)
    serve(
        store,
        forecast=lambda r: 0.0,
        start_run=runs,
        attach_run=lambda run_id: None,
        clock=lambda: T0 + timedelta(days=2),
    )
    assert runs.started == ["run-0"]  # the missed firings, coalesced
    (job,) = seen["jobs"]  # type: ignore[misc]
    assert job[0] == "nightly" and job[2] is True and job[3] == 1


@pytest.mark.slow
def test_cli_schedule_add_tick_list_remove(tmp_path: Path) -> None:
    env = dict(
        os.environ,
        ORCHESTRATE_TRAINERS_SRC=str(FAKE_TRAINERS),
        ORCHESTRATE_STATE_DIR=str(tmp_path / "state"),
        ORCHESTRATE_LOCAL_GPUS="0",
    )
    (tmp_path / "exp.yaml").write_text("name: tiny\njobs:\n  - trainer: pca\n")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return orchestrate(list(args), env, tmp_path, timeout=120)

    assert cli("schedule", "add", "exp.yaml", "--cron", "not a cron").returncode == 2
    assert (
        cli("schedule", "add", "exp.yaml", "--cron", "0 3 * * *", "--budget-month", "5").returncode
        == 0
    )
    later = (datetime.now(UTC) + timedelta(days=1, hours=1)).isoformat()
    ticked = cli("schedule", "tick", "--now", later, "--json")
    assert ticked.returncode == 0, ticked.stderr
    decision = json.loads(ticked.stdout.strip().splitlines()[-1])
    assert decision["outcome"] == "ran" and decision["run_id"].startswith("tiny-")
    assert (tmp_path / "runs" / decision["run_id"] / "pca-tensorflow-cpu" / "metrics.json").exists()
    listed = json.loads(cli("schedule", "list", "--json").stdout)
    assert listed[0]["last"]["outcome"] == "ran"
    cost = json.loads(cli("cost", "--json").stdout)
    assert cost[0]["run"] == decision["run_id"] and cost[0]["actual_usd"] == 0.0
    assert cli("schedule", "remove", "tiny").returncode == 0
    assert cli("schedule", "remove", "tiny").returncode == 2
