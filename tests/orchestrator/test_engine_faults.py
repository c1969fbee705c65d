"""A bug in a task or machine thread fails what it hit, visibly: the task is ``failed`` with a
one-line reason, the traceback is in the events (so in run.log), and the run ends ``failed``."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.provider import Machine, MachineRequest
from infra.transport.base import SyncStats
from infra.transport.local import LocalTransport
from orchestrator.engine import Engine, EngineConfig
from orchestrator.events import MachineEvent, RecordingReporter, TaskEvent
from orchestrator.plan import MachineOffer, make_plan
from orchestrator.specfile import parse_experiment
from orchestrator.state import Journal
from orchestrator.summary import RunSummary
from tests.fakes import FAKE_TRAINERS, FakeProvider


class BuggyTransport(LocalTransport):
    """Fetching the output of any task whose id contains ``victim`` raises a plain bug."""

    def __init__(self, victim: str, where: str) -> None:
        super().__init__()
        self.victim, self.where = victim, where

    def get_tree(self, remote: str, local: Path) -> SyncStats:
        if self.where == "get_tree" and self.victim in remote:
            raise KeyError("a bug in fetch")
        return super().get_tree(remote, local)

    def put_tree(self, local: Path, remote: str, *, exclude: object = ()) -> SyncStats:  # type: ignore[override]
        if self.where == "put_tree":
            raise ValueError("a bug in sync")
        return super().put_tree(local, remote, exclude=exclude)  # type: ignore[arg-type]


class BuggyProvider(FakeProvider):
    def __init__(self, *, workspace_root: str, victim: str, where: str) -> None:
        super().__init__(workspace_root=workspace_root)
        self.victim, self.where = victim, where

    def connect(self, machine: Machine) -> LocalTransport:
        return BuggyTransport(self.victim, self.where)


def run_with(
    tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[RunSummary, RecordingReporter]:
    monkeypatch.setenv("FAKE_EPOCH_S", "0")
    exp = parse_experiment(
        "name: buggy\njobs:\n  - trainer: mnist\n    optimizer: [sgd, adam]\n    epochs: 1\n",
        "buggy.yaml",
    )
    provider = BuggyProvider(workspace_root=str(tmp_path / "ws"), victim="adam", where=where)
    offer = MachineOffer(MachineRequest(run_id="run-1", name="cpu"), slots=1, gpus=0)
    plan = make_plan(
        exp,
        spec_path="buggy.yaml",
        run_id="run-1",
        provider=provider,
        offers=[offer],
    )
    reporter = RecordingReporter()
    engine = Engine(
        provider=provider,
        journal=Journal.in_dir(tmp_path / "state"),
        reporter=reporter,
        config=EngineConfig(runs_root=tmp_path / "runs", trainers_src=FAKE_TRAINERS),
    )
    return engine.run(plan), reporter


def test_a_bug_in_one_task_fails_it_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary, reporter = run_with(tmp_path, "get_tree", monkeypatch)
    statuses = {t.task_id: (t.status, t.detail) for t in summary.tasks}
    assert statuses["mnist-tensorflow-sgd-cpu"][0] == "done"
    status, detail = statuses["mnist-tensorflow-adam-cpu"]
    assert status == "failed" and "internal error: KeyError" in (detail or "")
    assert summary.status == "failed"
    traces = [e.traceback for e in reporter.events if isinstance(e, TaskEvent) and e.traceback]
    assert len(traces) == 1 and "a bug in fetch" in traces[0] and "Traceback" in traces[0]


def test_a_bug_while_preparing_a_machine_fails_its_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary, reporter = run_with(tmp_path, "put_tree", monkeypatch)
    assert summary.status == "failed"
    assert {t.status for t in summary.tasks} == {"failed"}
    assert all("ValueError" in (t.detail or "") for t in summary.tasks)
    failed = [e for e in reporter.events if isinstance(e, MachineEvent) and e.state == "failed"]
    assert failed and "a bug in sync" in failed[0].traceback
    assert [e.state for e in reporter.events if isinstance(e, MachineEvent)][-1] == "released"
