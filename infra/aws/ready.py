"""Readiness and description of launched instances: running, healthy, host key known, SSH
answering, deadline timer armed; and the ``Machine`` value of a described instance.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from ami.userdata import DEADLINE_CHECK
from infra.aws.consistency import INSTANCE_NOT_YET, until_visible
from infra.aws.endpoints import endpoint_for, endpoints_mapped
from infra.aws.errors import aws_errors, error_code
from infra.aws.requests import TAG_HOSTKEY, TAG_MACHINE, TAG_RUN, TAG_USER
from infra.errors import HostKeyMismatch, LaunchTimeout, ProviderError, TransportError
from infra.provider import EC2_METADATA_URL, METADATA_TAG, Address, Machine
from infra.transport.base import Transport

if TYPE_CHECKING:
    from infra.aws.context import AwsContext


def instance(provider: AwsContext, instance_id: str) -> dict[str, Any]:
    """The described instance ``instance_id`` (raises on an unknown id: see ``consistency``)."""
    with aws_errors(region=provider.region):
        reservations = provider.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return dict(reservations[0]["Instances"][0])


def _tags(inst: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in inst.get("Tags", [])}


def wait_ready(provider: AwsContext, instance_id: str, pinned: str | None) -> Machine:
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


def machine_from(provider: AwsContext, inst: dict[str, Any], *, host_key: str | None) -> Machine:
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
            jump=provider.ssh_proxy,  # a bastion into the VPC, when configured
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
        tags={**tags, METADATA_TAG: EC2_METADATA_URL},
        instance_type=itype,
    )


def ip_of(provider: AwsContext, inst: dict[str, Any]) -> str | None:
    """The address SSH goes to: public, or private with ``use_private_ip`` (a VPN)."""
    key = "PrivateIpAddress" if provider.use_private_ip else "PublicIpAddress"
    value = inst.get(key)
    return str(value) if value else None


def describe_machine(provider: AwsContext, instance_id: str) -> Machine | None:
    """The ``Machine`` for an instance id, or None if it is unknown."""
    try:
        inst = instance(provider, instance_id)
    except ProviderError as exc:
        if error_code(exc.__cause__ or exc) == "InvalidInstanceID.NotFound":
            return None
        raise
    return machine_from(provider, inst, host_key=None)


def reconnect(provider: AwsContext, run_id: str, name: str) -> Transport | None:
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


def type_info(provider: AwsContext, instance_type: str) -> tuple[int, int]:
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
