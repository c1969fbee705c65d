"""LocalProvider: this machine is the only machine, free, and always there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime

from infra.provider import LaunchRequest, Machine, MachineRequest
from infra.transport.local import LocalTransport

LOCAL_MACHINE_ID = "local"


def detect_gpus() -> tuple[int, str]:
    """How many NVIDIA GPUs this machine has, and why we think so (for 'skipped' reasons)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return 0, "no GPU on this machine (nvidia-smi not found)"
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return 0, f"no usable GPU on this machine (nvidia-smi failed: {exc})"
    count = sum(1 for line in out.splitlines() if line.startswith("GPU "))
    if count == 0:
        return 0, "no GPU on this machine (nvidia-smi lists none)"
    return count, f"{count} GPU(s) found by nvidia-smi"


class LocalProvider:
    """Acquiring is free and instant; releasing stops nothing (the engine stops its own jobs).

    ``gpus`` may be given to override detection (tests, or a user who hides GPUs on purpose).
    """

    name = "local"

    def __init__(self, *, workspace_root: str, gpus: int | None = None) -> None:
        self.workspace_root = workspace_root
        if gpus is None:
            self.gpus, self.gpu_reason = detect_gpus()
        else:
            self.gpus, self.gpu_reason = gpus, f"{gpus} GPU(s) configured"
            if gpus == 0:
                self.gpu_reason = "no GPU on this machine (configured)"
        self._held: dict[str, Machine] = {}

    def prepare(self, req: MachineRequest) -> LaunchRequest:
        return LaunchRequest(
            provider=self.name,
            request=req,
            calls=(),
            hourly_usd=0.0,
            summary=f"this machine ({os.cpu_count()} CPUs, {self.gpus} GPUs)",
        )

    def acquire(self, launch: LaunchRequest, *, token: str) -> Machine:
        key = f"{launch.request.run_id}/{launch.request.name}"
        if key in self._held:  # the same token never yields a second machine
            return self._held[key]
        machine = Machine(
            id=f"{LOCAL_MACHINE_ID}:{launch.request.run_id}:{launch.request.name}",
            provider=self.name,
            name=launch.request.name,
            address=None,
            gpus=self.gpus,
            cpus=os.cpu_count() or 1,
            hourly_usd=0.0,
            started_at=datetime.now(UTC),
            tags=dict(launch.request.tags),
            python=sys.executable,
            workspace_root=self.workspace_root,
        )
        self._held[key] = machine
        return machine

    def release(self, machine_id: str) -> None:
        for key, machine in list(self._held.items()):
            if machine.id == machine_id:
                del self._held[key]

    def owned(self, *, run_id: str | None = None) -> list[Machine]:
        return [
            m
            for m in self._held.values()
            if run_id is None or m.tags.get("orchestrate:run") == run_id
        ]

    def connect(self, machine: Machine) -> LocalTransport:
        return LocalTransport()
