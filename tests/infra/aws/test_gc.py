"""Orphan sweep: resources tagged with a run the journal does not know, or past expiry, go."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from infra.aws.gc import Sweeper, collect_garbage
from infra.aws.provider import AwsProvider
from tests.infra.aws.conftest import START, FakeClock, machine_request


def _live(ec2: Any) -> set[str]:
    pages = ec2.describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    )
    return {i["InstanceId"] for r in pages["Reservations"] for i in r["Instances"]}


def test_orphan_is_removed_and_live_run_kept(
    provider: AwsProvider, ec2: Any, clock: FakeClock
) -> None:
    live = provider.acquire(provider.prepare(machine_request("run-live")), token="a")
    orphan = provider.acquire(provider.prepare(machine_request("run-crashed")), token="b")
    sweeper = Sweeper(ec2, region="us-east-1", sleep=clock.sleep, monotonic=clock.monotonic)

    dry = collect_garbage(
        ec2,
        owner=None,
        region="us-east-1",
        live_runs={"run-live"},
        now=START,
        dry_run=True,
        sweeper=sweeper,
    )
    assert {(i.kind, i.state) for i in dry.items if i.run_id == "run-crashed"} == {
        ("instance", "would delete"),
        ("volume", "would delete"),
        ("security-group", "would delete"),
        ("key-pair", "would delete"),
    }
    assert _live(ec2) == {live.id, orphan.id}

    receipt = collect_garbage(
        ec2, owner=None, region="us-east-1", live_runs={"run-live"}, now=START, sweeper=sweeper
    )
    assert receipt.ok and _live(ec2) == {live.id}
    gone = {i.kind for i in receipt.items if i.run_id == "run-crashed" and i.state != "kept"}
    assert gone == {"instance", "volume", "security-group", "key-pair"}
    assert all(i.state == "kept" for i in receipt.items if i.run_id == "run-live")
    assert "not live in the journal" in receipt.render()
    names = [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]]
    assert names == ["orchestrate-run-live"]


def test_expired_machine_goes_even_if_its_run_is_live(
    provider: AwsProvider, ec2: Any, clock: FakeClock
) -> None:
    provider.acquire(provider.prepare(machine_request("run-long", hours=1)), token="a")
    sweeper = Sweeper(ec2, region="us-east-1", sleep=clock.sleep, monotonic=clock.monotonic)
    receipt = collect_garbage(
        ec2,
        owner=None,
        region="us-east-1",
        live_runs={"run-long"},
        now=START + timedelta(hours=2),
        sweeper=sweeper,
    )
    (instance,) = [i for i in receipt.items if i.kind == "instance"]
    assert instance.state == "terminated" and instance.reason.startswith("expired at")
    assert _live(ec2) == set()


def test_untagged_resources_are_never_touched(ec2: Any) -> None:
    image = ec2.describe_images(Owners=["099720109477"])["Images"][0]["ImageId"]
    ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)
    receipt = collect_garbage(ec2, owner=None, region="us-east-1", live_runs=set(), now=START)
    assert receipt.items == () and len(_live(ec2)) == 1
