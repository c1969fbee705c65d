"""A staged setup in the engine (issue 18, item 4): the machine is handed over once the first
task's framework is in, that task starts while the other framework still installs, and a task
of the other framework waits for its marker, or fails clearly if that stage failed.

The fake provider stands in for the instance's setup job by writing the markers itself; the
waiting is the real shell text (``ready_wait``), run by the real job wrapper.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from ami.stages import ALL, FAILED
from infra.provider import Machine, MachineRequest
from orchestrator.engine import Engine, EngineConfig
from orchestrator.events import RecordingReporter
from orchestrator.plan import MachineOffer, make_plan
from orchestrator.specfile import parse_experiment
from orchestrator.state import Journal
from orchestrator.summary import RunSummary
from tests.fakes import FAKE_TRAINERS, FakeProvider

EXP = """name: staged
jobs:
  - trainer: mnist
    framework: [theano, tensorflow]
    optimizer: sgd
    epochs: 1
"""
LATER_S = 3.0  # when the second stage "finishes"


class StagedSetup(FakeProvider):
    """Hands the machine over with the first stage's marker written and the second's due in
    `LATER_S` (or ``failed`` then, with ``fail_later``)."""

    def __init__(self, ready: Path, *, fail_later: bool = False, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.ready, self.fail_later = ready, fail_later
        self.first: str | None = None
        self.later_at = 0.0

    def bootstrap(
        self, machine: Machine, transport: object, *, first: str | None = None
    ) -> Machine:
        self.first = first
        self.ready.mkdir(parents=True)
        (self.ready / str(first)).touch()

        def second_stage() -> None:
            time.sleep(LATER_S)
            self.later_at = time.time()
            if self.fail_later:
                (self.ready / FAILED).write_text("1\n")
            else:
                (self.ready / "tensorflow").touch()
                (self.ready / ALL).touch()

        threading.Thread(target=second_stage, daemon=True).start()
        return replace(machine, python=sys.executable, setup_ready_dir=str(self.ready))


def _run(tmp_path: Path, provider: FakeProvider) -> RunSummary:
    exp = parse_experiment(EXP, "staged.yaml")
    offer = MachineOffer(MachineRequest(run_id="r1", name="cpu"), slots=2, gpus=0)
    plan = make_plan(exp, spec_path="staged.yaml", run_id="r1", provider=provider, offers=[offer])
    engine = Engine(
        provider=provider,
        journal=Journal.in_dir(tmp_path / "state"),
        reporter=RecordingReporter(),
        config=EngineConfig(
            runs_root=tmp_path / "runs", trainers_src=FAKE_TRAINERS, stop_grace_s=1.0
        ),
    )
    return engine.run(plan)


def _started_at(tmp_path: Path, task_id: str) -> float:
    timing = tmp_path / "runs" / "r1" / task_id / "timing.jsonl"
    rows = [json.loads(line) for line in timing.read_text().splitlines()]
    return float(next(r["t"] for r in rows if r["event"] == "start"))


def test_the_first_framework_runs_while_the_other_installs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_EPOCH_S", "0")
    provider = StagedSetup(tmp_path / "ready", workspace_root=str(tmp_path / "ws"))
    summary = _run(tmp_path, provider)
    assert [t.status for t in summary.tasks] == ["done", "done"], summary.tasks
    assert provider.first == "theano"  # the queue's first task's framework goes in first
    theano = _started_at(tmp_path, "mnist-theano-sgd-cpu")
    tensorflow = _started_at(tmp_path, "mnist-tensorflow-sgd-cpu")
    assert theano < provider.later_at - 1.0, "the first task waited for the second stage"
    assert tensorflow >= provider.later_at, "a task started before its framework was in"
    assert provider.machines == {}


def test_a_failed_later_stage_fails_only_the_tasks_that_need_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_EPOCH_S", "0")
    provider = StagedSetup(tmp_path / "ready", fail_later=True, workspace_root=str(tmp_path / "ws"))
    summary = _run(tmp_path, provider)
    by_id = {t.task_id: t for t in summary.tasks}
    assert by_id["mnist-theano-sgd-cpu"].status == "done"
    failed = by_id["mnist-tensorflow-sgd-cpu"]
    assert failed.status == "failed", failed
    log = (tmp_path / "runs" / "r1" / failed.task_id / "task.log").read_text()
    assert "setup failed before tensorflow was installed" in log, log
    assert provider.machines == {}
