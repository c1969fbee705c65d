"""Pure builders of EC2 request arguments: tags, key pair, security group, RunInstances.

Nothing here talks to AWS, so the security-relevant choices are asserted in plain unit tests:
IMDSv2 required, encrypted gp3 root deleted with the instance, shutdown means terminate, tags on
the instance *and* its volume, SSH ingress only from the configured CIDR.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from infra.errors import ProviderError

TAG_RUN = "orchestrate:run"
TAG_OWNER = "orchestrate:owner"
TAG_EXPIRES = "orchestrate:expires"
TAG_MACHINE = "orchestrate:machine"
TAG_TOKEN = "orchestrate:token"  # the acquire token: finds the machine a retried acquire made
TAG_HOSTKEY = "orchestrate:hostkey"  # the pinned public host key, so a resumed run can reconnect
TAG_USER = "orchestrate:user"
TAG_SETUP = "orchestrate:setup"  # "baked" (image already set up) or "needed"
TAG_SPEC_HASH = "orchestrate:spec-hash"
TAG_SPEC = "orchestrate:spec"
TAG_BASE = "orchestrate:base"  # the base image a bake started from

SSH_PORT = 22
REDACTED = "<redacted>"


def cloud_name(run_id: str) -> str:
    """The name our per-run key pair and security group carry (EC2-safe characters only)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "-", run_id)[:200]
    return f"orchestrate-{safe}"


def expires_tag(deadline: datetime) -> str:
    """``orchestrate:expires`` value: UTC ISO-8601 to the second, sortable as text."""
    moment = deadline.replace(tzinfo=UTC) if deadline.tzinfo is None else deadline
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_expires(value: str | None) -> datetime | None:
    """The inverse of ``expires_tag``; None for a missing or unreadable value."""
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def resource_tags(
    *,
    run_id: str,
    owner: str,
    deadline: datetime | None,
    machine: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Our tags for one resource; ``extra`` (e.g. the plan's tags) never overrides the run id
    or the owner: every resource of a run carries the provider's one owner value."""
    tags = dict(extra or {})
    tags[TAG_RUN] = run_id
    tags[TAG_OWNER] = owner
    if deadline is not None:
        tags[TAG_EXPIRES] = expires_tag(deadline)
    if machine is not None:
        tags[TAG_MACHINE] = machine
    return tags


def tag_specifications(
    resource_types: Sequence[str], tags: Mapping[str, str]
) -> list[dict[str, Any]]:
    """``TagSpecifications`` tagging each resource type at creation (no untagged moment)."""
    tag_list = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
    return [{"ResourceType": rt, "Tags": tag_list} for rt in resource_types]


def import_key_pair_kwargs(run_id: str, public_key: str, tags: Mapping[str, str]) -> dict[str, Any]:
    """ImportKeyPair: the private half was generated here and never leaves this machine."""
    return {
        "KeyName": cloud_name(run_id),
        "PublicKeyMaterial": public_key.encode("ascii"),
        "TagSpecifications": tag_specifications(["key-pair"], tags),
    }


def create_security_group_kwargs(
    run_id: str, vpc_id: str, tags: Mapping[str, str]
) -> dict[str, Any]:
    """CreateSecurityGroup for one run (its ingress comes from ``ssh_ingress``)."""
    return {
        "GroupName": cloud_name(run_id),
        "Description": f"orchestrate run {run_id}: SSH from the configured CIDR only",
        "VpcId": vpc_id,
        "TagSpecifications": tag_specifications(["security-group"], tags),
    }


def ssh_ingress(cidr: str | None, *, allow_open_ssh: bool = False) -> list[dict[str, Any]]:
    """``IpPermissions`` opening port 22 to ``cidr`` only.

    Raises:
        ProviderError: no CIDR configured, an invalid one, or an open one (``0.0.0.0/0``,
            ``::/0``) without ``allow_open_ssh=True``.
    """
    if not cidr:
        raise ProviderError(
            "no ssh_cidr configured: set it to the address you connect from, e.g. 203.0.113.7/32"
        )
    try:
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError as exc:
        raise ProviderError(f"ssh_cidr {cidr!r} is not a CIDR block: {exc}") from exc
    if network.prefixlen == 0 and not allow_open_ssh:
        raise ProviderError(
            f"ssh_cidr {cidr} would open SSH to the whole internet; use your own address "
            "(e.g. 203.0.113.7/32), or pass allow_open_ssh=True if you really mean it"
        )
    description = "orchestrate: SSH from the configured CIDR"
    permission: dict[str, Any] = {"IpProtocol": "tcp", "FromPort": SSH_PORT, "ToPort": SSH_PORT}
    if network.version == 4:
        permission["IpRanges"] = [{"CidrIp": str(network), "Description": description}]
    else:
        permission["Ipv6Ranges"] = [{"CidrIpv6": str(network), "Description": description}]
    return [permission]


# Where a worker's free port falls: Linux's default ephemeral range (ip_local_port_range), from
# which the gang's bind(("", 0)) picks (orchestrator.gang.WHERE).
WORKER_PORTS = (32768, 60999)


SELF_GROUP = "<the run's own security group>"  # filled in once the group exists


def for_group(rules: list[dict[str, Any]], group_id: str) -> list[dict[str, Any]]:
    """``rules`` with ``SELF_GROUP`` replaced by the created group's id: the plan (and the
    dry-run that prints it) holds the exact rules before the group has an id."""
    return [
        {**r, "UserIdGroupPairs": [{**p, "GroupId": group_id} for p in r["UserIdGroupPairs"]]}
        if r.get("UserIdGroupPairs")
        else r
        for r in rules
    ]


def worker_ingress(group_id: str = SELF_GROUP) -> list[dict[str, Any]]:
    """``IpPermissions`` opening the workers' port range to members of ``group_id`` only.

    Why: the workers of a ``nodes: N`` task (TensorFlow's gRPC collectives, or the user's own
    torchrun/Horovod) dial each other on free ports. The source is the run's own security
    group, never a CIDR: only the run's machines, at their private addresses, get in.
    """
    low, high = WORKER_PORTS
    pair = {"GroupId": group_id, "Description": "orchestrate: workers of one run's tasks"}
    return [{"IpProtocol": "tcp", "FromPort": low, "ToPort": high, "UserIdGroupPairs": [pair]}]


def client_token(token: str, instance_type: str, zone: str | None, market: str) -> str:
    """An EC2 ``ClientToken`` unique to (acquire token, candidate).

    EC2 rejects a reused token with different parameters (``IdempotentParameterMismatch``), so
    each fallback candidate gets its own; the same candidate retried gets the same one.
    EC2 allows at most 64 ASCII characters.
    """
    digest = hashlib.sha256(f"{token}|{instance_type}|{zone}|{market}".encode()).hexdigest()
    prefix = re.sub(r"[^A-Za-z0-9-]", "-", token)[:31]
    return f"{prefix}-{digest[:32]}"


_BURSTABLE = re.compile(r"^t\d[a-z]*\.")


def burstable(instance_type: str) -> bool:
    """Whether ``instance_type`` is a burstable T type (t2, t3, t3a, t4g): CPU credits apply."""
    return bool(_BURSTABLE.match(instance_type))


def name_tag(run_id: str, machine: str | None) -> str:
    """The ``Name`` the console shows: ``orchestrate-<run>-<machine>`` (EC2 allows 256)."""
    return f"{cloud_name(run_id)}-{machine}"[:256] if machine else cloud_name(run_id)


@dataclass(frozen=True)
class InstanceParams:
    """Everything one RunInstances call needs; ``user_data`` is the cloud-config text."""

    image_id: str
    instance_type: str
    key_name: str
    security_group_id: str
    user_data: str
    tags: Mapping[str, str]
    client_token: str
    spot: bool = False
    subnet_id: str | None = None
    root_device_name: str = "/dev/sda1"
    root_volume_gb: int = 40
    public_ip: bool = True  # False: reached by private address (a VPN into the VPC)


def run_instances_kwargs(p: InstanceParams) -> dict[str, Any]:
    """RunInstances arguments for exactly one instance."""
    kwargs: dict[str, Any] = {
        "ImageId": p.image_id,
        "InstanceType": p.instance_type,
        "MinCount": 1,
        "MaxCount": 1,
        "KeyName": p.key_name,
        "UserData": p.user_data,  # boto3 base64-encodes it
        "ClientToken": p.client_token,
        # The instance's own deadline (user-data `shutdown -h`) must end the billing, not pause it.
        "InstanceInitiatedShutdownBehavior": "terminate",
        # IMDSv2 only; hop limit 1 keeps the metadata service out of reach of containers.
        "MetadataOptions": {
            "HttpTokens": "required",
            "HttpEndpoint": "enabled",
            "HttpPutResponseHopLimit": 1,
        },
        "BlockDeviceMappings": [
            {
                "DeviceName": p.root_device_name,
                "Ebs": {
                    "VolumeSize": p.root_volume_gb,
                    "VolumeType": "gp3",
                    "Encrypted": True,
                    "DeleteOnTermination": True,
                },
            }
        ],
        "TagSpecifications": tag_specifications(["instance", "volume"], p.tags),
    }
    if p.subnet_id:
        # Through the interface, so the public address is asked for (or not) explicitly, never
        # left to the subnet's MapPublicIpOnLaunch.
        kwargs["NetworkInterfaces"] = [
            {
                "DeviceIndex": 0,
                "SubnetId": p.subnet_id,
                "Groups": [p.security_group_id],
                "AssociatePublicIpAddress": p.public_ip,
                "DeleteOnTermination": True,
            }
        ]
    else:
        kwargs["SecurityGroupIds"] = [p.security_group_id]
    if burstable(p.instance_type):
        # Unlimited mode (the t3/t4g default) bills surplus CPU credits by the hour, outside
        # the instance price the cost cap counts; standard mode throttles instead.
        kwargs["CreditSpecification"] = {"CpuCredits": "standard"}
    if p.spot:
        kwargs["InstanceMarketOptions"] = {
            "MarketType": "spot",
            "SpotOptions": {
                "SpotInstanceType": "one-time",
                "InstanceInterruptionBehavior": "terminate",
            },
        }
    return kwargs


def redact(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """A printable copy of request arguments: user-data and key material replaced.

    User-data may hold an injected host private key; it is summarised by size and hash.
    """
    out = dict(kwargs)
    user_data = out.get("UserData")
    if isinstance(user_data, str) and not user_data.startswith("<"):
        digest = hashlib.sha256(user_data.encode()).hexdigest()[:12]
        out["UserData"] = f"<cloud-config, {len(user_data)} bytes, sha256 {digest}…>"
    for secret in ("KeyMaterial", "PrivateKey"):
        if secret in out:
            out[secret] = REDACTED
    return out
