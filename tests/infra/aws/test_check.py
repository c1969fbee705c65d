"""`plan --check-aws`: dry-run permissions (moto answers DryRunOperation) and catalog checks."""

from __future__ import annotations

from typing import Any

from infra.aws.check import check_permissions
from infra.aws.provider import AwsProvider
from tests.infra.aws.conftest import fail_call, machine_request


def test_everything_allowed_and_offered(provider: AwsProvider, ec2: Any) -> None:
    launch = provider.prepare(machine_request(types=("t3.micro",)))
    report = check_permissions(ec2, launch, region="us-east-1")
    assert report.ok, report.render()
    assert "ec2:RunInstances: allowed" in report.render()
    assert ec2.describe_key_pairs()["KeyPairs"] == []  # dry runs created nothing
    assert (
        ec2.describe_security_groups(
            Filters=[{"Name": "group-name", "Values": ["orchestrate-check"]}]
        )["SecurityGroups"]
        == []
    )


def test_missing_action_is_named(provider: AwsProvider, ec2: Any) -> None:
    launch = provider.prepare(machine_request())
    fail_call(ec2, "TerminateInstances", "UnauthorizedOperation")
    report = check_permissions(ec2, launch, region="us-east-1")
    assert not report.ok
    assert report.missing_actions == ["ec2:TerminateInstances"]
    assert "grant these IAM actions: ec2:TerminateInstances" in report.render()


def test_missing_image_and_unoffered_type(provider: AwsProvider, ec2: Any) -> None:
    launch = provider.prepare(machine_request())
    run = next(c for c in launch.calls if c.name == "ec2.run_instances")
    bogus = type(launch)(
        launch.provider,
        type(launch.request)(
            **{**launch.request.__dict__, "instance_types": ("t3.micro", "x9.nope")}
        ),
        (type(run)(run.name, {**run.kwargs, "ImageId": "ami-00000000deadbeef0"}),),
    )
    report = check_permissions(ec2, bogus, region="us-east-1")
    failed = {i.name for i in report.items if not i.ok}
    assert failed == {"image ami-00000000deadbeef0", "type x9.nope"}
