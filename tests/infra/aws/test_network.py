"""Network (issue 13, point 5): the public address is asked for explicitly; a subnet or VPC may
be named, and machines reached at their private address (a VPN); ``zones`` limits the capacity
fallback; an account without a default VPC is a located exit 2 at plan, not a 900 s wait.
moto's stateful EC2."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from infra.aws.provider import AwsProvider
from infra.errors import PlacementError
from infra.provider import Address
from infra.registry import AwsConfig, config_from_json, config_to_json
from orchestrator.cli import main
from orchestrator.errors import SpecError
from orchestrator.offers import build_provider
from orchestrator.specfile import parse_experiment
from tests.infra.aws.conftest import START, fail_call, machine_request


def _nic(params: Mapping[str, Any]) -> dict[str, Any]:
    (nic,) = params["NetworkInterfaces"]
    return dict(nic)


def test_the_public_address_is_asked_for_explicitly(provider: AwsProvider, ec2: Any) -> None:
    seen = fail_call(ec2, "RunInstances", "never", when=lambda _: False)
    provider.acquire(provider.prepare(machine_request()), token="pub")
    nic = _nic(seen[-1])
    assert nic["AssociatePublicIpAddress"] is True and nic["DeviceIndex"] == 0
    assert nic["SubnetId"].startswith("subnet-") and nic["Groups"][0].startswith("sg-")
    assert "SecurityGroupIds" not in seen[-1] and "SubnetId" not in seen[-1]


def _vpc_with_subnets(ec2: Any, *zones: str) -> tuple[str, list[str]]:
    vpc = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.7.{i}.0/24", AvailabilityZone=zone)["Subnet"][
            "SubnetId"
        ]
        for i, zone in enumerate(zones)
    ]
    return vpc, subnets


def test_a_named_subnet_and_private_addresses(
    make_provider: Callable[..., AwsProvider], ec2: Any
) -> None:
    vpc, (subnet,) = _vpc_with_subnets(ec2, "us-east-1c")
    provider = make_provider(subnet_id=subnet, use_private_ip=True)
    seen = fail_call(ec2, "RunInstances", "never", when=lambda _: False)
    machine = provider.acquire(provider.prepare(machine_request()), token="priv")
    nic = _nic(seen[-1])
    assert nic["SubnetId"] == subnet and nic["AssociatePublicIpAddress"] is False
    inst = ec2.describe_instances(InstanceIds=[machine.id])["Reservations"][0]["Instances"][0]
    assert inst["VpcId"] == vpc
    assert machine.address is not None and machine.address.host == inst["PrivateIpAddress"]
    (group,) = ec2.describe_security_groups(GroupIds=nic["Groups"])["SecurityGroups"]
    assert group["VpcId"] == vpc


def test_a_named_vpc_and_zones_limit_the_fallback(
    make_provider: Callable[..., AwsProvider], ec2: Any
) -> None:
    vpc, subnets = _vpc_with_subnets(ec2, "us-east-1a", "us-east-1b", "us-east-1d")
    provider = make_provider(vpc_id=vpc)
    request = replace(machine_request(types=("t3.micro", "t3.small")), zones=("us-east-1b",))
    launch = provider.prepare(request)
    assert "across 1 zone(s)" in launch.summary
    run = launch.calls[-1].kwargs
    assert _nic(run)["SubnetId"] == subnets[1]


def test_an_unknown_zone_points_at_its_key(provider: AwsProvider) -> None:
    request = replace(machine_request(), zones=("us-east-1a", "mars-1a"))
    with pytest.raises(PlacementError) as caught:
        provider.prepare(request)
    assert caught.value.exit_code == 2
    assert caught.value.where == ("machines", "cpu", "zones", 1)


def test_an_unknown_subnet_is_refused(make_provider: Callable[..., AwsProvider]) -> None:
    provider = make_provider(subnet_id="subnet-0123456789abcdef0")
    with pytest.raises(PlacementError, match="no subnet subnet-0123456789abcdef0"):
        provider.prepare(machine_request())


def _drop_default_vpc(ec2: Any) -> None:
    (vpc,) = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    vpc_id = vpc["VpcId"]
    for subnet in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]:
        ec2.delete_subnet(SubnetId=subnet["SubnetId"])
    for igw in ec2.describe_internet_gateways(
        Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}]
    )["InternetGateways"]:
        ec2.detach_internet_gateway(InternetGatewayId=igw["InternetGatewayId"], VpcId=vpc_id)
        ec2.delete_internet_gateway(InternetGatewayId=igw["InternetGatewayId"])
    ec2.delete_vpc(VpcId=vpc_id)


def test_no_default_vpc_is_a_located_exit_2_at_plan(
    tmp_path: Path, ec2: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _drop_default_vpc(ec2)
    spec = tmp_path / "novpc.yaml"
    spec.write_text(
        "name: novpc\nprovider: aws\nregion: us-east-1\nssh_cidr: 203.0.113.7/32\n"
        "machines:\n  cpu: {instance_type: c6i.xlarge, ami: ubuntu24-cpu}\n"
        "jobs:\n  - trainer: pca\n"
    )
    code = main(["plan", str(spec), "--state-dir", str(tmp_path / "state")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"{spec}:3" in err and "no default VPC in us-east-1" in err
    assert "create-default-vpc" in err
    assert ec2.describe_key_pairs()["KeyPairs"] == []


def test_the_network_keys_travel_in_the_journal() -> None:
    config = AwsConfig(
        state_dir="/s", subnet_id="subnet-0123456789abcdef0", use_private_ip=True, region="r"
    )
    assert config_from_json(config_to_json(config)) == config


BASTION_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ1Nq7m4b6nq0kKcXy0bq7a3z4l8m5y4bB3lQ2zY0x9K"


def test_machines_are_reached_through_the_bastion(
    make_provider: Callable[..., AwsProvider], ec2: Any
) -> None:
    bastion = Address(host="bastion.example", user="jump", host_key=BASTION_KEY)
    provider = make_provider(use_private_ip=True, ssh_proxy=bastion)
    machine = provider.acquire(provider.prepare(machine_request()), token="jump")
    assert machine.address is not None and machine.address.jump == bastion
    inst = ec2.describe_instances(InstanceIds=[machine.id])["Reservations"][0]["Instances"][0]
    assert machine.address.host == inst["PrivateIpAddress"]


def test_ssh_proxy_in_the_file_becomes_the_journalled_jump(tmp_path: Path) -> None:
    exp = parse_experiment(
        "name: j\nprovider: aws\nregion: us-east-1\nssh_cidr: 10.0.0.0/8\n"
        "use_private_ip: true\n"
        f"ssh_proxy: {{host: bastion.example, user: jump, host_key: '{BASTION_KEY}'}}\n"
        "machines:\n  cpu: {instance_type: c6i.xlarge, gpus: 0, ami: ubuntu24-cpu}\n"
        "jobs:\n  - trainer: pca\n",
        "j.yaml",
    )
    setup = build_provider(exp, run_id="r", state_dir=tmp_path, local=False, now=START)
    assert isinstance(setup.config, AwsConfig) and setup.config.ssh_proxy is not None
    again = config_from_json(config_to_json(setup.config))
    assert isinstance(again, AwsConfig) and again.ssh_proxy == setup.config.ssh_proxy
    assert again.ssh_proxy.host_key == BASTION_KEY and again.ssh_proxy.user == "jump"


def test_an_unpinned_bastion_is_refused() -> None:
    with pytest.raises(SpecError, match="pin the bastion's key"):
        parse_experiment(
            "name: j\nprovider: aws\nssh_cidr: 10.0.0.0/8\nssh_proxy: {host: b.example}\n"
            "machines:\n  cpu: {instance_type: c6i.xlarge, ami: ubuntu24-cpu}\n"
            "jobs:\n  - trainer: pca\n",
            "j.yaml",
        )
