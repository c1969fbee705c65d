"""The report's cost tables: what each task and each machine cost, against the forecast.

Split from ``report.analysis`` (the experiment's comparisons) to keep each module under the
400-line house rule; ``analysis.build_tables`` adds these when anything was priced.
"""

from __future__ import annotations

from orchestrator.report.model import RunData
from orchestrator.report.table import FLOAT, INT, SECONDS, TEXT, USD, Cell, Column, Table


def task_cost_table(run: RunData) -> Table:
    """What each task cost: its machine's price for its wall time."""
    cols = (
        Column("task", "task"),
        Column("machine", "machine"),
        Column("hourly_usd", "$/h", USD),
        Column("wall_s", "wall s", SECONDS),
        Column("cost_usd", "cost", USD),
    )
    rows: list[tuple[Cell, ...]] = []
    for t in run.tasks:
        m = run.machine(t.machine)
        rows.append(
            (t.task_id, t.machine, m.hourly_usd if m else None, t.wall_s, run.task_cost_usd(t))
        )
    known = [run.task_cost_usd(t) for t in run.tasks]
    total = sum(c for c in known if c is not None)
    notes = (f"tasks' share of machine time: ${total:.4f} (the rest is boot, sync and idle)",)
    return Table("task_cost", "Cost per task", cols, tuple(rows), notes)


def machine_cost_table(run: RunData) -> Table:
    """What each machine cost: hours held times its price, against the forecast."""
    cols = (
        Column("machine", "machine"),
        Column("instance_type", "type", TEXT),
        Column("hourly_usd", "$/h", USD),
        Column("hours", "hours held", FLOAT),
        Column("spend_usd", "actual", USD),
        Column("forecast_usd", "forecast", USD),
        Column("basis", "from"),
    )
    rows: list[tuple[Cell, ...]] = [
        (m.name, m.instance_type, m.hourly_usd, m.hours, m.spend_usd, m.forecast_usd, m.basis)
        for m in run.machines
    ]
    spend, forecast = run.spend_usd, run.forecast_usd
    rows.append(("total", None, None, None, spend, forecast, None))
    if forecast is None:
        note = "no forecast recorded for this run (the journal or plan.json holds it)"
    elif spend is None:
        note = f"forecast ${forecast:.2f}; actual unknown"
    else:
        note = f"actual ${spend:.4f} against a forecast of ${forecast:.4f}"
    return Table("machine_cost", "Cost: actual vs forecast", cols, tuple(rows), (note,))


def has_cost(run: RunData) -> bool:
    """Whether anything in the run was priced above zero (spend, forecast or a task's share)."""
    figures = [run.spend_usd, run.forecast_usd, *(run.task_cost_usd(t) for t in run.tasks)]
    return any(f is not None and f > 0 for f in figures)


def attempts_table(run: RunData) -> Table | None:
    """The tasks that took more than one try (or whose try was cut short), try by try, and
    what the interrupted tries cost in all: the price of machines going away. None when every
    task ran in one attempt that was not interrupted, so a calm run's report has no section."""
    tries: dict[str, int] = {}
    for a in run.attempts:
        tries[a.task_id] = tries.get(a.task_id, 0) + 1
    shown = {a.task_id for a in run.attempts if tries[a.task_id] > 1 or a.interrupted}
    if not shown:
        return None
    cols = (
        Column("task", "task"),
        Column("attempt", "attempt", INT),
        Column("machine", "machine"),
        Column("instance_id", "instance"),
        Column("status", "status"),
        Column("wall_s", "wall s", SECONDS),
        Column("cost_usd", "cost", USD),
        Column("detail", "detail"),
    )
    rows: list[tuple[Cell, ...]] = [
        (a.task_id, a.n, a.machine, a.instance_id, a.status, a.wall_s, a.cost_usd, a.detail)
        for a in run.attempts
        if a.task_id in shown
    ]
    lost = [a for a in run.attempts if a.interrupted]
    usd = sum(a.cost_usd or 0.0 for a in lost)
    notes = [f"{len(lost)} interrupted attempt(s) (preempted or lost) cost ${usd:.4f}"]
    if len(tries) > len(shown):
        notes.append(f"{len(tries) - len(shown)} other task(s) ran in one attempt")
    return Table("attempts", "Attempts", cols, tuple(rows), tuple(notes))
