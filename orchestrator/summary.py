"""A run's results in one table: journal rows joined with each task's pulled-back numbers."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orchestrator.state import Journal


@dataclass(frozen=True)
class AttemptSummary:
    """One try of a task (issue 16): where it ran, how it ended, what it cost."""

    n: int
    machine: str
    instance_id: str | None
    status: str
    wall_s: float | None
    cost_usd: float | None
    detail: str | None


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
    attempts: tuple[AttemptSummary, ...] = ()


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


def summarize(journal: Journal, run_id: str) -> RunSummary:
    """A run's table, read through the report's loader (``orchestrator.report.load``): the
    journal's rows (the truth for status, machine and times) joined with what each task's
    files say; works on any past run. A task without ``metrics.json`` (stopped, failed) shows
    its last recorded epoch's numbers. Each task lists its attempts (a machine that went away
    ends one), so ``summary.json`` shows what every try cost."""
    from orchestrator.report.load import load_run

    run = journal.run(run_id)
    if run is None:
        raise KeyError(run_id)
    root = Path(run.runs_dir) / run_id
    data = load_run(root, journal)
    loaded = {t.task_id: t for t in data.tasks}
    rows = []
    for row in journal.tasks(run_id):  # the journal's order and rows; the files add numbers
        t = loaded.get(row.task_id)
        rows.append(
            TaskSummary(
                task_id=row.task_id,
                status=row.status,
                machine=row.machine,
                wall_s=row.wall_s,
                samples_per_s=t.samples_per_s if t else None,
                test_error=t.test_error if t else None,
                eigen_error=t.pca.max_rel_error if t and t.pca else None,
                detail=row.detail,
                attempts=tuple(
                    AttemptSummary(
                        a.n, a.machine, a.instance_id, a.status, a.wall_s, a.cost_usd, a.detail
                    )
                    for a in data.attempts
                    if a.task_id == row.task_id
                ),
            )
        )
    return RunSummary(run_id, run.status, str(root), tuple(rows))
