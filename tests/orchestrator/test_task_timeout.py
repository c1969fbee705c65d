"""``timeout_minutes``: the task is stopped at its limit, ends ``timeout`` with what it wrote
fetched, and the run goes on to its other tasks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.provider import MachineRequest
from orchestrator.engine import Engine, EngineConfig
from orchestrator.events import RecordingReporter
from orchestrator.plan import MachineOffer, make_plan
from orchestrator.specfile import parse_experiment
from orchestrator.state import Journal
from tests.fakes import FAKE_TRAINERS, FakeProvider
from tests.procs import live_group_members


def test_a_task_past_its_timeout_ends_timeout_and_keeps_its_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_EPOCH_S", "0.4")
    exp = parse_experiment(
        "name: slow\njobs:\n"
        "  - {trainer: mnist, optimizer: sgd, epochs: 50, timeout_minutes: 0.025}\n"
        "  - {trainer: mnist, optimizer: adam, epochs: 1}\n",
        "slow.yaml",
    )
    provider = FakeProvider(workspace_root=str(tmp_path / "ws"))
    offer = MachineOffer(MachineRequest(run_id="run-1", name="cpu"), slots=1, gpus=0)
    plan = make_plan(
        exp,
        spec_path="slow.yaml",
        run_id="run-1",
        provider=provider,
        offers=[offer],
    )
    journal = Journal.in_dir(tmp_path / "state")
    engine = Engine(
        provider=provider,
        journal=journal,
        reporter=RecordingReporter(),
        config=EngineConfig(
            runs_root=tmp_path / "runs", trainers_src=FAKE_TRAINERS, stop_grace_s=2
        ),
    )
    summary = engine.run(plan)
    statuses = {t.task_id: (t.status, t.detail) for t in summary.tasks}
    status, detail = statuses["mnist-tensorflow-sgd-cpu"]
    assert status == "timeout" and "1.5s" in (detail or "")
    assert statuses["mnist-tensorflow-adam-cpu"][0] == "done"
    assert summary.status == "failed"  # not every task finished: exit 1
    partial = tmp_path / "runs" / "run-1" / "mnist-tensorflow-sgd-cpu" / "timing.jsonl"
    assert '"epoch": 1' in partial.read_text()
    job = [t for t in journal.tasks("run-1") if t.task_id == "mnist-tensorflow-sgd-cpu"][0]
    assert live_group_members(json.loads(job.job or "{}")["pid"]) == []
