from __future__ import annotations

from datetime import UTC, datetime

import pytest

from infra.provider import MachineRequest
from orchestrator.errors import BudgetError
from orchestrator.plan import MachineOffer, make_plan
from orchestrator.specfile import parse_experiment
from tests.fakes import FakeProvider

NOW = datetime(2026, 11, 27, tzinfo=UTC)


def _offer(name: str, gpus: int) -> MachineOffer:
    return MachineOffer(
        MachineRequest(run_id="r", name=name, gpus=gpus),
        slots=1,
        gpus=gpus,
        gpu_reason="" if gpus else f"{name} has no GPU",
    )


EXP = """
name: x
jobs:
  - trainer: mnist
    optimizer: [sgd, adam]
    device: [cpu, gpu]
"""


def test_gpu_tasks_are_skipped_with_the_reason_when_no_machine_has_a_gpu(tmp_path) -> None:
    exp = parse_experiment(EXP, "x.yaml")
    plan = make_plan(
        exp,
        spec_path="x.yaml",
        run_id="r",
        provider=FakeProvider(workspace_root=str(tmp_path), hourly_usd=0),
        offers=[_offer("local", 0)],
    )
    skipped = {t.task.id: t.skip_reason for t in plan.tasks if t.skip_reason}
    assert set(skipped) == {"mnist-tensorflow-sgd-gpu", "mnist-tensorflow-adam-gpu"}
    assert all("no GPU" in r for r in skipped.values())
    assert len(plan.runnable) == 2


def test_by_device_placement_and_forecast_basis(tmp_path) -> None:
    exp = parse_experiment(EXP, "x.yaml")
    history = {("mnist-tensorflow-sgd-cpu", "cpu"): [60.0, 120.0, 90.0]}
    plan = make_plan(
        exp,
        spec_path="x.yaml",
        run_id="r",
        provider=FakeProvider(workspace_root=str(tmp_path), hourly_usd=2.0),
        offers=[_offer("cpu", 0), _offer("gpu", 1)],
        history=lambda t, m: history.get((t, m), []),
    )
    where = {t.task.id: t.machines for t in plan.tasks}
    assert where["mnist-tensorflow-sgd-cpu"] == ("cpu",)
    assert where["mnist-tensorflow-sgd-gpu"] == ("gpu",)
    sgd = next(t for t in plan.tasks if t.task.id == "mnist-tensorflow-sgd-cpu")
    assert sgd.estimate_s == 90.0 and sgd.estimate_basis == "from 3 past run(s)"
    # cpu: 90 s + 600 s default + 5 min boot; gpu: 2 x 600 s + boot; all at $2/h
    expected = 2.0 * ((90 + 600 + 300) + (1200 + 300)) / 3600
    assert plan.forecast_usd == pytest.approx(expected)


def test_forecast_over_the_cap_is_refused(tmp_path) -> None:
    exp = parse_experiment(EXP + "budget:\n  max_usd: 0.5\n", "x.yaml")
    with pytest.raises(BudgetError) as info:
        make_plan(
            exp,
            spec_path="x.yaml",
            run_id="r",
            provider=FakeProvider(workspace_root=str(tmp_path), hourly_usd=3.0),
            offers=[_offer("cpu", 0), _offer("gpu", 1)],
        )
    assert info.value.exit_code == 2
    assert "over the budget cap $0.50" in str(info.value)
