"""Gang placement in the engine, in process on the shared fake provider (issue 19): a
``nodes: 2`` task takes two machines at once, one worker each; the first worker to fail stops
the other and fails the task; a gang that cannot be whole in time fails, and in every case
each machine is released."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from infra.errors import ProviderError
from infra.provider import MachineRequest
from orchestrator.engine import Engine, EngineConfig
from orchestrator.events import RecordingReporter
from orchestrator.plan import MachineOffer, make_plan
from orchestrator.specfile import parse_experiment
from orchestrator.state import Journal
from orchestrator.summary import RunSummary
from tests.fakes import FAKE_TRAINERS, FakeProvider

TASK = "mnist-tensorflow-sgd-cpu"


def _run(
    tmp_path: Path, *, epochs: int = 2, gang_timeout_s: float = 30.0, fail_acquire: bool = False
) -> tuple[RunSummary, FakeProvider]:
    exp = parse_experiment(
        f"name: gang\njobs:\n  - trainer: mnist\n    optimizer: sgd\n    epochs: {epochs}\n"
        "    nodes: 2\n",
        "gang.yaml",
    )
    provider = FakeProvider(workspace_root=str(tmp_path / "ws"))
    if fail_acquire:
        provider.fail_next_acquire(ProviderError("no capacity"))
    offers = [
        MachineOffer(MachineRequest(run_id="run-1", name="cpu"), slots=1, gpus=0),
        MachineOffer(
            MachineRequest(run_id="run-1", name="cpu-2"), slots=1, gpus=0, machine_class="cpu"
        ),
    ]
    plan = make_plan(exp, spec_path="gang.yaml", run_id="run-1", provider=provider, offers=offers)
    engine = Engine(
        provider=provider,
        journal=Journal.in_dir(tmp_path / "state"),
        reporter=RecordingReporter(),
        config=EngineConfig(
            runs_root=tmp_path / "runs",
            trainers_src=FAKE_TRAINERS,
            stop_grace_s=2.0,
            gang_timeout_s=gang_timeout_s,
        ),
    )
    return engine.run(plan), provider


def test_a_gang_runs_one_worker_on_each_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_EPOCH_S", "0")
    summary, provider = _run(tmp_path)
    (task,) = summary.tasks
    assert task.status == "done", task.detail
    here = tmp_path / "runs" / "run-1" / TASK
    assert json.loads((here / "manifest.json").read_text())["node_rank"] == "0"
    assert json.loads((here / "workers" / "1" / "manifest.json").read_text())["node_rank"] == "1"
    assert (here / "workers" / "1" / "timing.jsonl").is_file()
    assert len([c for c in provider.calls if c[0] == "release"]) == 2
    assert provider.machines == {}


def test_a_dead_worker_stops_the_others_and_fails_the_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_EPOCH_S", "0.2")
    monkeypatch.setenv("FAKE_FAIL_TASKS", f"{TASK}@1")
    t0 = time.monotonic()
    summary, provider = _run(tmp_path, epochs=500)  # worker 0 alone would run 100 s
    assert time.monotonic() - t0 < 30, "worker 0 was not stopped"
    (task,) = summary.tasks
    assert task.status == "failed" and "worker 1 exited 1" in (task.detail or ""), task.detail
    assert summary.status == "failed"
    assert len([c for c in provider.calls if c[0] == "release"]) == 2
    assert provider.machines == {}


def test_a_failed_chief_names_the_peer_that_failed_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker 0's collective op errors out when a peer dies, often before the peer's own end
    is seen (CI saw only worker 0's error): the task's reason must still name the peer."""
    monkeypatch.setenv("FAKE_EPOCH_S", "0")
    monkeypatch.setenv("FAKE_PEER_DIR", str(tmp_path))
    monkeypatch.setenv("FAKE_FAIL_TASKS", f"{TASK}@0~,{TASK}@1")  # 0 fails once 1 has
    summary, provider = _run(tmp_path)
    (task,) = summary.tasks
    detail = task.detail or ""
    assert task.status == "failed" and "worker 1 exited 1" in detail, detail
    assert provider.machines == {}


def test_a_gang_not_whole_in_time_fails_and_releases_what_it_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_EPOCH_S", "0")
    summary, provider = _run(tmp_path, gang_timeout_s=1.0, fail_acquire=True)
    (task,) = summary.tasks
    assert task.status == "failed"
    assert "only 1 of 2 nodes came free in time" in (task.detail or ""), task.detail
    assert len([c for c in provider.calls if c[0] == "release"]) == 1  # the one acquired
    assert provider.machines == {}
