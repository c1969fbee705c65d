"""`orchestrate plan --check-aws`: would this launch be allowed, here, now?

Every mutating call a run makes is sent once with ``DryRun=True``. AWS checks the caller's IAM
permissions and answers ``DryRunOperation`` ("would have succeeded") or
``UnauthorizedOperation``; either way nothing is created. A dry run against a placeholder id
may answer ``...NotFound`` instead, which also means the permission check passed. Then two
catalog checks: the image exists in the region, and each instance type is offered in some zone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from infra.aws.errors import error_code
from infra.aws.hostkeys import generate_ed25519
from infra.provider import LaunchRequest

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

# Syntactically valid ids that never exist: a dry run against them tests only the permission.
_NO_INSTANCE = "i-0000000000000000f"
_NO_GROUP = "sg-0000000000000000f"


@dataclass(frozen=True)
class CheckItem:
    """One check: ``name`` is the IAM action or catalog fact, ``detail`` the evidence."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class CheckReport:
    """All checks for one launch; ``missing_actions`` is what to grant in IAM."""

    region: str
    items: tuple[CheckItem, ...]

    @property
    def ok(self) -> bool:
        return all(item.ok for item in self.items)

    @property
    def missing_actions(self) -> list[str]:
        return [i.name for i in self.items if not i.ok and i.name.startswith("ec2:")]

    def render(self) -> str:
        lines = [f"AWS checks in {self.region}: {'all passed' if self.ok else 'PROBLEMS'}"]
        lines += [f"  {'ok  ' if i.ok else 'FAIL'} {i.name}: {i.detail}" for i in self.items]
        if self.missing_actions:
            lines.append("grant these IAM actions: " + ", ".join(self.missing_actions))
        return "\n".join(lines)


def _dry_run(action: str, call: Callable[..., Any], **kwargs: Any) -> CheckItem:
    try:
        call(DryRun=True, **kwargs)
    except Exception as exc:
        code = error_code(exc)
        if code == "DryRunOperation":
            return CheckItem(action, True, "allowed")
        if code in ("UnauthorizedOperation", "AccessDenied"):
            return CheckItem(action, False, f"not allowed: grant {action}")
        if code.endswith((".NotFound", ".Malformed")):
            return CheckItem(action, True, f"allowed (dry run answered {code})")
        if not code:
            raise
        return CheckItem(action, False, f"dry run failed: {code}")
    # AWS never performs a DryRun call; a fake that does is not a real permission check.
    return CheckItem(action, True, "allowed (the endpoint ignored DryRun)")


def check_permissions(ec2: EC2Client, launch: LaunchRequest, *, region: str) -> CheckReport:
    """Dry-run every action a run needs, then check the image and instance type offerings.

    Args:
        launch: from ``AwsProvider.prepare``; its ``ec2.run_instances`` call is dry-run as is,
            with placeholders (security group, user-data) left out.
    """
    run_call = next((c for c in launch.calls if c.name == "ec2.run_instances"), None)
    run_kwargs = dict(run_call.kwargs) if run_call else {}
    for placeholder in ("SecurityGroupIds", "UserData", "ClientToken", "KeyName", "SubnetId"):
        run_kwargs.pop(placeholder, None)
    public = generate_ed25519().public_line.encode()
    sg_rule = [
        {
            "IpProtocol": "tcp",
            "FromPort": 22,
            "ToPort": 22,
            "IpRanges": [{"CidrIp": "192.0.2.1/32"}],
        }
    ]  # TEST-NET-1: never a real peer
    e: Any = cast(Any, ec2)  # the dry-run calls pass placeholders the stubs would not accept
    items = [
        _dry_run("ec2:DescribeInstances", e.describe_instances),
        _dry_run("ec2:RunInstances", e.run_instances, **run_kwargs),
        _dry_run(
            "ec2:CreateTags",
            e.create_tags,
            Resources=[_NO_INSTANCE],
            Tags=[{"Key": "orchestrate:check", "Value": "1"}],
        ),
        _dry_run("ec2:TerminateInstances", e.terminate_instances, InstanceIds=[_NO_INSTANCE]),
        _dry_run(
            "ec2:ImportKeyPair",
            e.import_key_pair,
            KeyName="orchestrate-check",
            PublicKeyMaterial=public,
        ),
        _dry_run("ec2:DeleteKeyPair", e.delete_key_pair, KeyName="orchestrate-check"),
        _dry_run(
            "ec2:CreateSecurityGroup",
            e.create_security_group,
            GroupName="orchestrate-check",
            Description="orchestrate permission check",
        ),
        _dry_run(
            "ec2:AuthorizeSecurityGroupIngress",
            e.authorize_security_group_ingress,
            GroupId=_NO_GROUP,
            IpPermissions=sg_rule,
        ),
        _dry_run("ec2:DeleteSecurityGroup", e.delete_security_group, GroupId=_NO_GROUP),
    ]
    image_id = run_kwargs.get("ImageId")
    if image_id:
        items.append(_image_exists(ec2, str(image_id), region))
    items += _types_offered(ec2, launch.request.instance_types, region)
    return CheckReport(region, tuple(items))


def _image_exists(ec2: EC2Client, image_id: str, region: str) -> CheckItem:
    try:
        images = ec2.describe_images(ImageIds=[image_id])["Images"]
    except Exception as exc:
        if not error_code(exc):
            raise
        images = []
    if images and images[0].get("State", "available") == "available":
        return CheckItem(f"image {image_id}", True, f"available in {region}")
    return CheckItem(f"image {image_id}", False, f"not found (or not available) in {region}")


def _types_offered(ec2: EC2Client, types: tuple[str, ...], region: str) -> list[CheckItem]:
    if not types:
        return []
    rows = ec2.describe_instance_type_offerings(
        LocationType="availability-zone",
        Filters=[{"Name": "instance-type", "Values": list(types)}],
    )["InstanceTypeOfferings"]
    zones: dict[str, list[str]] = {t: [] for t in types}
    for row in rows:
        zones.setdefault(row["InstanceType"], []).append(row["Location"])
    return [
        CheckItem(
            f"type {t}",
            bool(zones[t]),
            f"offered in {', '.join(sorted(zones[t]))}" if zones[t] else f"not offered in {region}",
        )
        for t in types
    ]
