"""AwsProvider against moto: what our code asked EC2 for, and what it left behind."""

from __future__ import annotations

import base64
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.aws.context import Waits
from infra.aws.provider import AwsProvider
from infra.aws.requests import SELF_GROUP
from infra.errors import CapacityError, LaunchTimeout, ProviderError, QuotaError
from infra.provider import Provider
from tests.infra.aws.conftest import FakeClock, FakeSsh, fail_call, machine_request


def _instances(ec2: Any, *states: str) -> list[dict[str, Any]]:
    states = states or ("pending", "running")
    pages = ec2.describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": list(states)}]
    )
    return [i for r in pages["Reservations"] for i in r["Instances"]]


def test_is_a_provider(provider: AwsProvider) -> None:
    assert isinstance(provider, Provider)


def test_prepare_creates_nothing_and_redacts(provider: AwsProvider, ec2: Any) -> None:
    launch = provider.prepare(machine_request(types=("t3.micro", "t3.small"), spot="preferred"))
    assert [c.name for c in launch.calls] == [
        "ec2.import_key_pair",
        "ec2.create_security_group",
        "ec2.authorize_security_group_ingress",
        "ec2.run_instances",
    ]
    run = launch.calls[-1].kwargs
    assert run["InstanceType"] == "t3.micro" and "InstanceMarketOptions" in run
    assert run["UserData"].startswith("<cloud-config: shutdown -h at 2030-01-01T14:00:00Z")
    rendered = launch.render()
    assert "PRIVATE KEY" not in rendered and "0.0.0.0/0" not in rendered
    assert "t3.small on-demand" in launch.summary
    assert _instances(ec2) == []
    assert ec2.describe_key_pairs()["KeyPairs"] == []


def test_acquire_sends_a_locked_down_launch(
    provider: AwsProvider, ec2: Any, ssh: FakeSsh, tmp_path: Path
) -> None:
    seen = fail_call(ec2, "RunInstances", "never", when=lambda _: False)
    machine = provider.acquire(provider.prepare(machine_request()), token="tok-1")

    (params,) = seen
    assert params["MetadataOptions"]["HttpTokens"] == "required"
    assert params["InstanceInitiatedShutdownBehavior"] == "terminate"
    assert params["BlockDeviceMappings"][0]["Ebs"]["Encrypted"] is True
    user_data = yaml.safe_load(base64.b64decode(params["UserData"]))
    # The instance's own deadline: a systemd timer cloud-init writes (ami.userdata).
    timers = [f for f in user_data["write_files"] if f["path"].endswith("deadline.timer")]
    assert "OnCalendar=2030-01-01 14:00:00 UTC" in timers[0]["content"]
    assert user_data["ssh_keys"]["ed25519_public"] == machine.address.host_key  # type: ignore[union-attr]
    assert "AWS_SECRET" not in base64.b64decode(params["UserData"]).decode()

    (inst,) = _instances(ec2)
    tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
    assert tags["orchestrate:run"] == "run-1" and tags["orchestrate:machine"] == "cpu"
    assert tags["orchestrate:expires"] == "2030-01-01T14:00:00Z"
    assert tags["orchestrate:owner"] == "tester@example"
    volume_id = inst["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    vol = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
    assert {t["Key"]: t["Value"] for t in vol.get("Tags", [])}.get("orchestrate:run") == "run-1"

    groups = [g["GroupId"] for g in inst["NetworkInterfaces"][0]["Groups"]]
    (sg,) = ec2.describe_security_groups(GroupIds=groups)["SecurityGroups"]
    cidrs = [r["CidrIp"] for p in sg["IpPermissions"] for r in p["IpRanges"]]
    assert cidrs == ["203.0.113.7/32"]

    assert machine.address is not None and machine.address.user == "ubuntu"
    key = Path(machine.address.key_path or "")
    assert key.is_file() and stat.S_IMODE(key.stat().st_mode) == 0o600
    # One SSH answer, then the check that the instance's deadline timer is armed.
    assert ssh.commands[0] == ("true",) and "orchestrate-deadline.timer" in ssh.commands[1][2]
    assert len(ssh.commands) == 2 and ssh.closed == 1
    assert machine.cpus == 2


def test_same_token_never_makes_a_second_machine(provider: AwsProvider, ec2: Any) -> None:
    launch = provider.prepare(machine_request())
    first = provider.acquire(launch, token="tok-1")
    again = provider.acquire(launch, token="tok-1")
    assert again.id == first.id
    assert again.address is not None and again.address.host_key == first.address.host_key  # type: ignore[union-attr]
    other = provider.acquire(launch, token="tok-2")
    assert other.id != first.id
    assert len(_instances(ec2)) == 2
    assert (
        len(
            ec2.describe_security_groups(
                Filters=[{"Name": "group-name", "Values": ["orchestrate-run-1"]}]
            )["SecurityGroups"]
        )
        == 1
    )


def test_capacity_falls_back_to_next_type(provider: AwsProvider, ec2: Any) -> None:
    seen = fail_call(
        ec2,
        "RunInstances",
        "InsufficientInstanceCapacity",
        when=lambda p: p["InstanceType"] == "g4dn.xlarge",
    )
    machine = provider.acquire(
        provider.prepare(machine_request(types=("g4dn.xlarge", "g5.xlarge"))), token="t"
    )
    assert machine.instance_type == "g5.xlarge"
    tried = [p["InstanceType"] for p in seen]
    assert tried[-1] == "g5.xlarge" and tried.count("g4dn.xlarge") >= 2  # every zone first
    assert len({p["ClientToken"] for p in seen}) == len(seen)


def test_spot_quota_falls_back_to_on_demand(provider: AwsProvider, ec2: Any) -> None:
    fail_call(
        ec2,
        "RunInstances",
        "MaxSpotInstanceCountExceeded",
        when=lambda p: "InstanceMarketOptions" in p,
    )
    machine = provider.acquire(provider.prepare(machine_request(spot="preferred")), token="t")
    (inst,) = _instances(ec2)
    assert inst["InstanceId"] == machine.id and inst.get("InstanceLifecycle") != "spot"


def test_quota_message_names_the_quota(provider: AwsProvider, ec2: Any) -> None:
    fail_call(ec2, "RunInstances", "VcpuLimitExceeded")
    with pytest.raises(QuotaError, match="Running On-Demand G and VT instances"):
        provider.acquire(provider.prepare(machine_request(types=("g4dn.xlarge",))), token="t")
    assert _instances(ec2) == []


def test_all_capacity_gone_lists_what_was_tried(provider: AwsProvider, ec2: Any) -> None:
    fail_call(ec2, "RunInstances", "InsufficientInstanceCapacity")
    with pytest.raises(CapacityError, match=r"tried:\n  g4dn.xlarge on-demand in us-east-1a"):
        provider.acquire(provider.prepare(machine_request(types=("g4dn.xlarge",))), token="t")


def test_ssh_retries_with_backoff(
    make_provider: Callable[..., AwsProvider], clock: FakeClock, ec2: Any
) -> None:
    ssh = FakeSsh(fail_first=3)
    provider = make_provider(transport_factory=ssh)
    provider.acquire(provider.prepare(machine_request()), token="t")
    # Four SSH attempts (three refused), then the deadline-timer check on the fourth.
    assert ssh.commands.count(("true",)) == 4 and clock.sleeps == [1.0, 2.0, 4.0]


def test_timeout_releases_the_machine(make_provider: Callable[..., AwsProvider], ec2: Any) -> None:
    provider = make_provider(
        transport_factory=FakeSsh(fail_first=10_000), waits=Waits(launch_timeout_s=30, poll_s=1)
    )
    with pytest.raises(LaunchTimeout, match="terminated"):
        provider.acquire(provider.prepare(machine_request()), token="t")
    assert _instances(ec2) == []


def test_open_cidr_is_refused_before_anything(
    make_provider: Callable[..., AwsProvider], ec2: Any
) -> None:
    with pytest.raises(ProviderError, match="whole internet"):
        make_provider(ssh_cidr="0.0.0.0/0").prepare(machine_request())


def test_release_is_idempotent(provider: AwsProvider, ec2: Any) -> None:
    machine = provider.acquire(provider.prepare(machine_request()), token="t")
    provider.release(machine.id)
    provider.release(machine.id)
    provider.release("i-0123456789abcdef0")
    assert _instances(ec2) == []


def test_owned_sees_our_machines_only(provider: AwsProvider, ec2: Any) -> None:
    ours = provider.acquire(provider.prepare(machine_request("run-a")), token="a")
    provider.acquire(provider.prepare(machine_request("run-b")), token="b")
    ec2.run_instances(ImageId=_instances(ec2)[0]["ImageId"], MinCount=1, MaxCount=1)
    assert {m.id for m in provider.owned(run_id="run-a")} == {ours.id}
    assert len(provider.owned()) == 2
    found = provider.owned(run_id="run-a")[0]
    assert found.address is not None and found.address.host_key == ours.address.host_key  # type: ignore[union-attr]


def test_teardown_leaves_nothing(provider: AwsProvider, ec2: Any) -> None:
    launch = provider.prepare(machine_request())
    a = provider.acquire(launch, token="a")
    provider.acquire(launch, token="b")
    receipt = provider.teardown_run("run-1")
    assert receipt.ok
    states = {(i.kind, i.state) for i in receipt.items}
    assert ("instance", "terminated") in states and ("security-group", "deleted") in states
    assert ("key-pair", "deleted") in states and ("local-key", "deleted") in states
    assert _instances(ec2, "pending", "running", "stopping", "stopped") == []
    assert ec2.describe_key_pairs()["KeyPairs"] == []
    assert (
        ec2.describe_security_groups(Filters=[{"Name": "tag-key", "Values": ["orchestrate:run"]}])[
            "SecurityGroups"
        ]
        == []
    )
    assert not Path(a.address.key_path or "").exists()  # type: ignore[union-attr]
    again = provider.teardown_run("run-1")  # nothing left to do: it only reports final states
    assert again.ok and {(i.kind, i.state) for i in again.items} == {("instance", "terminated")}


def test_workers_reach_each_other_only_from_the_runs_own_group(
    provider: AwsProvider, ec2: Any
) -> None:
    """Issue 19: a nodes: N task's workers dial each other on free ports; the rule's source is
    the run's security group itself, never an address range."""
    launch = provider.prepare(machine_request())
    (authorize,) = [c for c in launch.calls if c.name == "ec2.authorize_security_group_ingress"]
    pairs = [p for r in authorize.kwargs["IpPermissions"] for p in r.get("UserIdGroupPairs", [])]
    assert [p["GroupId"] for p in pairs] == [SELF_GROUP]  # the dry-run shows the exact rule
    inst = provider.acquire(launch, token="t")
    groups = [
        g["GroupId"]
        for i in _instances(ec2)
        for g in i["NetworkInterfaces"][0]["Groups"]
        if i["InstanceId"] == inst.id
    ]
    (sg,) = ec2.describe_security_groups(GroupIds=groups)["SecurityGroups"]
    (rule,) = [p for p in sg["IpPermissions"] if p.get("UserIdGroupPairs")]
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 32768, 60999)
    assert [p["GroupId"] for p in rule["UserIdGroupPairs"]] == [sg["GroupId"]]
    assert rule.get("IpRanges", []) == [] and rule.get("Ipv6Ranges", []) == []
    ssh = [p for p in sg["IpPermissions"] if p.get("FromPort") == 22]
    assert ssh and not any(p.get("UserIdGroupPairs") for p in ssh)  # SSH stays CIDR-only
