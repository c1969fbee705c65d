"""AwsProvider: EC2 machines behind the Provider contract.

``prepare`` resolves the launch with read-only calls (image, network, offerings) and returns
it; ``acquire`` executes that plan: the run's key pair and security group, fallback (spot, then
on-demand; each type; each zone), SSH with the pinned host key; on failure it terminates what
it made. A retried ``acquire`` with the same token finds the machine the first try made.

Clients are injected (``ec2=``, ``ssm=``, ``session=``) or created lazily from a profile and
region; ``transport_factory`` turns an ``Address`` into a ``Transport`` (SSH in production, a
fake in unit tests); ``clock`` and ``sleep`` are seams so waits cost no time in tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ami.resolve import ImageAccessDenied, ImageNotFound, ImageRef, resolve_image
from ami.spec import ImageSpec
from ami.userdata import HostKey, UserDataError, render_user_data
from infra.aws import launch as launching
from infra.aws import launch_plan, ready
from infra.aws.consistency import INSTANCE_NOT_YET, code_of, until_visible
from infra.aws.context import (
    TransportFactory,
    Waits,
    default_owner,
    ssh_transport_factory,
)
from infra.aws.errors import aws_errors
from infra.aws.gc import Receipt, list_ours
from infra.aws.hostkeys import HostKeySource, generate_ed25519
from infra.aws.requests import (
    TAG_SETUP,
    TAG_SPEC,
    TAG_USER,
    cloud_name,
    create_security_group_kwargs,
    import_key_pair_kwargs,
    name_tag,
    redact,
    resource_tags,
    ssh_ingress,
)
from infra.clock import Clock, SystemClock
from infra.errors import ProviderError
from infra.prices import PriceSource
from infra.provider import Address, ApiCall, LaunchRequest, Machine, MachineRequest
from infra.transport.base import Transport

if TYPE_CHECKING:
    import boto3.session
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ssm import SSMClient

    from infra.aws.bake import BakedImage


class AwsProvider:
    """EC2 behind the Provider contract (see ``infra.provider.Provider`` for the rules)."""

    name = "aws"

    def __init__(
        self,
        *,
        state_dir: Path,
        session: boto3.session.Session | None = None,
        ec2: EC2Client | None = None,
        ssm: SSMClient | None = None,
        region: str | None = None,
        profile: str | None = None,
        ssh_cidr: str | None = None,
        allow_open_ssh: bool = False,
        subnet_id: str | None = None,
        vpc_id: str | None = None,
        use_private_ip: bool = False,
        ssh_proxy: Address | None = None,
        owner: str | None = None,
        host_keys: HostKeySource | None = None,
        inject_host_key: bool = True,
        prefer_baked: bool = True,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport_factory: TransportFactory | None = None,
        prices: PriceSource | None = None,
        waits: Waits | None = None,
    ) -> None:
        self._session = session
        self._ec2 = ec2
        self._ssm = ssm
        self._profile = profile
        self._region = region
        self.ssh_cidr = ssh_cidr
        self.allow_open_ssh = allow_open_ssh
        self.subnet_id = subnet_id
        self.vpc_id = vpc_id
        self.use_private_ip = use_private_ip
        self.ssh_proxy = ssh_proxy
        self.owner = owner or default_owner()
        self.state_dir = state_dir
        self._host_keys = host_keys
        self.inject_host_key = inject_host_key
        self.prefer_baked = prefer_baked
        self.clock: Clock = clock or SystemClock()
        self.sleep = sleep
        self.transport_factory: TransportFactory = transport_factory or ssh_transport_factory
        self.prices = prices
        self.waits = waits or Waits()
        self._images: dict[ImageSpec, ImageRef] = {}
        self.type_cache: dict[str, tuple[int, int]] = {}
        # Machines of one run are acquired in parallel; they share one key pair and one SG.
        self.lock = threading.Lock()

    # ------------------------------------------------------------------ clients
    @property
    def region(self) -> str:
        """The region every call goes to (given, or the session's / client's own)."""
        if self._region:
            return self._region
        if self._ec2 is not None:
            self._region = self._ec2.meta.region_name
        else:
            self._region = self._boto_session().region_name
        return self._region

    def _boto_session(self) -> boto3.session.Session:
        if self._session is None:
            from infra.aws.session import make_session

            self._session = make_session(profile=self._profile, region=self._region)
        return self._session

    @property
    def ec2(self) -> EC2Client:
        """The EC2 client, made on first use (plan never needs credentials)."""
        if self._ec2 is None:
            from infra.aws.session import ec2_client

            self._ec2 = ec2_client(self._boto_session())
        return self._ec2

    @property
    def ssm(self) -> SSMClient:
        """The SSM client, for the specs' public image parameters; made on first use."""
        if self._ssm is None:
            from infra.aws.session import ssm_client

            self._ssm = ssm_client(self._boto_session())
        return self._ssm

    @property
    def host_keys(self) -> HostKeySource:
        """Where host keys come from when none was injected: the console output."""
        if self._host_keys is None:
            from infra.aws.hostkeys import ConsoleHostKeys

            self._host_keys = ConsoleHostKeys(self.ec2)
        return self._host_keys

    def key_path(self, run_id: str) -> Path:
        """Where the run's private login key lives (0600; deleted by ``teardown_run``)."""
        return self.state_dir / "keys" / f"{cloud_name(run_id)}.pem"

    # ------------------------------------------------------------------ images
    def resolve_image(self, spec: ImageSpec) -> ImageRef:
        """The image ``spec`` launches from here: a baked one if preferred and present.

        Raises:
            ProviderError: no rule of the spec finds an image in this region.
        """
        if spec in self._images:
            return self._images[spec]
        ref: ImageRef | None = None
        if self.prefer_baked and spec.ami_id is None:
            ref = self.find_image(spec)
        if ref is None:
            try:
                with aws_errors(region=self.region):
                    ref = resolve_image(spec, region=self.region, ec2=self.ec2, ssm=self.ssm)
            except ImageAccessDenied as exc:
                raise ProviderError(
                    f"{exc}: your AWS identity may not call ssm:GetParameter; grant it in IAM"
                ) from exc
            except ImageNotFound as exc:
                raise ProviderError(f"{exc}; check `orchestrate ami list` and the region") from exc
        self._images[spec] = ref
        return ref

    # ------------------------------------------------------------------ Provider
    def prepare(self, req: MachineRequest) -> LaunchRequest:
        """The calls ``acquire`` will make for ``req``; reads catalogs, creates nothing.

        Secrets are not in the result: the login key and the host key are generated by
        ``acquire``, so ``UserData`` and ``PublicKeyMaterial`` appear as placeholders.

        Raises:
            ProviderError: the request lacks an image, instance types or a deadline, names
                another region, or the SSH CIDR is missing or open to the world.
        """
        plan = launch_plan.plan_launch(self, req)
        first = plan.candidates[0]
        run_kwargs = redact(plan.run_kwargs(first, user_data=f"<cloud-config: {plan.timer}>"))
        run_kwargs["ClientToken"] = "<acquire token + candidate>"
        calls = (
            ApiCall(
                "ec2.import_key_pair",
                import_key_pair_kwargs(
                    req.run_id, "<ed25519 public key generated at launch>", plan.tags
                )
                | {"PublicKeyMaterial": "<ed25519 public key generated at launch>"},
            ),
            ApiCall(
                "ec2.create_security_group",
                create_security_group_kwargs(req.run_id, "<default VPC>", plan.tags),
            ),
            ApiCall(
                "ec2.authorize_security_group_ingress",
                {"GroupId": "<from create_security_group>", "IpPermissions": plan.ingress},
            ),
            ApiCall("ec2.run_instances", run_kwargs),
        )
        # The dearest candidate: the machine may come up as any of them.
        price = max(self.price(c.instance_type, c.spot) for c in plan.candidates)
        # Fallback order with zones folded: "g4dn.xlarge spot -> g4dn.xlarge on-demand".
        order = list(
            dict.fromkeys(replace(c, zone=None, subnet_id=None).label for c in plan.candidates)
        )
        zones = sorted({c.zone for c in plan.candidates if c.zone})
        summary = (
            f"{' -> '.join(order)} (each across {len(zones)} zone(s)) in {self.region}, "
            f"from {plan.image.ami_id} ({plan.image.name}), {plan.timer}"
        )
        return LaunchRequest("aws", req, calls, price, summary, resolved=plan)

    def acquire(self, launch: LaunchRequest, *, token: str) -> Machine:
        """Launch (or find, for a retried ``token``) one machine and wait until SSH answers.

        Raises:
            CapacityError: every candidate type/zone/market was out of capacity.
            QuotaError: an account quota blocks the launch (names the quota to raise).
            CredentialsError: no usable credentials.
            LaunchTimeout: the machine did not answer in time; it has been terminated.
        """
        plan = launch.resolved
        if not isinstance(plan, launch_plan.LaunchPlan) or plan.request != launch.request:
            plan = launch_plan.plan_launch(self, launch.request)  # made elsewhere (offline plan)
        return launching.acquire(self, plan, token=token)

    def release(self, machine_id: str) -> None:
        """Request termination; an unknown or already-terminated id returns silently.

        An error from TerminateInstances is settled by a describe, never assumed: EC2 may not
        know a just-launched id yet (``InvalidInstanceID.NotFound`` does not mean gone), so the
        instance is looked up with backoff; one already going or gone is done, a live one is
        terminated again, and one that stays unknown through the backoff is unknown.
        """
        try:
            self._terminate(machine_id)
            return
        except ProviderError as exc:
            if code_of(exc) == "InvalidInstanceID.Malformed":
                return
            failure = exc
        try:
            inst = until_visible(
                lambda: ready.instance(self, machine_id),
                codes=INSTANCE_NOT_YET,
                sleep=self.sleep,
                backoff=self.waits.not_found,
            )
        except ProviderError as again:
            if code_of(again) == "InvalidInstanceID.NotFound":
                return
            raise
        state = inst.get("State", {}).get("Name")
        if state in ("shutting-down", "terminated"):
            return
        if code_of(failure) != "InvalidInstanceID.NotFound":
            raise failure
        self._terminate(machine_id)

    def _terminate(self, machine_id: str) -> None:
        with aws_errors(region=self.region):
            self.ec2.terminate_instances(InstanceIds=[machine_id])

    def owned(self, *, run_id: str | None = None) -> list[Machine]:
        """Every live instance carrying our tags (of ``run_id`` when given)."""
        machines = []
        for resource in list_ours(self.ec2, region=self.region, run_id=run_id):
            if resource.kind == "instance":
                machines.append(ready.describe_machine(self, resource.id))
        return [m for m in machines if m is not None]

    def connect(self, machine: Machine) -> Transport:
        """A transport to ``machine`` with its host key pinned."""
        if machine.address is None:
            raise ProviderError(f"machine {machine.id} has no address (not running?)")
        return self.transport_factory(machine.address)

    def reconnect(self, run_id: str, name: str) -> Transport | None:
        """The run's running instance ``name``, for ``down`` to fetch what finished trainers
        left before releasing it; None when none runs (``launch.reconnect``)."""
        return ready.reconnect(self, run_id, name)

    def locate(self, run_id: str, name: str) -> Machine | None:
        """The run's running instance ``name`` (address and host key as at launch), or None."""
        return next((m for m in self.owned(run_id=run_id) if m.name == name), None)

    def bootstrap(
        self, machine: Machine, transport: Transport, *, first: str | None = None
    ) -> Machine:
        """The spec's setup unless baked, staged (``infra.aws.staged_setup``); its python."""
        from ami.spec import spec_for
        from infra.aws.staged_setup import run_setup

        spec = spec_for(machine.tags.get(TAG_SPEC, "") or "ubuntu24-cpu")
        ready_dir = None
        if machine.tags.get(TAG_SETUP) == "needed":
            ready_dir = run_setup(transport, spec, first)
        return replace(machine, python=spec.venv_python, setup_ready_dir=ready_dir)

    # ------------------------------------------------------------------ images (ComputeWithImages)
    def find_image(self, spec: ImageSpec) -> ImageRef | None:
        """The newest baked image of exactly ``spec`` in this region, or None."""
        from infra.aws.bake import find_baked

        return find_baked(self.ec2, spec, region=self.region)

    def bake_image(
        self, spec: ImageSpec, *, run_id: str, instance_type: str, deadline: datetime, token: str
    ) -> ImageRef:
        """Bake ``spec`` here (see ``infra.aws.bake.bake`` for the contract)."""
        from infra.aws.bake import bake

        return bake(
            self, spec, run_id=run_id, instance_type=instance_type, deadline=deadline, token=token
        )

    def list_images(self) -> list[BakedImage]:
        """Every baked image of ours in this region, newest first."""
        from infra.aws.bake import list_baked

        return list_baked(self.ec2, region=self.region)

    # ------------------------------------------------------------------ teardown
    def teardown_run(self, run_id: str) -> Receipt:
        """Terminate every instance of ``run_id`` and wait, then delete its SG and key pair
        (``infra.aws.teardown.teardown_run`` holds the contract)."""
        from infra.aws.teardown import teardown_run

        return teardown_run(self, run_id)

    # ------------------------------------------------------------------ helpers
    def price(self, instance_type: str, spot: bool) -> float:
        """Hourly USD from the catalog; 0 only where no catalog was given (tests)."""
        if self.prices is None:
            return 0.0
        return self.prices.hourly_usd(instance_type, self.region, spot=spot) or 0.0

    def render_user_data(self, req: MachineRequest, host_key: HostKey | None) -> str:
        """The cloud-config for one machine of ``req`` (deadline timer, pinned host key)."""
        if req.deadline is None:
            raise ProviderError(
                "an AWS machine needs a deadline (the instance's own shutdown timer)"
            )
        try:
            return render_user_data(deadline=req.deadline, host_key=host_key)
        except UserDataError as exc:
            raise ProviderError(str(exc)) from exc

    def tags_for(self, req: MachineRequest, image: ImageRef, spec: ImageSpec) -> dict[str, str]:
        """Instance and volume tags: ours, the plan's, the login user, whether setup is due."""
        tags = resource_tags(
            run_id=req.run_id,
            owner=self.owner,
            deadline=req.deadline,
            machine=req.name,
            extra=req.tags,
        )
        tags["Name"] = name_tag(req.run_id, req.name)  # what the EC2 console lists it as
        tags[TAG_USER] = spec.user
        # The spec rides on the launch itself, so bootstrap picks the right setup (cuda for a
        # GPU image) for launched and baked images alike.
        tags[TAG_SPEC] = spec.name
        tags[TAG_SETUP] = "baked" if image.source.startswith("baked:") else "needed"
        return tags

    def ingress(self) -> list[dict[str, Any]]:
        """The SSH rule for the run's security group (refuses an open CIDR)."""
        return ssh_ingress(self.ssh_cidr, allow_open_ssh=self.allow_open_ssh)

    def new_host_key(self) -> HostKey | None:
        """A fresh injected host key, or None when pinning from console output."""
        return generate_ed25519() if self.inject_host_key else None
