"""A run's results in one table: journal rows joined with each task's pulled-back metrics."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orchestrator.paths import RunPaths
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


RESULT_MAX_BYTES = 256 << 20  # a result file larger than this is not read whole


def read_result(path: Path) -> str:
    """A result file's text, read safely: only a regular file (a FIFO or a device planted in a
    run directory must not hang ``run`` or ``report``), never through a symlink, and at most
    ``RESULT_MAX_BYTES``. Raises ``OSError`` otherwise, as a missing file does."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > RESULT_MAX_BYTES:
            raise OSError(f"{path} is not a regular file of a sane size")
        return fh.read(RESULT_MAX_BYTES).decode("utf-8", errors="replace")


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a file; ``{}`` when it is missing, torn or not an object (a trainer
    killed mid-write, a task that never started), or not a regular file."""
    try:
        data = json.loads(read_result(path))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def flat_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics.json`` with ``trainers.pca``'s nested numpy comparison (``reference``) lifted
    to the top level, where readers look for ``eigenvalue_rel_error`` and friends."""
    reference = metrics.get("reference")
    return {**reference, **metrics} if isinstance(reference, dict) else metrics


def _eigen_error(metrics: dict[str, Any]) -> float | None:
    """The worst relative eigenvalue error vs NumPy, whichever name the trainer used."""
    metrics = flat_metrics(metrics)
    for key in ("max_eigenvalue_rel_error", "eigenvalue_rel_error_max"):
        if isinstance(metrics.get(key), int | float):
            return float(metrics[key])
    errors = metrics.get("eigenvalue_rel_error") or metrics.get("eigenvalue_rel_errors")
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
        sps = m.get("samples_per_s")
        err = m.get("test_error")
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
