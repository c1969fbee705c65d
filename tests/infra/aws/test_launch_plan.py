"""``prepare`` returns the launch plan ``acquire`` executes as is (issue 15, point 1): nothing
``prepare`` looked up (the image, the VPC and its subnets, the offerings) is looked up again,
counted on the real clients' calls against moto."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

from infra.aws.provider import AwsProvider
from infra.provider import LaunchRequest
from tests.infra.aws.conftest import machine_request

PREPARED = {
    "ec2.DescribeImages",
    "ec2.DescribeVpcs",
    "ec2.DescribeSubnets",
    "ec2.DescribeInstanceTypeOfferings",
    "ssm.GetParameter",
}


def _count(*clients: Any) -> Counter[str]:
    calls: Counter[str] = Counter()

    def seen(model: Any, **_: Any) -> None:
        calls[f"{model.service_model.endpoint_prefix}.{model.name}"] += 1

    for client in clients:
        client.meta.events.register("before-call.*.*", seen)
    return calls


def test_acquire_makes_no_lookup_that_prepare_made(
    provider: AwsProvider, ec2: Any, ssm: Any
) -> None:
    calls = _count(ec2, ssm)
    launch = provider.prepare(machine_request(types=("t3.micro", "t3.small"), spot="preferred"))
    prepared = Counter({k: v for k, v in calls.items() if k in PREPARED})
    assert prepared["ec2.DescribeImages"] >= 1 and prepared["ec2.DescribeVpcs"] == 1
    assert prepared["ec2.DescribeInstanceTypeOfferings"] == 1
    calls.clear()
    provider.acquire(launch, token="tok-plan")
    assert {k: v for k, v in calls.items() if k in PREPARED} == {}
    assert calls["ec2.RunInstances"] == 1


def test_a_request_made_elsewhere_is_planned_at_acquire(provider: AwsProvider, ec2: Any) -> None:
    """An offline plan (no credentials then) carries no resolved plan: acquire resolves it."""
    offline = LaunchRequest("aws", machine_request(), (), 0.0, "offline")
    calls = _count(ec2)
    machine = provider.acquire(offline, token="tok-offline")
    assert machine.id.startswith("i-") and calls["ec2.DescribeVpcs"] == 1


def test_a_plan_for_another_request_is_not_reused(provider: AwsProvider, ec2: Any) -> None:
    launch = provider.prepare(machine_request(types=("t3.micro",)))
    other = replace(launch, request=machine_request(types=("t3.small",)))
    machine = provider.acquire(other, token="tok-other")
    assert machine.instance_type == "t3.small"
