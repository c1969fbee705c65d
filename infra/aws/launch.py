"""The launch half of AwsProvider: candidates, run-wide key pair and SG, fallback, readiness.

Kept apart from ``provider.py`` so that file stays the readable contract and this one the
mechanics. Every function takes the provider (for its clients, clock and settings).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from ami.resolve import ImageRef
from ami.spec import ImageSpec
from ami.userdata import DEADLINE_CHECK
from infra.aws.consistency import GROUP_NOT_YET, INSTANCE_NOT_YET, until_visible
from infra.aws.endpoints import endpoint_for, endpoints_mapped
from infra.aws.errors import aws_errors, error_code
from infra.aws.hostkeys import generate_ed25519, public_line_of, write_private_key
from infra.aws.requests import (
    TAG_HOSTKEY,
    TAG_MACHINE,
    TAG_RUN,
    TAG_TOKEN,
    TAG_USER,
    InstanceParams,
    client_token,
    cloud_name,
    create_security_group_kwargs,
    expires_tag,
    import_key_pair_kwargs,
    resource_tags,
    run_instances_kwargs,
)
from infra.errors import (
    CapacityError,
    HostKeyMismatch,
    LaunchTimeout,
    PlacementError,
    ProviderError,
    QuotaError,
    TransportError,
)
from infra.provider import Address, Machine, MachineRequest
from infra.transport.base import Transport

if TYPE_CHECKING:
    from infra.aws.provider import AwsProvider


@dataclass(frozen=True)
class Candidate:
    """One (instance type, market, zone) to try, in order."""

    instance_type: str
    spot: bool
    zone: str | None = None
    subnet_id: str | None = None

    @property
    def label(self) -> str:
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


def plan_launch(provider: AwsProvider, req: MachineRequest) -> LaunchPlan:
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
    ingress = provider.ingress()
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


def subnets_for(provider: AwsProvider, req: MachineRequest) -> tuple[str, list[tuple[str, str]]]:
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


def _default_vpc(provider: AwsProvider) -> str:
    vpcs = provider.ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise PlacementError(
            f"no default VPC in {provider.region}",
            where=("region",),
            hint="create one (`aws ec2 create-default-vpc`), or give vpc_id or subnet_id",
        )
    return str(vpcs[0]["VpcId"])


def offerings(provider: AwsProvider, types: tuple[str, ...]) -> dict[str, set[str]]:
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


def ensure_key_pair(provider: AwsProvider, run_id: str, tags: dict[str, str]) -> str:
    """The run's login key pair: private half 0600 in the state dir, public half imported."""
    name = cloud_name(run_id)
    path = provider.key_path(run_id)
    ec2 = provider.ec2
    try:
        with aws_errors(region=provider.region):
            remote = bool(ec2.describe_key_pairs(KeyNames=[name])["KeyPairs"])
    except ProviderError as exc:
        if not error_code(exc.__cause__ or exc).startswith("InvalidKeyPair.NotFound"):
            raise
        remote = False
    if path.exists():
        public = public_line_of(path)
    else:
        if remote:  # the private half is lost: replace the pair
            with aws_errors(region=provider.region):
                ec2.delete_key_pair(KeyName=name)
            remote = False
        key = generate_ed25519()
        write_private_key(path, key.private_openssh)  # on disk before AWS knows the pair
        public = key.public_line
    if not remote:
        with aws_errors(region=provider.region):
            ec2.import_key_pair(**import_key_pair_kwargs(run_id, public, tags))
    return name


def ensure_security_group(
    provider: AwsProvider, run_id: str, vpc_id: str, tags: dict[str, str], ingress: list[Any]
) -> str:
    """The run's security group in ``vpc_id``: SSH from the configured CIDR only."""
    name = cloud_name(run_id)
    ec2 = provider.ec2
    with aws_errors(region=provider.region):
        found = ec2.describe_security_groups(
            Filters=[
                {"Name": "group-name", "Values": [name]},
                {"Name": "vpc-id", "Values": [vpc_id]},
            ]
        )["SecurityGroups"]
        if found:
            return found[0]["GroupId"]
        group_id = ec2.create_security_group(**create_security_group_kwargs(run_id, vpc_id, tags))[
            "GroupId"
        ]
        # The new group's id may not have propagated yet: InvalidGroup.NotFound means "not yet".
        until_visible(
            lambda: ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=ingress),
            codes=GROUP_NOT_YET,
            sleep=provider.sleep,
            backoff=provider.waits.not_found,
        )
    return group_id


def find_by_token(provider: AwsProvider, token: str) -> str | None:
    """The live instance an earlier ``acquire`` with ``token`` made, if any."""
    with aws_errors(region=provider.region):
        reservations = provider.ec2.describe_instances(
            Filters=[
                {"Name": f"tag:{TAG_TOKEN}", "Values": [token]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]},
            ]
        )["Reservations"]
    for reservation in reservations:
        for inst in reservation.get("Instances", []):
            return inst["InstanceId"]
    return None


def launch_first(provider: AwsProvider, plan: LaunchPlan, **run: Any) -> str:
    """Try each candidate until one launches; spot quota moves on to on-demand if allowed."""
    tried: list[str] = []
    spot_blocked = False
    for c in plan.candidates:
        if c.spot and spot_blocked:
            continue
        kwargs = plan.run_kwargs(c, **run)
        try:
            with aws_errors(instance_type=c.instance_type, spot=c.spot, region=provider.region):
                response = provider.ec2.run_instances(**kwargs)
            return response["Instances"][0]["InstanceId"]
        except CapacityError as exc:
            tried.append(f"{c.label}: {str(exc).splitlines()[0]}")
        except QuotaError as exc:
            if not (c.spot and plan.request.spot == "preferred"):
                raise
            spot_blocked = True
            tried.append(f"{c.label}: {str(exc).splitlines()[0]}")
    raise CapacityError(
        f"no capacity for machine {plan.request.name!r} in {provider.region}; tried:\n  "
        + "\n  ".join(tried)
        + "\nadd fallback_types, allow on-demand, or try another region"
    )


def acquire(provider: AwsProvider, plan: LaunchPlan, *, token: str) -> Machine:
    """The body of ``AwsProvider.acquire``: execute ``plan`` as ``prepare`` resolved it."""
    req = plan.request
    instance_id = find_by_token(provider, token)
    pinned: str | None = None
    if instance_id is None:
        shared = resource_tags(run_id=req.run_id, owner=provider.owner, deadline=None)
        with provider.lock:
            key_name = ensure_key_pair(provider, req.run_id, shared)
            group_id = ensure_security_group(
                provider, req.run_id, plan.vpc_id, shared, plan.ingress
            )
        host_key = provider.new_host_key()
        extra = {TAG_TOKEN: token}
        if host_key is not None:
            pinned = host_key.public_line
            extra[TAG_HOSTKEY] = pinned
        instance_id = launch_first(
            provider,
            plan,
            user_data=provider.render_user_data(req, host_key),
            key_name=key_name,
            security_group_id=group_id,
            token=token,
            extra_tags=extra,
        )
    try:
        return wait_ready(provider, instance_id, pinned)
    except BaseException:
        # Whatever went wrong (timeout, mismatch, Ctrl-C), the machine must not outlive us.
        provider.release(instance_id)
        raise


def instance(provider: AwsProvider, instance_id: str) -> dict[str, Any]:
    """The described instance ``instance_id`` (raises on an unknown id: see ``consistency``)."""
    with aws_errors(region=provider.region):
        reservations = provider.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return dict(reservations[0]["Instances"][0])


def _tags(inst: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in inst.get("Tags", [])}


def wait_ready(provider: AwsProvider, instance_id: str, pinned: str | None) -> Machine:
    """Wait for running, a healthy status, a known host key, and an SSH answer."""
    clock, waits = provider.clock, provider.waits
    deadline = clock.monotonic() + waits.launch_timeout_s
    what = f"instance {instance_id}"

    def out_of_time(stage: str, detail: str = "") -> LaunchTimeout:
        return LaunchTimeout(
            f"{what} not ready within {waits.launch_timeout_s:.0f}s ({stage}){detail}; "
            "it has been terminated"
        )

    while True:
        # Right after RunInstances the id may be unknown to DescribeInstances for a while.
        inst = until_visible(
            lambda: instance(provider, instance_id),
            codes=INSTANCE_NOT_YET,
            sleep=provider.sleep,
            backoff=waits.not_found,
        )
        state = inst.get("State", {}).get("Name", "")
        if state in ("shutting-down", "terminated", "stopping", "stopped"):
            reason = inst.get("StateReason", {}).get("Message", "no reason given")
            raise ProviderError(f"{what} went {state} during launch: {reason}")
        if state == "running" and ip_of(provider, inst):
            break
        if clock.monotonic() >= deadline:
            raise out_of_time(f"state {state or 'unknown'}")
        provider.sleep(waits.poll_s)

    def statuses() -> Any:
        with aws_errors(region=provider.region):
            return provider.ec2.describe_instance_status(InstanceIds=[instance_id])

    answer = until_visible(
        statuses, codes=INSTANCE_NOT_YET, sleep=provider.sleep, backoff=waits.not_found
    )
    for status in answer.get("InstanceStatuses", []):
        summaries: dict[str, Any] = dict(status)
        for check in ("InstanceStatus", "SystemStatus"):
            if summaries.get(check, {}).get("Status") == "impaired":
                raise ProviderError(f"{what} failed its {check} check (impaired)")

    pinned = pinned or _tags(inst).get(TAG_HOSTKEY)
    while pinned is None:
        pinned = provider.host_keys.host_key(instance_id)
        if pinned is None:
            if clock.monotonic() >= deadline:
                raise out_of_time("no host key in the console output yet")
            provider.sleep(waits.poll_s)

    delay, last, stage = 1.0, "", "SSH"
    while True:
        if endpoints_mapped() and endpoint_for(instance_id) is None:
            last = "no endpoint mapped yet"
            if clock.monotonic() >= deadline:
                raise out_of_time(stage, f": {last}")
            provider.sleep(waits.poll_s / 5)
            continue
        # Re-read each time: the endpoint of an instance can appear after it is running.
        machine = machine_from(provider, inst, host_key=pinned)
        assert machine.address is not None
        transport = provider.transport_factory(machine.address)
        try:
            transport.run(["true"], timeout_s=waits.ssh_attempt_timeout_s, check=True)
            stage = "deadline timer"
            if deadline_armed(transport, what, waits.ssh_attempt_timeout_s):
                return machine
            last = "cloud-init has not armed it yet"
        except HostKeyMismatch:
            raise  # never retried: a different key is an attack or a broken image, not a delay
        except (TransportError, OSError) as exc:
            last = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        finally:
            transport.close()
        if clock.monotonic() >= deadline:
            raise out_of_time(stage, f": last error {last}")
        provider.sleep(delay)
        delay = min(delay * 2, waits.ssh_backoff_max_s)


def deadline_armed(transport: Transport, what: str, timeout_s: float) -> bool:
    """Whether the instance's own deadline timer is armed (layer 3 of the cost cap).

    Returns False while cloud-init is still working towards it.

    Raises:
        ProviderError: cloud-init has finished and the timer is not armed: a machine that
            cannot stop itself is not handed to the engine (the caller releases it).
    """
    result = transport.run(["bash", "-c", DEADLINE_CHECK], timeout_s=timeout_s, check=False)
    if result.exit_code == 0:
        return True
    if result.exit_code == 3:
        return False
    raise ProviderError(
        f"{what}: its deadline timer is not armed, so it could outlive this run unattended; "
        f"it has been terminated ({result.tail(lines=3) or f'exit {result.exit_code}'})"
    )


def machine_from(provider: AwsProvider, inst: dict[str, Any], *, host_key: str | None) -> Machine:
    """A ``Machine`` value for a described instance."""
    tags = _tags(inst)
    itype = str(inst.get("InstanceType", ""))
    cpus, gpus = type_info(provider, itype)
    spot = inst.get("InstanceLifecycle") == "spot"
    ip = ip_of(provider, inst)
    run_id = tags.get(TAG_RUN, "")
    host, port = endpoint_for(str(inst["InstanceId"])) or (str(ip), 22)
    address = (
        Address(
            host=host,
            port=port,
            user=tags.get(TAG_USER, "ubuntu"),
            key_path=str(provider.key_path(run_id)),
            host_key=host_key or tags.get(TAG_HOSTKEY),
        )
        if ip
        else None
    )
    launched = inst.get("LaunchTime")
    return Machine(
        id=str(inst["InstanceId"]),
        provider="aws",
        name=tags.get(TAG_MACHINE, ""),
        address=address,
        gpus=gpus,
        cpus=cpus,
        hourly_usd=provider.price(itype, spot),
        started_at=launched if isinstance(launched, datetime) else provider.clock.now(),
        tags=tags,
        instance_type=itype,
    )


def ip_of(provider: AwsProvider, inst: dict[str, Any]) -> str | None:
    """The address SSH goes to: public, or private with ``use_private_ip`` (a VPN)."""
    key = "PrivateIpAddress" if provider.use_private_ip else "PublicIpAddress"
    value = inst.get(key)
    return str(value) if value else None


def describe_machine(provider: AwsProvider, instance_id: str) -> Machine | None:
    """The ``Machine`` for an instance id, or None if it is unknown."""
    try:
        inst = instance(provider, instance_id)
    except ProviderError as exc:
        if error_code(exc.__cause__ or exc) == "InvalidInstanceID.NotFound":
            return None
        raise
    return machine_from(provider, inst, host_key=None)


def reconnect(provider: AwsProvider, run_id: str, name: str) -> Transport | None:
    """A connection to ``run_id``'s running instance ``name``, its host key pinned as at
    launch (the tag, else the console output), answering one command; None when no such
    instance runs (its jobs ended with it) or its key cannot be pinned.

    Why: after a crash, ``down`` fetches what finished trainers left on the instance before
    releasing it; without this, terminating it would throw those results away.
    """
    from infra.aws.gc import list_ours

    for resource in list_ours(provider.ec2, region=provider.region, run_id=run_id):
        if resource.kind != "instance" or resource.tags.get(TAG_MACHINE) != name:
            continue
        inst = instance(provider, resource.id)
        if inst.get("State", {}).get("Name") != "running":
            continue
        pinned = _tags(inst).get(TAG_HOSTKEY) or provider.host_keys.host_key(resource.id)
        machine = machine_from(provider, inst, host_key=pinned)
        if pinned is None or machine.address is None:
            return None
        transport = provider.transport_factory(machine.address)
        try:
            transport.run(["true"], timeout_s=provider.waits.ssh_attempt_timeout_s)
        except BaseException:
            transport.close()
            raise
        return transport
    return None


def type_info(provider: AwsProvider, instance_type: str) -> tuple[int, int]:
    """(vCPUs, GPUs) of an instance type, cached per provider."""
    if instance_type not in provider.type_cache:
        cpus = gpus = 0
        try:
            with aws_errors(region=provider.region):
                rows = provider.ec2.describe_instance_types(
                    InstanceTypes=[cast(Any, instance_type)]
                )
            for row in rows.get("InstanceTypes", []):
                cpus = int(row.get("VCpuInfo", {}).get("DefaultVCpus", 0))
                gpus = sum(int(g.get("Count", 0)) for g in row.get("GpuInfo", {}).get("Gpus", []))
        except ProviderError:
            pass  # unknown sizes only make the Machine less informative, not wrong
        provider.type_cache[instance_type] = (cpus, gpus)
    return provider.type_cache[instance_type]
