"""The end of every run sweeps by the run's tags (issue 13, point 1): a machine whose launch
failed before its id was journalled (RunInstances answered, then the describe failed, or the
answer was lost) is still torn down."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra.errors import ProviderError
from infra.provider import MachineRequest
from orchestrator.engine import Engine, EngineConfig
from orchestrator.events import RecordingReporter
from orchestrator.plan import MachineOffer, make_plan
from orchestrator.specfile import parse_experiment
from orchestrator.state import Journal
from tests.fakes import FAKE_TRAINERS, FakeProvider


class SweepingProvider(FakeProvider):
    """A fake whose runs have a teardown (as AwsProvider's), recording each call."""

    def __init__(self, *, workspace_root: str) -> None:
        super().__init__(workspace_root=workspace_root)
        self.swept: list[str] = []

    def teardown_run(self, run_id: str) -> Any:  # a receipt: ok, render()
        self.swept.append(run_id)
        return Swept()


class Swept:
    """A receipt with nothing left behind."""

    ok = True

    def render(self) -> str:
        return "swept: nothing left"


def test_a_run_whose_every_launch_failed_is_still_swept_by_tags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_EPOCH_S", "0")
    exp = parse_experiment(
        "name: lost\njobs:\n  - trainer: mnist\n    optimizer: [sgd]\n    epochs: 1\n",
        "lost.yaml",
    )
    provider = SweepingProvider(workspace_root=str(tmp_path / "ws"))
    provider.fail_next_acquire(ProviderError("InvalidInstanceID.NotFound: injected"))
    offer = MachineOffer(MachineRequest(run_id="run-1", name="cpu"), slots=1, gpus=0)
    plan = make_plan(
        exp,
        spec_path="lost.yaml",
        run_id="run-1",
        provider=provider,
        offers=[offer],
    )
    journal = Journal.in_dir(tmp_path / "state")
    engine = Engine(
        provider=provider,
        journal=journal,
        reporter=RecordingReporter(),
        config=EngineConfig(runs_root=tmp_path / "runs", trainers_src=FAKE_TRAINERS),
    )
    engine.run(plan)
    assert all(not m.machine_id for m in journal.machines("run-1"))
    assert provider.swept == ["run-1"]
