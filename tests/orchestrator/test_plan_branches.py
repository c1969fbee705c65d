"""make_plan, branch by branch (issue 15, point 7): each rule of its docstring, and the
forecast's parts (which machines are launched at all, boot time, the hour cap, the dearest
fallback's price)."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.provider import MachineRequest
from orchestrator.errors import BudgetError
from orchestrator.plan import BOOT_MINUTES, DEFAULT_TASK_MINUTES, MachineOffer, make_plan
from orchestrator.specfile import parse_experiment
from tests.fakes import FakeProvider

GUESS_S = DEFAULT_TASK_MINUTES * 60
BOOT_S = BOOT_MINUTES * 60


def _offer(name: str, gpus: int, *, slots: int = 1, types: tuple[str, ...] = ()) -> MachineOffer:
    request = MachineRequest(run_id="r", name=name, gpus=gpus, instance_types=types)
    return MachineOffer(request, slots=slots, gpus=gpus, gpu_reason="" if gpus else f"{name}: none")


def _exp(extra: str = "", devices: str = "[cpu, gpu]") -> str:
    job = f"  - trainer: pca\n    framework: [tensorflow]\n    device: {devices}\n"
    return f"name: x\njobs:\n{job}{extra}"


def _plan(text: str, offers: list[MachineOffer], tmp_path: Path, **kwargs: object):  # type: ignore[no-untyped-def]
    provider = kwargs.pop("provider", None) or FakeProvider(
        workspace_root=str(tmp_path), hourly_usd=1.0
    )
    return make_plan(
        parse_experiment(text, "x.yaml"),
        spec_path="x.yaml",
        run_id="r",
        provider=provider,  # type: ignore[arg-type]
        offers=offers,
        **kwargs,  # type: ignore[arg-type]
    )


def _where(plan) -> dict[str, tuple[str, ...]]:  # type: ignore[no-untyped-def]
    return {pt.task.id: pt.machines for pt in plan.tasks}


def test_rule_2_by_device_without_classes_of_those_names_lets_any_fitting_machine_take_them(
    tmp_path: Path,
) -> None:
    plan = _plan(_exp(), [_offer("a", 0), _offer("b", 1)], tmp_path)
    assert _where(plan) == {"pca-tensorflow-cpu": ("a", "b"), "pca-tensorflow-gpu": ("b",)}


def test_rule_2_a_gpu_class_without_gpus_skips_gpu_tasks(tmp_path: Path) -> None:
    plan = _plan(_exp(), [_offer("cpu", 0), _offer("gpu", 0)], tmp_path)
    skipped = {pt.task.id: pt.skip_reason for pt in plan.tasks if pt.skip_reason}
    assert list(skipped) == ["pca-tensorflow-gpu"] and "none" in skipped["pca-tensorflow-gpu"]


def test_rule_3_same_machine_puts_cpu_tasks_on_the_gpu_machines(tmp_path: Path) -> None:
    plan = _plan(_exp("placement: same-machine\n"), [_offer("cpu", 0), _offer("gpu", 1)], tmp_path)
    assert _where(plan) == {"pca-tensorflow-cpu": ("gpu",), "pca-tensorflow-gpu": ("gpu",)}
    assert [s.name for s in plan.machines] == ["gpu"]  # the idle cpu class is never launched


def test_rule_3_same_machine_without_gpus_falls_back_to_any_machine(tmp_path: Path) -> None:
    plan = _plan(_exp("placement: same-machine\n", "[cpu]"), [_offer("a", 0)], tmp_path)
    assert _where(plan) == {"pca-tensorflow-cpu": ("a",)}


def test_rule_4_forecast_counts_boot_and_slots_and_the_hour_cap(tmp_path: Path) -> None:
    two_slots = _plan(_exp(devices="[cpu]"), [_offer("a", 0, slots=2)], tmp_path)
    assert two_slots.forecast_usd == pytest.approx((GUESS_S / 2 + BOOT_S) / 3600 * 1.0)
    capped = _plan(
        _exp("budget:\n  max_hours: 0.1\n", "[cpu]"), [_offer("a", 0)], tmp_path
    )  # 10 min of work + 5 of boot, but the machine's deadline is at 6 minutes
    assert capped.forecast_hours["a"] == pytest.approx(0.1)
    assert capped.forecast_usd == pytest.approx(0.1)


def test_rule_4_a_free_machine_costs_no_boot(tmp_path: Path) -> None:
    free = FakeProvider(workspace_root=str(tmp_path), hourly_usd=0.0)
    plan = _plan(_exp(devices="[cpu]"), [_offer("a", 0)], tmp_path, provider=free)
    assert plan.forecast_usd == 0.0 and plan.forecast_hours["a"] == pytest.approx(GUESS_S / 3600)


class Prices:
    """A catalog that knows two of three types."""

    def hourly_usd(self, instance_type: str, region: str, *, spot: bool) -> float | None:
        return {"small": 1.0, "big": 4.0}.get(instance_type)


def test_rule_4_the_forecast_prices_the_dearest_fallback(tmp_path: Path) -> None:
    offer = _offer("a", 0, types=("small", "big", "unknown"))
    plan = _plan(_exp(devices="[cpu]"), [offer], tmp_path, prices=Prices())
    assert plan.machines[0].launch.hourly_usd == 4.0
    assert plan.forecast_usd == pytest.approx((GUESS_S + BOOT_S) / 3600 * 4.0)


def test_rule_4_enforce_budget_false_plans_over_the_cap(tmp_path: Path) -> None:
    over = _exp("budget:\n  max_usd: 0.01\n", "[cpu]")
    with pytest.raises(BudgetError):
        _plan(over, [_offer("a", 0)], tmp_path)
    plan = _plan(over, [_offer("a", 0)], tmp_path, enforce_budget=False)
    assert plan.forecast_usd > 0.01
