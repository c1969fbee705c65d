"""A run's results in one table: journal rows joined with each task's pulled-back metrics."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orchestrator.paths import RunPaths
from orchestrator.result_files import MetricsKey, ReferenceKey, flat_metrics, read_json
from orchestrator.state import Journal


@dataclass(frozen=True)
class TaskSummary:
    task_id: str
    status: str
    machine: str
    wall_s: float | None
    samples_per_s: float | None
    test_error: float | None
    eigen_error: float | None
    detail: str | None


@dataclass(frozen=True)
class RunSummary:
    """What a run produced, task by task; ``to_json`` is the ``--json`` summary."""

    run_id: str
    status: str
    run_dir: str
    tasks: tuple[TaskSummary, ...]

    def counts(self) -> dict[str, int]:
        """Tasks per status."""
        out: dict[str, int] = {}
        for t in self.tasks:
            out[t.status] = out.get(t.status, 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        """The summary as ``run --json`` prints it last."""
        return {
            "run_id": self.run_id,
            "status": self.status,
            "run_dir": self.run_dir,
            "counts": self.counts(),
            "tasks": [asdict(t) for t in self.tasks],
        }


def _eigen_error(metrics: dict[str, Any]) -> float | None:
    """The worst relative eigenvalue error against NumPy (PCA's ``reference``)."""
    errors = flat_metrics(metrics).get(ReferenceKey.EIGENVALUE_REL_ERROR)
    if isinstance(errors, list) and errors:
        return float(max(abs(float(e)) for e in errors))
    return None


def summarize(journal: Journal, run_id: str) -> RunSummary:
    """A run's table from the journal and the metrics pulled back; works on any past run."""
    run = journal.run(run_id)
    if run is None:
        raise KeyError(run_id)
    paths = RunPaths(Path(run.runs_dir) / run_id)
    rows = []
    for t in journal.tasks(run_id):
        m = read_json(paths.metrics(t.task_id))
        sps = m.get(MetricsKey.SAMPLES_PER_S)
        err = m.get(MetricsKey.TEST_ERROR)
        rows.append(
            TaskSummary(
                task_id=t.task_id,
                status=t.status,
                machine=t.machine,
                wall_s=t.wall_s,
                samples_per_s=float(sps) if isinstance(sps, int | float) else None,
                test_error=float(err) if isinstance(err, int | float) else None,
                eigen_error=_eigen_error(m),
                detail=t.detail,
            )
        )
    return RunSummary(run_id, run.status, str(paths.root), tuple(rows))
