"""What a launch will be, resolved with read-only calls: the candidates (type x market x zone,
in fallback order), the network, the image, the tags. ``AwsProvider.prepare`` builds it and
``acquire`` executes it as is (``infra.aws.launch``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ami.resolve import ImageRef
from ami.spec import ImageSpec
from infra.aws.errors import aws_errors
from infra.aws.requests import (
    InstanceParams,
    client_token,
    cloud_name,
    expires_tag,
    run_instances_kwargs,
    worker_ingress,
)
from infra.errors import CapacityError, PlacementError, ProviderError
from infra.provider import MachineRequest

if TYPE_CHECKING:
    from infra.aws.context import AwsContext


@dataclass(frozen=True)
class Candidate:
    """One (instance type, market, zone) to try, in order."""

    instance_type: str
    spot: bool
    zone: str | None = None
    subnet_id: str | None = None

    @property
    def label(self) -> str:
        """``g4dn.xlarge spot in us-east-1a``: how the plan and the failure list name it."""
        market = "spot" if self.spot else "on-demand"
        return f"{self.instance_type} {market}" + (f" in {self.zone}" if self.zone else "")


@dataclass(frozen=True)
class LaunchPlan:
    """What ``prepare`` resolved and ``acquire`` executes."""

    request: MachineRequest
    spec: ImageSpec
    image: ImageRef
    tags: dict[str, str]
    ingress: list[dict[str, Any]]
    vpc_id: str
    candidates: tuple[Candidate, ...]
    root_volume_gb: int
    timer: str
    public_ip: bool = True  # AssociatePublicIpAddress, sent explicitly

    def run_kwargs(
        self,
        c: Candidate,
        *,
        user_data: str,
        key_name: str | None = None,
        security_group_id: str = "<from create_security_group>",
        token: str = "",
        extra_tags: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The RunInstances arguments for candidate ``c``; ``acquire`` fills in the secrets
        (user-data, key), the security group and the token, ``prepare`` shows placeholders."""
        return run_instances_kwargs(
            InstanceParams(
                image_id=self.image.ami_id,
                instance_type=c.instance_type,
                key_name=key_name or cloud_name(self.request.run_id),
                security_group_id=security_group_id,
                user_data=user_data,
                tags={**self.tags, **(extra_tags or {})},
                client_token=client_token(
                    token, c.instance_type, c.zone, "spot" if c.spot else "od"
                ),
                spot=c.spot,
                subnet_id=c.subnet_id,
                root_device_name=self.image.root_device_name,
                root_volume_gb=self.root_volume_gb,
                public_ip=self.public_ip,
            )
        )


def plan_launch(provider: AwsContext, req: MachineRequest) -> LaunchPlan:
    """Validate ``req`` and resolve everything a launch needs, with read-only calls."""
    if req.image is None:
        raise ProviderError(f"machine {req.name!r}: the aws provider needs an `ami:`")
    if not req.instance_types:
        raise ProviderError(f"machine {req.name!r}: no instance_type given")
    if req.deadline is None:
        raise ProviderError(f"machine {req.name!r}: an AWS machine needs a deadline")
    if req.region and req.region != provider.region:
        raise ProviderError(
            f"machine {req.name!r} asks for {req.region} but this provider serves {provider.region}"
        )
    ingress = [*provider.ingress(), *worker_ingress()]  # SSH, and the gang's own-group rule
    vpc_id, subnets = subnets_for(provider, req)
    image = provider.resolve_image(req.image)
    offered = offerings(provider, req.instance_types)
    markets = {"no": (False,), "preferred": (True, False), "required": (True,)}[req.spot]
    candidates = tuple(
        Candidate(itype, spot, zone, subnet)
        for spot in markets
        for itype in req.instance_types
        for zone, subnet in subnets
        if zone in offered.get(itype, {zone})
    )
    if not candidates:
        raise CapacityError(
            f"none of {', '.join(req.instance_types)} is offered in {provider.region}'s zones; "
            "pick other fallback_types or another region"
        )
    return LaunchPlan(
        request=req,
        spec=req.image,
        image=image,
        tags=provider.tags_for(req, image, req.image),
        ingress=ingress,
        vpc_id=vpc_id,
        candidates=candidates,
        root_volume_gb=max(req.image.root_volume_gb, image.root_snapshot_gb),
        timer=f"shutdown -h at {expires_tag(req.deadline)}",
        public_ip=not provider.use_private_ip,
    )


def subnets_for(provider: AwsContext, req: MachineRequest) -> tuple[str, list[tuple[str, str]]]:
    """The VPC and one subnet per zone that ``req`` may launch in, zones in name order.

    Contract: 1. the configured ``subnet_id`` alone, else 2. the configured ``vpc_id``'s
    subnets (the first by id in each zone), else 3. the default VPC's default subnets; then
    4. only the zones ``req.zones`` names, each of which must be among them.

    Raises:
        PlacementError: no default VPC, an unknown subnet or VPC, or a zone not offered
            (exit 2 at plan, nothing launched).
    """
    ec2, region = provider.ec2, provider.region
    with aws_errors(region=region):
        if provider.subnet_id:
            found = ec2.describe_subnets(
                Filters=[{"Name": "subnet-id", "Values": [provider.subnet_id]}]
            )["Subnets"]
            if not found:
                raise PlacementError(
                    f"no subnet {provider.subnet_id} in {region}",
                    where=("subnet_id",),
                    hint="see `aws ec2 describe-subnets`",
                )
            vpc_id = found[0]["VpcId"]
        else:
            vpc_id = provider.vpc_id or _default_vpc(provider)
            filters: list[Any] = [{"Name": "vpc-id", "Values": [vpc_id]}]
            if not provider.vpc_id:
                filters.append({"Name": "default-for-az", "Values": ["true"]})
            found = ec2.describe_subnets(Filters=filters)["Subnets"]
            if not found:
                raise PlacementError(
                    f"no subnet in VPC {vpc_id} ({region})",
                    where=("vpc_id",) if provider.vpc_id else ("region",),
                    hint="give subnet_id, or a VPC with subnets",
                )
    per_zone: dict[str, str] = {}
    for subnet in sorted(found, key=lambda s: s["SubnetId"]):
        per_zone.setdefault(subnet["AvailabilityZone"], subnet["SubnetId"])
    if req.zones:
        for i, zone in enumerate(req.zones):
            if zone not in per_zone:
                raise PlacementError(
                    f"machine {req.name!r}: zone {zone} has no usable subnet in {region} "
                    f"(these do: {', '.join(sorted(per_zone)) or 'none'})",
                    where=("machines", req.name, "zones", i),
                    hint="name zones of the region, or leave zones out",
                )
        per_zone = {z: s for z, s in per_zone.items() if z in req.zones}
    return vpc_id, sorted(per_zone.items())


def _default_vpc(provider: AwsContext) -> str:
    vpcs = provider.ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise PlacementError(
            f"no default VPC in {provider.region}",
            where=("region",),
            hint="create one (`aws ec2 create-default-vpc`), or give vpc_id or subnet_id",
        )
    return str(vpcs[0]["VpcId"])


def offerings(provider: AwsContext, types: tuple[str, ...]) -> dict[str, set[str]]:
    """Zones that offer each instance type (types absent from the answer: no zone at all)."""
    with aws_errors(region=provider.region):
        rows = provider.ec2.describe_instance_type_offerings(
            LocationType="availability-zone",
            Filters=[{"Name": "instance-type", "Values": list(types)}],
        )["InstanceTypeOfferings"]
    offered: dict[str, set[str]] = {t: set() for t in types}
    for row in rows:
        offered.setdefault(row["InstanceType"], set()).add(row["Location"])
    return offered
