from __future__ import annotations

import json
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from infra.prices import load_catalog
from infra.provider import MachineRequest
from orchestrator.cost import CostGuard, instance_deadline, ledger
from orchestrator.engine import Engine, EngineConfig
from orchestrator.events import RecordingReporter
from orchestrator.plan import MachineOffer, make_plan
from orchestrator.specfile import parse_experiment
from orchestrator.state import Journal
from tests.fakes import FAKE_TRAINERS, FakeProvider
from tests.procs import live_group_members


class ShiftedClock:
    """Real time plus an offset the test moves: 'three hours later' without waiting."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def monotonic(self) -> float:
        return time.monotonic() + self.offset


def test_bundled_catalog_has_prices_and_warns_when_old() -> None:
    cat = load_catalog(None)
    assert cat.hourly_usd("g4dn.xlarge", "us-east-1", spot=False) == pytest.approx(0.526)
    assert cat.hourly_usd("no-such.type", "us-east-1", spot=False) is None
    assert cat.staleness_warning(cat.as_of) is None
    warning = cat.staleness_warning(date(cat.as_of.year + 1, cat.as_of.month, 1))
    assert warning and "prices --refresh" in warning


def test_instance_deadline_is_the_sooner_of_hours_and_budget() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    by_hours = instance_deadline(now=now, max_hours=2, cap_usd=100, spent_usd=0, hourly_usd=1)
    assert (by_hours - now).total_seconds() == 2 * 3600
    by_money = instance_deadline(now=now, max_hours=2, cap_usd=1.5, spent_usd=1.0, hourly_usd=1)
    assert (by_money - now).total_seconds() == pytest.approx(0.5 * 3600)


def test_guard_caps_a_running_experiment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_EPOCH_S", "0.3")
    exp = parse_experiment(
        "name: capped\nbudget: {max_usd: 1.0}\njobs:\n  - trainer: mnist\n"
        "    optimizer: [sgd, adam, momentum]\n    epochs: 50\n",
        "capped.yaml",
    )
    clock = ShiftedClock()
    journal = Journal.in_dir(tmp_path / "state", clock=clock.time)
    provider = FakeProvider(workspace_root=str(tmp_path / "ws"), hourly_usd=0.6)
    offer = MachineOffer(MachineRequest(run_id="run-1", name="cpu"), slots=1, gpus=0)
    # Layer 1 would refuse this plan (3 x 10 min default at $0.60/h is under $1, so it passes).
    plan = make_plan(
        exp,
        spec_path="capped.yaml",
        run_id="run-1",
        provider=provider,
        offers=[offer],
    )
    guard = CostGuard(journal, "run-1", cap_usd=1.0, clock=clock)
    reporter = RecordingReporter()
    engine = Engine(
        provider=provider,
        journal=journal,
        reporter=reporter,
        guard=guard,
        config=EngineConfig(
            runs_root=tmp_path / "runs", trainers_src=FAKE_TRAINERS, stop_grace_s=2
        ),
    )

    timing = tmp_path / "ws" / "run-1" / "out" / "mnist-tensorflow-sgd-cpu" / "timing.jsonl"

    def later() -> None:  # once the first task has written an epoch, jump 2 hours ahead
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            written = timing.read_text() if timing.exists() else ""
            if '"epoch": 1' in written:  # on the machine: not a fixed sleep, which load beats
                clock.offset = 2 * 3600
                return
            time.sleep(0.05)

    threading.Thread(target=later, daemon=True).start()
    summary = engine.run(plan)
    assert summary.status == "capped"
    assert journal.run("run-1").status == "capped"
    statuses = {t.task_id: t.status for t in summary.tasks}
    assert statuses["mnist-tensorflow-sgd-cpu"] == "stopped"
    assert statuses["mnist-tensorflow-adam-cpu"] == "pending"  # never started
    kept = tmp_path / "runs" / "run-1" / "mnist-tensorflow-sgd-cpu" / "timing.jsonl"
    assert '"epoch": 1' in kept.read_text()
    machines = journal.machines("run-1")
    assert [m.status for m in machines] == ["released"]
    assert provider.machines == {}
    job = [t for t in journal.tasks("run-1") if t.task_id == "mnist-tensorflow-sgd-cpu"][0].job
    assert live_group_members(json.loads(job)["pid"]) == []
    spent = ledger(journal, run_id="run-1")[0]
    assert spent["actual_usd"] >= 1.0  # 2 h at $0.60/h as the shifted clock sees it
    assert spent["forecast_usd"] == pytest.approx(plan.forecast_usd)


def test_an_old_journal_gains_new_columns(tmp_path: Path) -> None:
    import sqlite3

    db = sqlite3.connect(tmp_path / "journal.sqlite")
    db.execute(
        "CREATE TABLE runs (id TEXT PRIMARY KEY, name TEXT NOT NULL, spec_path TEXT NOT NULL, "
        "provider TEXT NOT NULL, runs_dir TEXT NOT NULL, status TEXT NOT NULL, "
        "created_at REAL NOT NULL, ended_at REAL, detail TEXT)"
    )
    db.commit()
    db.close()
    journal = Journal.in_dir(tmp_path)
    journal.create_run(
        "r", name="n", spec_path="s", provider="local", runs_dir="d", forecast_usd=1.5
    )
    assert journal.run_forecast("r") == 1.5
