"""`plan --check-aws`: dry-run permissions (moto answers DryRunOperation) and catalog checks."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ami.spec import ImageSpec
from infra.aws.check import ACTIONS, check_permissions
from infra.aws.provider import AwsProvider
from infra.errors import ProviderError
from tests.infra.aws.conftest import TEST_SPEC, _Http, fail_call, machine_request


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


# ------------------------------------------- every action the code calls is checked (#13.4)

ROOT = Path(__file__).resolve().parents[3]
_CALL = re.compile(r"\b(_?ec2|ssm|pricing)\.([a-z_]+)\(")
_PAGINATED = re.compile(r'\b_?ec2\.get_paginator\(\s*"([a-z_]+)"\s*\)')


def _camel(method: str) -> str:
    return "".join(part.capitalize() for part in method.split("_"))


def called_actions(text: str) -> set[str]:
    """``service:Action`` for each boto3 client call in ``text`` (ec2, ssm, pricing)."""
    found = set()
    for receiver, method in _CALL.findall(text):
        if method not in ("get_paginator", "meta", "get_waiter"):
            service = receiver.lstrip("_").replace("ec2", "ec2")
            found.add(f"{service}:{_camel(method)}")
    found |= {f"ec2:{_camel(m)}" for m in _PAGINATED.findall(text)}
    return found


def test_every_aws_call_in_the_code_is_in_the_checked_list() -> None:
    sources = [*sorted((ROOT / "infra" / "aws").glob("*.py")), ROOT / "ami" / "resolve.py"]
    called: dict[str, str] = {}
    for path in sources:
        if path.name == "check.py":  # the checker's own dry runs
            continue
        for action in called_actions(path.read_text()):
            called.setdefault(action, path.name)
    missing = {a: where for a, where in called.items() if a not in ACTIONS}
    assert missing == {}, "add these to infra.aws.check.ACTIONS (and the IAM policy)"
    for action in (
        "ssm:GetParameter",
        "ec2:DescribeImages",
        "ec2:DescribeVpcs",
        "ec2:DescribeSubnets",
        "ec2:DescribeInstanceTypeOfferings",
        "ec2:DescribeInstanceTypes",
        "ec2:CreateImage",
        "ec2:DeregisterImage",
    ):
        assert action in called and action in ACTIONS


def test_the_scan_sees_a_new_call() -> None:
    text = 'x = provider.ec2.describe_addresses()\nself._ec2.get_paginator("describe_hosts")'
    assert called_actions(text) == {"ec2:DescribeAddresses", "ec2:DescribeHosts"}


def test_every_listed_ec2_action_is_dry_run(provider: AwsProvider, ec2: Any, ssm: Any) -> None:
    report = check_permissions(
        ec2, provider.prepare(machine_request()), region="us-east-1", ssm=ssm
    )
    checked = {i.name for i in report.items}
    ec2_actions = {
        a for a, how in ACTIONS.items() if a.startswith("ec2:") and isinstance(how, dict)
    }
    assert ec2_actions <= checked
    assert report.ok, report.render()


def test_creates_are_dry_run_with_their_tag_specifications(provider: AwsProvider, ec2: Any) -> None:
    keys = fail_call(ec2, "ImportKeyPair", "never", when=lambda _: False)
    groups = fail_call(ec2, "CreateSecurityGroup", "never", when=lambda _: False)
    check_permissions(ec2, provider.prepare(machine_request()), region="us-east-1")
    ((key,), (group,)) = keys, groups
    assert key["DryRun"] and key["TagSpecifications"][0]["ResourceType"] == "key-pair"
    assert group["DryRun"] and group["TagSpecifications"][0]["ResourceType"] == "security-group"


def _deny_ssm(ssm: Any) -> None:
    def answer(**_: Any) -> Any:
        body = {"Error": {"Code": "AccessDeniedException", "Message": "no"}, "ResponseMetadata": {}}
        return (_Http(400), body)

    ssm.meta.events.register("before-call.ssm.GetParameter", answer)


def test_ssm_access_denied_is_named_in_the_check(provider: AwsProvider, ec2: Any, ssm: Any) -> None:
    _deny_ssm(ssm)
    spec = replace(TEST_SPEC, ssm_parameter="/aws/service/canonical/some/ami-id")
    launch = provider.prepare(replace(machine_request(), image=spec))
    report = check_permissions(ec2, launch, region="us-east-1", ssm=ssm)
    assert report.missing_actions == ["ssm:GetParameter"]


def test_ssm_access_denied_is_reported_as_such_not_as_image_not_found(
    provider: AwsProvider, ssm: Any
) -> None:
    _deny_ssm(ssm)
    spec = ImageSpec(name="ssm-only", ssm_parameter="/aws/service/canonical/some/ami-id")
    with pytest.raises(ProviderError) as caught:
        provider.resolve_image(spec)
    assert "ssm:GetParameter" in str(caught.value) and "not found" not in str(caught.value)


def test_describe_images_denied_is_reported_as_such(provider: AwsProvider, ec2: Any) -> None:
    fail_call(ec2, "DescribeImages", "UnauthorizedOperation")
    with pytest.raises(ProviderError, match="may not call ec2:DescribeImages"):
        provider.resolve_image(replace(TEST_SPEC, name="other"))
