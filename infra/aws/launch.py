"""The launch half of AwsProvider: run-wide key pair and SG, fallback across the plan's
candidates, then readiness (``infra.aws.ready``). Every function takes the provider's context
(``infra.aws.context.AwsContext``: clients, clock, settings), never the provider class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from infra.aws.consistency import GROUP_NOT_YET, until_visible
from infra.aws.errors import aws_errors, error_code
from infra.aws.hostkeys import generate_ed25519, public_line_of, write_private_key
from infra.aws.launch_plan import LaunchPlan
from infra.aws.ready import wait_ready
from infra.aws.requests import (
    TAG_HOSTKEY,
    TAG_TOKEN,
    cloud_name,
    create_security_group_kwargs,
    for_group,
    import_key_pair_kwargs,
    resource_tags,
)
from infra.errors import CapacityError, ProviderError, QuotaError
from infra.provider import Machine

if TYPE_CHECKING:
    from infra.aws.context import AwsContext


def ensure_key_pair(provider: AwsContext, run_id: str, tags: dict[str, str]) -> str:
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
    provider: AwsContext, run_id: str, vpc_id: str, tags: dict[str, str], ingress: list[Any]
) -> str:
    """The run's security group in ``vpc_id``: SSH from the configured CIDR only, and the
    workers' ports from the group's own members (the plan's rules, ``for_group``)."""
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
        rules: list[Any] = for_group(ingress, group_id)
        # The new group's id may not have propagated yet: InvalidGroup.NotFound means "not yet".
        until_visible(
            lambda: ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=rules),
            codes=GROUP_NOT_YET,
            sleep=provider.sleep,
            backoff=provider.waits.not_found,
        )
    return group_id


def find_by_token(provider: AwsContext, token: str) -> str | None:
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


def launch_first(provider: AwsContext, plan: LaunchPlan, **run: Any) -> str:
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


def acquire(provider: AwsContext, plan: LaunchPlan, *, token: str) -> Machine:
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
