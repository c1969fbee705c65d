"""EC2's eventual consistency (issue 13, point 1): a NotFound right after a create is retried
with bounded backoff; a NotFound from TerminateInstances is confirmed by a describe; teardown
finds the run's instances by tag. Errors are injected on the first call(s) only; the rest is
moto's stateful EC2."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from infra.aws.consistency import Backoff, until_visible
from infra.aws.provider import AwsProvider
from infra.errors import ProviderError
from tests.infra.aws.conftest import TEST_SPEC, FakeClock, fail_call, machine_request


def _state(ec2: Any, instance_id: str) -> str:
    inst = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return str(inst["State"]["Name"])


def _by_id(params: dict[str, Any]) -> bool:
    return "InstanceIds" in params


def test_backoff_is_bounded() -> None:
    assert Backoff(first_s=1, max_s=8, total_s=30).delays() == [1, 2, 4, 8, 8]
    assert sum(Backoff().delays()) <= Backoff().total_s


def test_until_visible_retries_only_the_named_codes(clock: FakeClock) -> None:
    calls: list[int] = []

    def boom() -> None:
        calls.append(1)
        raise ValueError("not an AWS error")

    with pytest.raises(ValueError):
        until_visible(boom, codes=frozenset({"InvalidGroup.NotFound"}), sleep=clock.sleep)
    assert calls == [1] and clock.sleeps == []


def test_describe_not_found_right_after_run_instances_is_retried(
    provider: AwsProvider, ec2: Any, clock: FakeClock
) -> None:
    seen = fail_call(ec2, "DescribeInstances", "InvalidInstanceID.NotFound", when=_by_id, times=2)
    machine = provider.acquire(provider.prepare(machine_request()), token="tok-ec")
    assert _state(ec2, machine.id) == "running"
    assert len([p for p in seen if _by_id(p)]) >= 3
    assert clock.sleeps[:2] == [1.0, 2.0]


def test_a_not_found_that_never_clears_fails_after_the_backoff_and_releases(
    make_provider: Callable[..., AwsProvider], ec2: Any, clock: FakeClock
) -> None:
    provider = make_provider()
    fail_call(ec2, "DescribeInstances", "InvalidInstanceID.NotFound", when=_by_id)
    with pytest.raises(ProviderError, match=r"InvalidInstanceID\.NotFound"):
        provider.acquire(provider.prepare(machine_request()), token="tok-gone")
    assert sum(clock.sleeps) <= 2 * provider.waits.not_found.total_s
    live = ec2.describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    )["Reservations"]
    assert live == []


def test_authorize_ingress_right_after_create_group_is_retried(
    provider: AwsProvider, ec2: Any, clock: FakeClock
) -> None:
    fail_call(ec2, "AuthorizeSecurityGroupIngress", "InvalidGroup.NotFound", times=2)
    machine = provider.acquire(provider.prepare(machine_request()), token="tok-sg")
    inst = ec2.describe_instances(InstanceIds=[machine.id])["Reservations"][0]["Instances"][0]
    group_id = inst["NetworkInterfaces"][0]["Groups"][0]["GroupId"]
    (group,) = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    assert [r["CidrIp"] for p in group["IpPermissions"] for r in p["IpRanges"]] == [
        "203.0.113.7/32"
    ]
    assert clock.sleeps[:2] == [1.0, 2.0]


def test_not_found_from_terminate_is_confirmed_by_describe(provider: AwsProvider, ec2: Any) -> None:
    machine = provider.acquire(provider.prepare(machine_request()), token="tok-t")
    fail_call(ec2, "TerminateInstances", "InvalidInstanceID.NotFound", times=1)
    fail_call(ec2, "DescribeInstances", "InvalidInstanceID.NotFound", when=_by_id, times=1)
    provider.release(machine.id)
    assert _state(ec2, machine.id) in ("shutting-down", "terminated")


def test_release_of_an_id_ec2_never_knew_gives_up_after_the_backoff(
    provider: AwsProvider, clock: FakeClock
) -> None:
    provider.release("i-0123456789abcdef0")
    assert 0 < sum(clock.sleeps) <= provider.waits.not_found.total_s


def test_teardown_terminates_despite_a_not_found_from_terminate(
    provider: AwsProvider, ec2: Any
) -> None:
    machine = provider.acquire(provider.prepare(machine_request()), token="tok-td")
    fail_call(ec2, "TerminateInstances", "InvalidInstanceID.NotFound", times=1)
    receipt = provider.teardown_run("run-1")
    assert receipt.ok, receipt.render()
    assert _state(ec2, machine.id) == "terminated"


def test_teardown_finds_an_instance_the_journal_never_recorded(
    provider: AwsProvider, ec2: Any
) -> None:
    image = provider.resolve_image(TEST_SPEC)
    stray = ec2.run_instances(
        ImageId=image.ami_id,
        InstanceType="t3.micro",
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "orchestrate:run", "Value": "run-1"}]}
        ],
    )["Instances"][0]["InstanceId"]
    receipt = provider.teardown_run("run-1")
    assert [i.id for i in receipt.items if i.kind == "instance"] == [stray]
    assert _state(ec2, stray) == "terminated"
