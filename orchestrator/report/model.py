"""The run as data: frozen dataclasses the report's tables, plots and outputs all read.

Units: times in seconds, errors as fractions (0.0412 is 4.12 %), money in US dollars. A value
the run's files do not hold is ``None``, never a guess.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


def max_or_none(values: Iterable[float | None]) -> float | None:
    """The largest present value, or None when none is present."""
    present = [v for v in values if v is not None]
    return max(present) if present else None


@dataclass(frozen=True)
class EpochRow:
    epoch: int
    wall_s: float
    samples_per_s: float | None
    loss: float | None
    error: float | None  # test error as a fraction (0.0412 is 4.12 %)
    t: float | None


@dataclass(frozen=True)
class Hardware:
    """What one task ran on, from its ``manifest.json``."""

    host: str | None
    cpu_model: str | None
    cpu_cores: int | None
    gpu_model: str | None
    gpu_driver: str | None
    gpu_memory_mib: int | None
    device_used: str | None
    versions: tuple[tuple[str, str], ...]

    def label(self) -> str:
        """A one-line description: CPU model and cores, GPU and driver."""
        cpu = f"{self.cpu_model or 'unknown CPU'} ({self.cpu_cores or '?'} cores)"
        gpu = f"{self.gpu_model} (driver {self.gpu_driver or '?'})" if self.gpu_model else "no GPU"
        return f"{cpu}; {gpu}"


@dataclass(frozen=True)
class PcaComponent:
    index: int
    eigenvalue: float
    eigenvalue_numpy: float | None
    rel_error: float | None
    angle_deg: float | None
    explained: float | None  # fraction of the total variance
    iterations: int | None


@dataclass(frozen=True)
class PcaResult:
    components: tuple[PcaComponent, ...]
    iterations: int | None
    converged: bool | None

    @property
    def max_rel_error(self) -> float | None:
        """The worst eigenvalue error against NumPy, over the components."""
        return max_or_none(c.rel_error for c in self.components)

    @property
    def max_angle_deg(self) -> float | None:
        """The worst angle to NumPy's vector, over the components."""
        return max_or_none(c.angle_deg for c in self.components)

    @property
    def explained_total(self) -> float | None:
        """The variance the components explain together, if every one says."""
        parts = [c.explained for c in self.components]
        return None if not parts or any(p is None for p in parts) else sum(p or 0.0 for p in parts)


@dataclass(frozen=True)
class TaskResult:
    """One task of the run: what it was, how it ended, and what it measured."""

    task_id: str
    trainer: str
    framework: str
    optimizer: str | None
    device: str
    status: str
    detail: str | None
    machine: str
    wall_s: float | None  # the engine's wall time, start to exit
    compile_s: float | None
    train_s: float | None  # training only (compile and evaluation excluded)
    samples_per_s: float | None
    test_error: float | None
    final_loss: float | None
    hidden: tuple[int, ...]
    batch_size: int | None
    epochs: tuple[EpochRow, ...]
    hardware: Hardware | None
    pca: PcaResult | None
    started_t: float | None
    ended_t: float | None

    @property
    def variant(self) -> tuple[str, str, str]:
        """The key a CPU and a GPU run of the same work share."""
        return (self.trainer, self.framework, self.optimizer or "-")


@dataclass(frozen=True)
class MachineUse:
    name: str
    provider: str | None
    instance_type: str | None
    hourly_usd: float | None
    hours: float | None
    spend_usd: float | None
    forecast_usd: float | None
    basis: str  # "journal" or "task logs + plan.json": where hours and price came from


@dataclass(frozen=True)
class AttemptUse:
    """One try of a task on one machine (issue 16: a machine that goes away ends a try)."""

    task_id: str
    n: int
    machine: str
    instance_id: str | None
    instance_type: str | None
    status: str
    wall_s: float | None
    cost_usd: float | None
    detail: str | None
    interrupted: bool  # preempted or lost: its work since the last checkpoint was redone


@dataclass(frozen=True)
class RunData:
    run_id: str
    name: str
    status: str
    provider: str | None
    run_dir: Path
    tasks: tuple[TaskResult, ...]
    machines: tuple[MachineUse, ...]
    forecast_usd: float | None
    budget_usd: float | None
    attempts: tuple[AttemptUse, ...] = ()  # from the journal; none without it

    @property
    def spend_usd(self) -> float | None:
        """What the run's machines cost, if every machine's spend is known."""
        spends = [m.spend_usd for m in self.machines]
        return None if not spends or any(s is None for s in spends) else sum(s or 0 for s in spends)

    def machine(self, name: str) -> MachineUse | None:
        """The machine of that name, or None."""
        return next((m for m in self.machines if m.name == name), None)

    def task_cost_usd(self, task: TaskResult) -> float | None:
        """The machine's price for the task's wall time (its share; idle time is not in it)."""
        m = self.machine(task.machine)
        if m is None or m.hourly_usd is None or task.wall_s is None:
            return None
        return m.hourly_usd * task.wall_s / 3600.0
