"""Experiment -> the provider config that serves it, the provider, and the machines it offers.

The orchestrator names configs (``infra.registry``), never provider classes: the registry
builds the provider, and the config goes into the journal's run row so ``down`` rebuilds the
same provider from the journal alone (``provider_for_run``). Provider modules are imported
lazily, so ``plan`` on a local experiment never imports boto3 or paramiko.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from infra.aws.facts import DEFAULT_REGION
from infra.errors import CredentialsError, ProviderError
from infra.local import local_capacity
from infra.prices import PriceSource, dearest
from infra.provider import Address, LaunchRequest, Machine, MachineRequest, Provider, SpotMode
from infra.registry import (
    AwsConfig,
    LocalConfig,
    ProviderConfig,
    SshConfig,
    config_from_json,
    open_provider,
)
from infra.tags import machine_tags
from infra.transport.base import Transport
from orchestrator.cost import instance_deadline
from orchestrator.errors import SpecError, SpecIssue
from orchestrator.plan import MachineOffer, deadline_for
from orchestrator.spec import Experiment
from orchestrator.state import RunRow

LOCAL_GPUS_ENV = "ORCHESTRATE_LOCAL_GPUS"  # overrides GPU detection (tests; hiding GPUs)


@dataclass(frozen=True)
class ProviderSetup:
    """What the plan needs of a provider: its config (journalled), itself, its offers."""

    config: ProviderConfig
    provider: Provider
    offers: list[MachineOffer]


def build_provider(
    exp: Experiment,
    *,
    run_id: str,
    state_dir: Path,
    local: bool,
    now: datetime,
    prices: PriceSource | None = None,
) -> ProviderSetup:
    """The provider for this experiment (``--local`` forces this machine)."""
    deadline = deadline_for(exp, now)
    if local or exp.provider == LocalConfig.name:
        return _local(exp, run_id=run_id, state_dir=state_dir, deadline=deadline)
    if exp.provider == SshConfig.name:
        return _ssh(exp, run_id=run_id, deadline=deadline)
    return _aws(exp, run_id=run_id, state_dir=state_dir, now=now, prices=prices)


def provider_for_run(run: RunRow, *, state_dir: Path) -> Provider:
    """The provider a journalled run used, from the config its row keeps (``down``, ``ssh``).

    Rows journalled before the config was kept fall back to the experiment file (a local run
    needs none); that fallback raises ``SpecError`` when the file is gone.
    """
    if run.provider_config:
        return open_provider(config_from_json(run.provider_config))
    if run.provider == LocalConfig.name:
        root = str((Path(state_dir) / "workspaces").resolve())
        return open_provider(LocalConfig(workspace_root=root, gpus=0, slots=1))
    from orchestrator.specfile import load_experiment

    exp = load_experiment(Path(run.spec_path))
    now = datetime.now(UTC)
    return build_provider(exp, run_id=run.id, state_dir=state_dir, local=False, now=now).provider


def _local(exp: Experiment, *, run_id: str, state_dir: Path, deadline: datetime) -> ProviderSetup:
    gpus_env = os.environ.get(LOCAL_GPUS_ENV)
    # Own commands share one workdir, where outputs are told apart by time: one at once.
    slots = 1 if any(job.run for job in exp.jobs) else None
    capacity = local_capacity(gpus=int(gpus_env) if gpus_env else None, slots=slots)
    config = LocalConfig(
        workspace_root=str((state_dir / "workspaces").resolve()),
        gpus=capacity.gpus,
        slots=capacity.slots,
    )
    req = MachineRequest(
        run_id=run_id,
        name="local",
        gpus=capacity.gpus,
        deadline=deadline,
        tags=machine_tags(run_id, "local", deadline),
    )
    offer = MachineOffer(
        req, slots=capacity.slots, gpus=capacity.gpus, gpu_reason=capacity.gpu_reason
    )
    return ProviderSetup(config, open_provider(config), [offer])


def _ssh(exp: Experiment, *, run_id: str, deadline: datetime) -> ProviderSetup:
    from orchestrator.ssh_inventory import host_specs

    specs = host_specs(exp)  # ssh config aliases resolved (orchestrator.ssh_inventory)
    config = SshConfig(tuple(specs), deadline_s=exp.connect_deadline_s)
    offers = [
        MachineOffer(
            MachineRequest(
                run_id=run_id,
                name=spec.name,
                gpus=spec.gpus,
                deadline=deadline,
                tags=machine_tags(run_id, spec.name, deadline),
            ),
            slots=spec.slots,
            gpus=spec.gpus,
            gpu_reason="" if spec.gpus else f"host {spec.name} has no GPU (gpus: 0)",
        )
        for spec in specs
    ]
    return ProviderSetup(config, open_provider(config), offers)


def _bastion(exp: Experiment) -> Address | None:
    """The experiment's ``ssh_proxy`` as the pinned jump address every AWS machine's has."""
    proxy = exp.ssh_proxy
    if proxy is None:
        return None
    return Address(
        host=proxy.host,
        port=proxy.port,
        user=proxy.user or getpass.getuser(),
        key_path=str(Path(proxy.key).expanduser()) if proxy.key else None,
        host_key=proxy.host_key,
        known_hosts=str(Path(proxy.known_hosts).expanduser()) if proxy.known_hosts else None,
    )


def _aws(
    exp: Experiment, *, run_id: str, state_dir: Path, now: datetime, prices: PriceSource | None
) -> ProviderSetup:
    from ami.spec import ImageSpecError, spec_for

    config = AwsConfig(
        state_dir=str((state_dir / "aws").resolve()),
        region=exp.region,
        profile=exp.profile,
        ssh_cidr=exp.ssh_cidr,
        allow_open_ssh=exp.allow_open_ssh,
        subnet_id=exp.subnet_id,
        vpc_id=exp.vpc_id,
        use_private_ip=exp.use_private_ip,
        ssh_proxy=_bastion(exp),
    )
    provider = open_provider(config, prices=prices)
    from infra.aws.types import type_facts

    facts = type_facts(config.state_dir, profile=config.profile, region=config.region)
    offers = []
    issues = []
    region = exp.region or DEFAULT_REGION
    for name, mc in exp.machines.items():
        try:
            image = spec_for(mc.ami)
        except (ImageSpecError, LookupError) as exc:
            issues.append(SpecIssue("experiment", 0, 0, f"machines.{name}.ami", str(exc)))
            continue
        # The dearest type the machine may fall back to: the deadline must hold whichever runs.
        price = (
            dearest(prices, (mc.instance_type, *mc.fallback_types), region, spot=bool(mc.spot))
            if prices
            else 0.0
        )
        # Layer 3 of the cap: each instance's own timer, the sooner of max_hours and budget.
        deadline = instance_deadline(
            now=now,
            max_hours=exp.budget.max_hours,
            cap_usd=exp.budget.max_usd,
            spent_usd=0.0,
            hourly_usd=price or 0.0,
        )
        # GPUs as EC2 describes the type (cached in the state dir; the table only offline).
        gpus = mc.gpus if mc.gpus is not None else facts.gpus(mc.instance_type)
        spot: SpotMode = "required" if mc.spot == "required" else ("preferred" if mc.spot else "no")
        req = MachineRequest(
            run_id=run_id,
            name=name,
            instance_types=(mc.instance_type, *mc.fallback_types),
            image=image,
            spot=spot,
            gpus=gpus,
            deadline=deadline,
            tags=machine_tags(run_id, name, deadline),
            region=exp.region,
            zones=tuple(mc.zones),
        )
        reason = "" if gpus else f"machine class {name} ({mc.instance_type}) has no GPU"
        offers.append(MachineOffer(req, slots=1, gpus=gpus, gpu_reason=reason))
        for k in range(2, _gang_width(exp, name) + 1):  # a nodes: N gang needs N instances
            replica = f"{name}-{k}"
            tags = machine_tags(run_id, replica, deadline)
            offers.append(
                MachineOffer(
                    replace(req, name=replica, tags=tags),
                    slots=1,
                    gpus=gpus,
                    gpu_reason=reason,
                    machine_class=name,
                )
            )
    if issues:
        raise SpecError(issues)
    return ProviderSetup(config, provider, offers)


def _gang_width(exp: Experiment, name: str) -> int:
    """How many instances of machine class ``name`` the widest gang placed there needs: with
    ``placement: by-device`` the classes ``cpu``/``gpu`` take only their device's jobs."""
    by_device = exp.placement == "by-device" and name in ("cpu", "gpu")
    return max((j.nodes for j in exp.jobs if not by_device or name in j.device), default=1)


class OfflinePlanning:
    """Wraps a provider for ``plan``/``--dry-run``: without credentials, plan from what is
    known here (the file and the price catalog) instead of failing; ``run`` never uses it."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.name = inner.name
        self.note: str | None = None

    def prepare(self, req: MachineRequest) -> LaunchRequest:
        """The inner provider's request, or without credentials a summary from the file."""
        try:
            return self.inner.prepare(req)
        except CredentialsError as exc:
            self.note = f"AWS was not consulted ({exc}); the exact requests show with credentials"
            types = " -> ".join(req.instance_types)
            image = req.image.name if req.image else "?"
            summary = f"{types} from image spec {image} (not resolved: no credentials)"
            return LaunchRequest(self.name, req, (), 0.0, summary)

    def acquire(self, launch: LaunchRequest, *, token: str) -> Machine:
        """Refused: planning launches nothing."""
        raise ProviderError("a plan-only provider launches nothing")

    def release(self, machine_id: str) -> None:
        """Nothing was acquired, so nothing to release."""
        return None

    def owned(self, *, run_id: str | None = None) -> list[Machine]:
        """Nothing: planning holds no machine."""
        return []

    def connect(self, machine: Machine) -> Transport:
        """Refused: planning reaches nothing."""
        raise ProviderError("a plan-only provider reaches nothing")

    def reconnect(self, run_id: str, name: str) -> Transport | None:
        """Nothing: planning reaches nothing."""
        return None

    def teardown_run(self, run_id: str) -> None:
        """Nothing: planning makes nothing."""
        return None

    def locate(self, run_id: str, name: str) -> Machine | None:
        """Nothing: planning holds no machine."""
        return None
