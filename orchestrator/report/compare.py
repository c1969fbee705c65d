"""Two runs side by side: the same task ids matched, and the run totals.

Typical uses: last night's run against tonight's (did a change make training slower?), or the
same experiment on two machine types. Tasks only one run has are listed with a dash for the
other, so nothing silently drops out of the comparison.
"""

from __future__ import annotations

from orchestrator.report.model import RunData, TaskResult
from orchestrator.report.table import FLOAT, PCT, RATE, RATIO, SCI, SECONDS, Cell, Column, Table
from orchestrator.state import TaskStatus


def _ratio(b: float | None, a: float | None) -> float | None:
    return b / a if a and b is not None else None


def _delta(b: float | None, a: float | None) -> float | None:
    return b - a if a is not None and b is not None else None


def _eig_err(t: TaskResult | None) -> float | None:
    """A PCA task's worst eigenvalue error against NumPy (its accuracy, as test error is
    an MLP's)."""
    return t.pca.max_rel_error if t is not None and t.pca is not None else None


def task_comparison(a: RunData, b: RunData) -> Table:
    """Task by task, run A beside run B: status, error and time, with ratios."""
    cols = (
        Column("task", "task"),
        Column("status_a", "status A"),
        Column("status_b", "status B"),
        Column("train_s_a", "train s A", SECONDS),
        Column("train_s_b", "train s B", SECONDS),
        Column("time_ratio", "B/A time", RATIO),
        Column("samples_per_s_a", "samples/s A", RATE),
        Column("samples_per_s_b", "samples/s B", RATE),
        Column("test_error_a", "test error A", PCT),
        Column("test_error_b", "test error B", PCT),
        Column("error_delta", "B-A error (pts)", PCT),
        Column("eig_err_a", "eig err A", SCI),
        Column("eig_err_b", "eig err B", SCI),
    )
    ta = {t.task_id: t for t in a.tasks}
    tb = {t.task_id: t for t in b.tasks}
    rows: list[tuple[Cell, ...]] = []
    for tid in list(dict.fromkeys([*ta, *tb])):
        x, y = ta.get(tid), tb.get(tid)
        rows.append(
            (
                tid,
                x.status if x else "absent",
                y.status if y else "absent",
                x.train_s if x else None,
                y.train_s if y else None,
                _ratio(y.train_s if y else None, x.train_s if x else None),
                x.samples_per_s if x else None,
                y.samples_per_s if y else None,
                x.test_error if x else None,
                y.test_error if y else None,
                _delta(y.test_error if y else None, x.test_error if x else None),
                _eig_err(x),
                _eig_err(y),
            )
        )
    notes = (f"A = {a.run_id}", f"B = {b.run_id}", "B/A time below 1 means B trained faster.")
    return Table("compare_tasks", "Task by task", cols, tuple(rows), notes)


def _sum(tasks: tuple[TaskResult, ...], field: str) -> float | None:
    values = [getattr(t, field) for t in tasks if getattr(t, field) is not None]
    return float(sum(values)) if values else None


def _done(run: RunData) -> int:
    return sum(1 for t in run.tasks if t.status == TaskStatus.DONE)


def _best_error(run: RunData) -> float | None:
    errors = [t.test_error for t in run.tasks if t.trainer == "mnist" and t.test_error is not None]
    return min(errors) if errors else None


def totals_comparison(a: RunData, b: RunData) -> Table:
    """Run A against run B in totals: tasks done, best error, time, spend."""
    cols = (
        Column("metric", "metric"),
        Column("a", "A", FLOAT),
        Column("b", "B", FLOAT),
        Column("ratio", "B/A", RATIO),
    )
    metrics: list[tuple[str, float | None, float | None]] = [
        ("tasks done", float(_done(a)), float(_done(b))),
        ("tasks in run", float(len(a.tasks)), float(len(b.tasks))),
        ("training seconds (sum)", _sum(a.tasks, "train_s"), _sum(b.tasks, "train_s")),
        ("task wall seconds (sum)", _sum(a.tasks, "wall_s"), _sum(b.tasks, "wall_s")),
        ("best MNIST test error", _best_error(a), _best_error(b)),
        ("spend USD", a.spend_usd, b.spend_usd),
        ("forecast USD", a.forecast_usd, b.forecast_usd),
    ]
    rows = tuple((name, x, y, _ratio(y, x)) for name, x, y in metrics)
    return Table("compare_totals", "Run totals", cols, rows, (f"A = {a.run_id}; B = {b.run_id}",))


def compare_runs(a: RunData, b: RunData) -> tuple[Table, ...]:
    """The comparison tables, A being the report's run and B the one named by ``--compare``."""
    return (totals_comparison(a, b), task_comparison(a, b))
