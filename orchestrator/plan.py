"""Experiment -> Plan: which tasks run where, what will be launched, what it should cost.

Pure: no machine is touched and no credential is needed; ``plan`` and ``run --dry-run`` print
exactly the ``LaunchRequest`` objects ``run`` will send (TorchX's dry-run-first shape).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from infra.aws.facts import DEFAULT_REGION
from infra.errors import PlacementError
from infra.prices import PriceSource, dearest
from infra.provider import LaunchRequest, MachineRequest, Provider
from orchestrator.errors import BudgetError, SpecError, SpecIssue
from orchestrator.matrix import Task, expand
from orchestrator.resources import TypeChoice
from orchestrator.spec import Experiment
from orchestrator.workdir import WorkdirSelection

DEFAULT_TASK_MINUTES = 10.0  # a guess for tasks never run before; each figure shows its basis
BOOT_MINUTES = 5.0  # launch + bootstrap overhead per cloud machine, billed like training


@dataclass(frozen=True)
class MachineSlot:
    """One machine the run will hold, and how many tasks it runs at once."""

    name: str
    launch: LaunchRequest
    slots: int = 1
    gpus: int = 0


@dataclass(frozen=True)
class PlannedTask:
    task: Task
    machines: tuple[str, ...]  # eligible machines; empty when skipped
    skip_reason: str | None = None
    estimate_s: float | None = None
    estimate_basis: str = "default guess"


@dataclass(frozen=True)
class Plan:
    experiment: Experiment
    spec_path: str
    run_id: str
    provider: str
    machines: tuple[MachineSlot, ...]
    tasks: tuple[PlannedTask, ...]
    forecast_usd: float
    forecast_hours: Mapping[str, float] = field(default_factory=dict)
    workdir: WorkdirSelection | None = None  # files shipped for ``run:`` jobs
    type_choices: tuple[TypeChoice, ...] = ()  # how gpu:/cpus:/memory: asks became types

    @property
    def runnable(self) -> list[PlannedTask]:
        """The tasks that will run (not skipped)."""
        return [t for t in self.tasks if t.skip_reason is None]

    def to_json(self) -> dict[str, Any]:
        """The plan as ``plan --json`` prints it."""
        return {
            "run_id": self.run_id,
            "experiment": self.experiment.name,
            "provider": self.provider,
            "forecast_usd": round(self.forecast_usd, 4),
            "type_choices": [c.to_json() for c in self.type_choices],
            "budget_usd": self.experiment.budget.max_usd,
            "machines": [
                {
                    "name": m.name,
                    "slots": m.slots,
                    "gpus": m.gpus,
                    "hourly_usd": m.launch.hourly_usd,
                    "expected_hours": round(self.forecast_hours.get(m.name, 0.0), 4),
                    "summary": m.launch.summary,
                    "calls": [{"call": c.name, "kwargs": c.kwargs} for c in m.launch.calls],
                }
                for m in self.machines
            ],
            "tasks": [
                {
                    "id": t.task.id,
                    "trainer": t.task.trainer,
                    "framework": t.task.framework,
                    "device": t.task.device,
                    "params": dict(t.task.params),
                    "machines": list(t.machines),
                    "nodes": t.task.nodes,  # > 1: that many of the machines at once
                    "status": "skipped" if t.skip_reason else "planned",
                    "skip_reason": t.skip_reason,
                    "estimate_s": t.estimate_s,
                    "estimate_basis": t.estimate_basis,
                }
                for t in self.tasks
            ],
        }


@dataclass(frozen=True)
class MachineOffer:
    """What placement needs to know of a machine before it exists."""

    request: MachineRequest
    slots: int
    gpus: int
    gpu_reason: str = ""
    machine_class: str = ""  # a replica's class (``cpu`` for ``cpu-2``); "" = its own name


def make_plan(
    exp: Experiment,
    *,
    spec_path: str,
    run_id: str,
    provider: Provider,
    offers: list[MachineOffer],
    history: Callable[[str, str], list[float]] | None = None,
    prices: PriceSource | None = None,
    enforce_budget: bool = True,
) -> Plan:
    """Place every task on the machines offered and forecast the cost.

    Rules:
      1. A gpu task goes only to machines with GPUs; with none it is skipped, with the reason.
      2. ``placement: by-device`` sends cpu tasks to the machine class named ``cpu`` and gpu
         tasks to ``gpu`` when those classes exist; otherwise any fitting machine takes them.
      3. ``same-machine`` puts every task on the GPU machine(s) (cpu runs with GPUs hidden).
      4. Forecast = hourly price x expected hours per machine; over ``budget.max_usd`` raises
         ``BudgetError`` before anything exists.
      5. A class offered as several replicas (a ``nodes: N`` gang needs N machines at once,
         ``orchestrator.offers``) places like the class; a gang task keeps N of its machines
         busy for its whole estimate.
    """
    tasks = expand(exp)
    by_name = {o.request.name: o for o in offers}

    def of_class(name: str) -> list[str]:
        return [o.request.name for o in offers if (o.machine_class or o.request.name) == name]

    gpu_names = [o.request.name for o in offers if o.gpus > 0]
    planned: list[PlannedTask] = []
    for task in tasks:
        if task.device == "gpu":
            eligible = gpu_names
            if exp.placement == "by-device" and "gpu" in by_name:
                eligible = of_class("gpu") if by_name["gpu"].gpus > 0 else []
        elif exp.placement == "same-machine" and gpu_names:
            eligible = gpu_names
        elif exp.placement == "by-device" and "cpu" in by_name:
            eligible = of_class("cpu")
        else:
            eligible = [o.request.name for o in offers]
        reason = None
        if not eligible:
            reasons = {o.gpu_reason for o in offers if o.gpu_reason} or {"no machine has a GPU"}
            reason = "; ".join(sorted(reasons))
        past = history(task.id, eligible[0]) if history and eligible else []
        if past:
            est, basis = statistics.median(past), f"from {len(past)} past run(s)"
        else:
            est, basis = DEFAULT_TASK_MINUTES * 60, "default guess"
        planned.append(PlannedTask(task, tuple(eligible), reason, est, basis))

    # Expected busy time per machine: its share of each task's estimate, over its slots.
    seconds: dict[str, float] = {o.request.name: 0.0 for o in offers}
    for pt in planned:
        if pt.skip_reason is None and pt.estimate_s is not None:
            busy = min(max(pt.task.nodes, 1), len(pt.machines))  # rule 5
            share = pt.estimate_s * busy / len(pt.machines)
            for name in pt.machines:
                seconds[name] += share / max(by_name[name].slots, 1)
    used = {name for pt in planned if pt.skip_reason is None for name in pt.machines}
    slots: list[MachineSlot] = []
    hours: dict[str, float] = {}
    forecast = 0.0
    for offer in offers:
        if offer.request.name not in used:
            continue
        try:
            launch = provider.prepare(offer.request)
        except PlacementError as exc:  # no default VPC, an unknown subnet or zone: bad input
            raise _located(spec_path, exc) from exc
        if prices is not None and offer.request.instance_types:
            # The dearest type this machine may fall back to: the forecast must not be low.
            price = dearest(
                prices,
                offer.request.instance_types,
                offer.request.region or DEFAULT_REGION,
                spot=offer.request.spot != "no",
            )
            if price is not None:
                launch = replace(launch, hourly_usd=price)
        boot = BOOT_MINUTES * 60 if launch.hourly_usd > 0 else 0.0
        h = (seconds[offer.request.name] + boot) / 3600
        cap_h = exp.budget.max_hours
        h = min(h, cap_h)  # the instance deadline stops it there whatever happens
        hours[offer.request.name] = h
        forecast += h * launch.hourly_usd
        slots.append(MachineSlot(offer.request.name, launch, offer.slots, offer.gpus))
    cap = exp.budget.max_usd
    if enforce_budget and cap is not None and forecast > cap:
        raise BudgetError(forecast, cap)
    # The provider that will really serve it: `run --local` on an aws file is a local run.
    return Plan(
        exp, spec_path, run_id, provider.name, tuple(slots), tuple(planned), forecast, hours
    )


def _located(spec_path: str, exc: PlacementError) -> SpecError:
    """The provider's placement refusal, pointed at the key of the file it concerns."""
    from pathlib import Path

    from orchestrator.specfile import located

    if Path(spec_path).is_file():
        return located(Path(spec_path), [(exc.where, str(exc), exc.hint)])
    where = ".".join(str(p) for p in exc.where)
    return SpecError([SpecIssue(spec_path, 1, 1, where, str(exc), exc.hint or None)])


def deadline_for(exp: Experiment, now: datetime) -> datetime:
    """The time every machine of a run must be gone by (the budget's ``max_hours``)."""
    return now + timedelta(hours=exp.budget.max_hours)
