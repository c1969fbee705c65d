"""Gang placement at plan time on AWS (issue 19): a ``nodes: N`` job needs N instances of its
machine class at once, so the class is offered as N replicas (``cpu``, ``cpu-2``), each its own
launch, and the forecast keeps all N busy for the task's estimate."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from infra.prices import Catalog
from orchestrator.offers import OfflinePlanning, build_provider
from orchestrator.plan import BOOT_MINUTES, DEFAULT_TASK_MINUTES, make_plan
from orchestrator.specfile import parse_experiment

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
SPEC = """
name: gang-aws
provider: aws
region: us-east-1
ssh_cidr: 203.0.113.7/32
budget: {max_usd: 50, max_hours: 4}
machines:
  cpu: {instance_type: t3.large, ami: ami-12345678}
  gpu: {instance_type: g4dn.xlarge, ami: ami-12345678}
jobs:
  - trainer: mnist
    optimizer: [adam, sgd]
    nodes: 3
  - trainer: mnist
    device: gpu
"""


def test_a_gang_class_is_offered_as_n_instances_and_each_is_forecast_busy(
    tmp_path: Path,
) -> None:
    prices = Catalog(NOW.date(), {"us-east-1": {"t3.large": 0.1, "g4dn.xlarge": 0.5}}, 0.0, {}, "t")
    exp = parse_experiment(SPEC, "x.yaml")
    setup = build_provider(exp, run_id="r", state_dir=tmp_path, local=False, now=NOW, prices=prices)
    plan = make_plan(
        exp,
        spec_path="x.yaml",
        run_id="r",
        provider=OfflinePlanning(setup.provider),
        offers=setup.offers,
        prices=prices,
    )
    names = [m.name for m in plan.machines]
    assert names == ["cpu", "cpu-2", "cpu-3", "gpu"]  # the gpu class has no gang: one
    tags = {m.name: m.launch.request.tags["orchestrate:machine"] for m in plan.machines}
    assert tags == {n: n for n in names}  # each replica is its own, findable machine
    where = {pt.task.id: pt.machines for pt in plan.tasks}
    assert where["mnist-tensorflow-adam-cpu"] == ("cpu", "cpu-2", "cpu-3")
    assert where["mnist-tensorflow-gpu"] == ("gpu",)
    # Two gang tasks, each keeping all three cpu machines busy for the default estimate.
    expected = (2 * DEFAULT_TASK_MINUTES + BOOT_MINUTES) / 60
    assert all(abs(plan.forecast_hours[n] - expected) < 1e-9 for n in names[:3])
    assert abs(plan.forecast_hours["gpu"] - (DEFAULT_TASK_MINUTES + BOOT_MINUTES) / 60) < 1e-9
