"""Experiment -> the provider that serves it and the machines it offers to placement.

Provider modules are imported lazily, so ``plan`` on a local experiment never imports boto3 or
paramiko (SkyPilot/TorchX registries).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from infra.errors import CredentialsError, ProviderError
from infra.prices import PriceSource
from infra.provider import LaunchRequest, Machine, MachineRequest, Provider, SpotMode
from infra.transport.base import Transport
from orchestrator.cost import instance_deadline
from orchestrator.errors import SpecError, SpecIssue
from orchestrator.plan import MachineOffer, deadline_for
from orchestrator.spec import Experiment

LOCAL_GPUS_ENV = "ORCHESTRATE_LOCAL_GPUS"  # overrides GPU detection (tests; hiding GPUs)


@dataclass(frozen=True)
class ProviderSetup:
    provider: Provider
    offers: list[MachineOffer]


def run_tags(run_id: str, name: str, deadline: datetime) -> dict[str, str]:
    return {
        "orchestrate:run": run_id,
        "orchestrate:owner": os.environ.get("USER", "unknown"),
        "orchestrate:expires": deadline.isoformat(timespec="seconds"),
        "orchestrate:machine": name,
    }


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
    if local or exp.provider == "local":
        from infra.local import LocalProvider

        gpus_env = os.environ.get(LOCAL_GPUS_ENV)
        lp = LocalProvider(
            workspace_root=str((state_dir / "workspaces").resolve()),
            gpus=int(gpus_env) if gpus_env else None,
            # Own commands share one workdir, where outputs are told apart by time: one at once.
            slots=1 if any(job.run for job in exp.jobs) else None,
        )
        req = MachineRequest(
            run_id=run_id,
            name="local",
            gpus=lp.gpus,
            deadline=deadline,
            tags=run_tags(run_id, "local", deadline),
        )
        return ProviderSetup(
            lp, [MachineOffer(req, slots=lp.slots, gpus=lp.gpus, gpu_reason=lp.gpu_reason)]
        )
    if exp.provider == "ssh":
        return _ssh(exp, run_id=run_id, deadline=deadline)
    return _aws(exp, run_id=run_id, state_dir=state_dir, now=now, prices=prices)


def _ssh(exp: Experiment, *, run_id: str, deadline: datetime) -> ProviderSetup:
    from infra.ssh_hosts import SshHostsProvider
    from orchestrator.ssh_inventory import host_specs

    specs = host_specs(exp)  # ssh config aliases resolved (orchestrator.ssh_inventory)
    provider = SshHostsProvider(specs, deadline_s=exp.connect_deadline_s)
    offers = [
        MachineOffer(
            MachineRequest(
                run_id=run_id,
                name=spec.name,
                gpus=spec.gpus,
                deadline=deadline,
                tags=run_tags(run_id, spec.name, deadline),
            ),
            slots=spec.slots,
            gpus=spec.gpus,
            gpu_reason="" if spec.gpus else f"host {spec.name} has no GPU (gpus: 0)",
        )
        for spec in specs
    ]
    return ProviderSetup(provider, offers)


# GPUs per instance type for the types we support: what a launch of that type will get.
GPUS_PER_TYPE = {
    "g4dn.xlarge": 1,
    "g4dn.2xlarge": 1,
    "g5.xlarge": 1,
    "g5.2xlarge": 1,
    "g6.xlarge": 1,
    "p3.2xlarge": 1,
    "p4d.24xlarge": 8,
}


class _CatalogPrices:
    """Adapts the catalog to the AWS provider's price lookup; an unknown type reads as 0."""

    def __init__(self, prices: PriceSource) -> None:
        self.prices = prices

    def hourly_usd(self, instance_type: str, region: str, spot: bool) -> float:
        return self.prices.hourly_usd(instance_type, region, spot=spot) or 0.0


def _aws(
    exp: Experiment, *, run_id: str, state_dir: Path, now: datetime, prices: PriceSource | None
) -> ProviderSetup:
    from ami.spec import ImageSpecError, spec_for
    from infra.aws import AwsProvider

    provider: Provider = AwsProvider(
        state_dir=state_dir / "aws",
        region=exp.region,
        profile=exp.profile,
        ssh_cidr=exp.ssh_cidr,
        allow_open_ssh=exp.allow_open_ssh,
        prices=_CatalogPrices(prices) if prices is not None else None,
    )
    offers = []
    issues = []
    region = exp.region or "us-east-1"
    for name, mc in exp.machines.items():
        try:
            image = spec_for(mc.ami)
        except (ImageSpecError, LookupError) as exc:
            issues.append(SpecIssue("experiment", 0, 0, f"machines.{name}.ami", str(exc)))
            continue
        price = prices.hourly_usd(mc.instance_type, region, spot=bool(mc.spot)) if prices else 0
        # Layer 3 of the cap: each instance's own timer, the sooner of max_hours and budget.
        deadline = instance_deadline(
            now=now,
            max_hours=exp.budget.max_hours,
            cap_usd=exp.budget.max_usd,
            spent_usd=0.0,
            hourly_usd=price or 0.0,
        )
        gpus = mc.gpus if mc.gpus is not None else GPUS_PER_TYPE.get(mc.instance_type, 0)
        spot: SpotMode = "required" if mc.spot == "required" else ("preferred" if mc.spot else "no")
        req = MachineRequest(
            run_id=run_id,
            name=name,
            instance_types=(mc.instance_type, *mc.fallback_types),
            image=image,
            spot=spot,
            gpus=gpus,
            deadline=deadline,
            tags=run_tags(run_id, name, deadline),
            region=exp.region,
        )
        reason = "" if gpus else f"machine class {name} ({mc.instance_type}) has no GPU"
        offers.append(MachineOffer(req, slots=1, gpus=gpus, gpu_reason=reason))
    if issues:
        raise SpecError(issues)
    return ProviderSetup(provider, offers)


class OfflinePlanning:
    """Wraps a provider for ``plan``/``--dry-run``: without credentials, plan from what is
    known here (the file and the price catalog) instead of failing; ``run`` never uses it."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.name = inner.name
        self.note: str | None = None

    def prepare(self, req: MachineRequest) -> LaunchRequest:
        try:
            return self.inner.prepare(req)
        except CredentialsError as exc:
            self.note = f"AWS was not consulted ({exc}); the exact requests show with credentials"
            types = " -> ".join(req.instance_types)
            image = req.image.name if req.image else "?"
            summary = f"{types} from image spec {image} (not resolved: no credentials)"
            return LaunchRequest(self.name, req, (), 0.0, summary)

    def acquire(self, launch: LaunchRequest, *, token: str) -> Machine:
        raise ProviderError("a plan-only provider launches nothing")

    def release(self, machine_id: str) -> None:
        return None

    def owned(self, *, run_id: str | None = None) -> list[Machine]:
        return []

    def connect(self, machine: Machine) -> Transport:
        raise ProviderError("a plan-only provider reaches nothing")
