"""Experiment -> the provider that serves it and the machines it offers to placement.

Provider modules are imported lazily, so ``plan`` on a local experiment never imports boto3 or
paramiko (SkyPilot/TorchX registries).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from infra.provider import MachineRequest, Provider
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
    exp: Experiment, *, run_id: str, state_dir: Path, local: bool, now: datetime
) -> ProviderSetup:
    """The provider for this experiment (``--local`` forces this machine)."""
    deadline = deadline_for(exp, now)
    if local or exp.provider == "local":
        from infra.local import LocalProvider

        gpus_env = os.environ.get(LOCAL_GPUS_ENV)
        lp = LocalProvider(
            workspace_root=str((state_dir / "workspaces").resolve()),
            gpus=int(gpus_env) if gpus_env else None,
        )
        req = MachineRequest(
            run_id=run_id,
            name="local",
            gpus=lp.gpus,
            deadline=deadline,
            tags=run_tags(run_id, "local", deadline),
        )
        return ProviderSetup(
            lp, [MachineOffer(req, slots=1, gpus=lp.gpus, gpu_reason=lp.gpu_reason)]
        )
    raise NotImplementedError(exp.provider)
