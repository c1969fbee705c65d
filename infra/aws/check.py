"""`orchestrate plan --check-aws`: would this launch be allowed, here, now?

``ACTIONS`` names every AWS action the code calls (``tests/infra/aws/test_check.py`` scans the
sources and fails on a call that is missing here) and how it is proved allowed:

* an EC2 action is sent once with ``DryRun=True``. AWS checks the caller's IAM permissions and
  answers ``DryRunOperation`` ("would have succeeded") or ``UnauthorizedOperation``; nothing
  is created. A dry run against a placeholder id may answer ``...NotFound`` instead, which also
  means the permission check passed. Creates carry their ``TagSpecifications``, as the real
  calls do, so tag-on-create permission (``ec2:CreateTags``) is checked too;
* ``ssm:GetParameter`` has no dry run: the image spec's parameter is read (a public, read-only
  parameter), and only ``AccessDenied`` counts against it;
* the two price actions serve ``prices --refresh`` only and are not needed to run.

Then two catalog checks: the image exists in the region, and each instance type is offered in
some zone.
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
    from mypy_boto3_ssm import SSMClient

# Syntactically valid ids that never exist: a dry run against them tests only the permission.
_NO_INSTANCE = "i-0000000000000000f"
_NO_GROUP = "sg-0000000000000000f"
_NO_VOLUME = "vol-0000000000000000f"
_NO_IMAGE = "ami-0000000000000000f"
_NO_SNAPSHOT = "snap-0000000000000000f"
_CHECK_TAGS = [{"Key": "orchestrate:check", "Value": "1"}]
# TEST-NET-1: never a real peer.
_SG_RULE = [
    {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "192.0.2.1/32"}]}
]

# Every action the code calls -> the arguments of its EC2 dry run ("ssm"/"not needed to run":
# proved another way, or not part of a run). ``RunInstances`` takes the launch's own request.
ACTIONS: dict[str, dict[str, Any] | str] = {
    "ec2:DescribeInstances": {},
    "ec2:DescribeInstanceStatus": {},
    "ec2:RunInstances": {},
    "ec2:CreateTags": {"Resources": [_NO_INSTANCE], "Tags": _CHECK_TAGS},
    "ec2:TerminateInstances": {"InstanceIds": [_NO_INSTANCE]},
    "ec2:GetConsoleOutput": {"InstanceId": _NO_INSTANCE},
    "ec2:DescribeImages": {"Owners": ["self"]},
    "ec2:DescribeVpcs": {},
    "ec2:DescribeSubnets": {},
    "ec2:DescribeInstanceTypes": {"InstanceTypes": ["t3.micro"]},
    "ec2:DescribeInstanceTypeOfferings": {},
    "ec2:DescribeRegions": {},
    "ec2:DescribeKeyPairs": {},
    "ec2:ImportKeyPair": {
        "KeyName": "orchestrate-check",
        "TagSpecifications": [{"ResourceType": "key-pair", "Tags": _CHECK_TAGS}],
    },
    "ec2:DeleteKeyPair": {"KeyName": "orchestrate-check"},
    "ec2:DescribeSecurityGroups": {},
    "ec2:CreateSecurityGroup": {
        "GroupName": "orchestrate-check",
        "Description": "orchestrate permission check",
        "TagSpecifications": [{"ResourceType": "security-group", "Tags": _CHECK_TAGS}],
    },
    "ec2:AuthorizeSecurityGroupIngress": {"GroupId": _NO_GROUP, "IpPermissions": _SG_RULE},
    "ec2:DeleteSecurityGroup": {"GroupId": _NO_GROUP},
    "ec2:DescribeVolumes": {},
    "ec2:DeleteVolume": {"VolumeId": _NO_VOLUME},
    "ec2:CreateImage": {
        "InstanceId": _NO_INSTANCE,
        "Name": "orchestrate-check",
        "TagSpecifications": [{"ResourceType": "image", "Tags": _CHECK_TAGS}],
    },
    "ec2:DeregisterImage": {"ImageId": _NO_IMAGE},
    "ec2:DescribeSnapshots": {"OwnerIds": ["self"]},
    "ec2:DeleteSnapshot": {"SnapshotId": _NO_SNAPSHOT},
    "ssm:GetParameter": "ssm",
    "ec2:DescribeSpotPriceHistory": "not needed to run (prices --refresh)",
    "pricing:GetProducts": "not needed to run (prices --refresh)",
}


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
        """True when every action is allowed and the catalog has what the launch needs."""
        return all(item.ok for item in self.items)

    @property
    def missing_actions(self) -> list[str]:
        """The IAM actions to grant (``service:Action``)."""
        return [i.name for i in self.items if not i.ok and i.name.startswith(("ec2:", "ssm:"))]

    def render(self) -> str:
        """One line per check, then what to grant."""
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


def _snake(action: str) -> str:
    name = action.split(":", 1)[1]
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def check_permissions(
    ec2: EC2Client,
    launch: LaunchRequest,
    *,
    region: str,
    ssm: SSMClient | None = None,
) -> CheckReport:
    """Prove every action in ``ACTIONS`` allowed, then check the image and type offerings.

    Args:
        launch: from ``AwsProvider.prepare``; its ``ec2.run_instances`` call is dry-run as is,
            with placeholders (security group, user-data) left out.
        ssm: where the image spec's SSM parameter is read (skipped when None).
    """
    run_call = next((c for c in launch.calls if c.name == "ec2.run_instances"), None)
    run_kwargs = dict(run_call.kwargs) if run_call else {}
    for placeholder in ("SecurityGroupIds", "UserData", "ClientToken", "KeyName", "SubnetId"):
        run_kwargs.pop(placeholder, None)
    if "NetworkInterfaces" in run_kwargs:  # the real subnet, without the placeholder group
        run_kwargs["NetworkInterfaces"] = [
            {k: v for k, v in nic.items() if k != "Groups"}
            for nic in run_kwargs["NetworkInterfaces"]
        ]
    e: Any = cast(Any, ec2)  # the dry-run calls pass placeholders the stubs would not accept
    items: list[CheckItem] = []
    for action, how in ACTIONS.items():
        if isinstance(how, str):
            if how == "ssm" and ssm is not None and launch.request.image is not None:
                items.append(_ssm_readable(ssm, launch.request.image.ssm_parameter))
            continue
        kwargs = dict(how)
        if action == "ec2:RunInstances":
            kwargs = run_kwargs
        elif action == "ec2:ImportKeyPair":
            kwargs["PublicKeyMaterial"] = generate_ed25519().public_line.encode()
        items.append(_dry_run(action, getattr(e, _snake(action)), **kwargs))
    image_id = run_kwargs.get("ImageId")
    if image_id:
        items.append(_image_exists(ec2, str(image_id), region))
    items += _types_offered(ec2, launch.request.instance_types, region)
    return CheckReport(region, tuple(items))


def _ssm_readable(ssm: SSMClient, parameter: str | None) -> CheckItem:
    """``ssm:GetParameter`` has no dry run: read the (public) parameter the spec names."""
    name = parameter or "/aws/service/global-infrastructure/current-region"
    try:
        ssm.get_parameter(Name=name)
    except Exception as exc:
        code = error_code(exc)
        if code in ("AccessDeniedException", "AccessDenied", "UnauthorizedOperation"):
            return CheckItem("ssm:GetParameter", False, "not allowed: grant ssm:GetParameter")
        if not code:
            raise
        return CheckItem("ssm:GetParameter", True, f"allowed (answered {code})")
    return CheckItem("ssm:GetParameter", True, f"allowed (read {name})")


def _image_exists(ec2: EC2Client, image_id: str, region: str) -> CheckItem:
    try:
        images = ec2.describe_images(ImageIds=[image_id])["Images"]
    except Exception as exc:
        if not error_code(exc):
            raise
        if error_code(exc) in ("UnauthorizedOperation", "AccessDenied"):
            return CheckItem(f"image {image_id}", False, "not checked: ec2:DescribeImages denied")
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
