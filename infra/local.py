"""LocalProvider: this machine is the only machine, free, and always there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
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


SLOTS_ENV = "ORCHESTRATE_LOCAL_SLOTS"  # tasks at once on this machine (default: the cores')
MAX_LOCAL_SLOTS = 8  # past this, more cores go to each task's threads, not more tasks
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)


THREADS_TAG = "orchestrate:threads"  # on the local Machine: each task's thread share


def local_layout(cpus: int | None = None, *, slots: int | None = None) -> tuple[int, int]:
    """``(slots, threads per task)`` for this machine: as many tasks at once as cores allow
    (up to ``MAX_LOCAL_SLOTS``), each pinned to its share of the cores so that two tasks never
    fight over them. ``slots`` (the caller's), else ``$ORCHESTRATE_LOCAL_SLOTS``, sets the
    slots; the threads follow."""
    cores = max(1, cpus or os.cpu_count() or 1)
    env = os.environ.get(SLOTS_ENV, "")
    if slots is None:
        slots = int(env) if env.isdigit() and int(env) > 0 else min(cores, MAX_LOCAL_SLOTS)
    return slots, max(1, cores // slots)


def thread_env(threads: int) -> dict[str, str]:
    """The variables that pin BLAS/OpenMP/Numba/TensorFlow thread pools to ``threads``."""
    return dict.fromkeys(THREAD_VARS, str(threads))


@dataclass(frozen=True)
class LocalCapacity:
    """What this machine offers the plan: GPUs (and why we think so), slots, threads each."""

    gpus: int
    gpu_reason: str
    slots: int
    threads: int


def local_capacity(*, gpus: int | None = None, slots: int | None = None) -> LocalCapacity:
    """This machine's capacity; ``gpus`` given overrides detection (tests, or a user who hides
    GPUs on purpose), ``slots`` given overrides ``local_layout``'s choice."""
    if gpus is None:
        count, reason = detect_gpus()
    else:
        count, reason = gpus, f"{gpus} GPU(s) configured"
        if gpus == 0:
            reason = "no GPU on this machine (configured)"
    layout_slots, threads = local_layout(slots=slots)
    return LocalCapacity(count, reason, layout_slots, threads)


class LocalProvider:
    """Acquiring is free and instant; releasing stops nothing (the engine stops its own jobs).

    ``gpus`` may be given to override detection (tests, or a user who hides GPUs on purpose).
    """

    name = "local"

    def __init__(
        self, *, workspace_root: str, gpus: int | None = None, slots: int | None = None
    ) -> None:
        self.workspace_root = workspace_root
        capacity = local_capacity(gpus=gpus, slots=slots)
        self.gpus, self.gpu_reason = capacity.gpus, capacity.gpu_reason
        self.slots, self.threads = capacity.slots, capacity.threads
        self._held: dict[str, Machine] = {}

    def prepare(self, req: MachineRequest) -> LaunchRequest:
        """This machine as it is: no calls, free."""
        return LaunchRequest(
            provider=self.name,
            request=req,
            calls=(),
            hourly_usd=0.0,
            summary=f"this machine ({os.cpu_count()} CPUs, {self.gpus} GPUs; "
            f"{self.slots} tasks at once, {self.threads} thread(s) each)",
        )

    def acquire(self, launch: LaunchRequest, *, token: str) -> Machine:
        """This machine, under the request's name; the same run and name give the same one."""
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
            tags={**launch.request.tags, THREADS_TAG: str(self.threads)},
            python=sys.executable,
            workspace_root=self.workspace_root,
        )
        self._held[key] = machine
        return machine

    def release(self, machine_id: str) -> None:
        """Forget the machine (the engine stops its own jobs); unknown ids are fine."""
        for key, machine in list(self._held.items()):
            if machine.id == machine_id:
                del self._held[key]

    def owned(self, *, run_id: str | None = None) -> list[Machine]:
        """The machines this provider object holds (of ``run_id`` when given)."""
        return [
            m
            for m in self._held.values()
            if run_id is None or m.tags.get("orchestrate:run") == run_id
        ]

    def connect(self, machine: Machine) -> LocalTransport:
        """This machine, reached by subprocess."""
        return LocalTransport()

    def reconnect(self, run_id: str, name: str) -> LocalTransport:
        """This machine again: a crashed run's jobs are processes here."""
        return LocalTransport()

    def teardown_run(self, run_id: str) -> None:
        """A local run makes nothing besides its jobs: nothing to tear down."""
        return None

    def locate(self, run_id: str, name: str) -> Machine:
        """This machine (no address), with the workspace root runs use here."""
        return Machine(
            id=f"{LOCAL_MACHINE_ID}:{run_id}:{name}",
            provider=self.name,
            name=name,
            address=None,
            gpus=self.gpus,
            cpus=os.cpu_count() or 1,
            hourly_usd=0.0,
            started_at=datetime.now(UTC),
            python=sys.executable,
            workspace_root=self.workspace_root,
        )
