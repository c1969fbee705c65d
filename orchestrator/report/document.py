"""``Report``: what every output of a report is made from (the run, its tables, figures).

Its own module so that each output format (``render`` for terminal/Markdown/CSV/JSON, ``html``)
imports it without importing another format: no import circle between them.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.report.model import RunData
from orchestrator.report.plots import Plot
from orchestrator.report.table import Table


@dataclass(frozen=True)
class Report:
    """What the outputs are made from: the run, its tables and figures, an optional comparison."""

    run: RunData
    tables: tuple[Table, ...]
    plots: tuple[Plot, ...]
    target_error: float
    compare_run_id: str | None = None
    compare: tuple[Table, ...] = ()
    plot_note: str | None = None  # why there are no figures, when there are none

    def counts(self) -> dict[str, int]:
        """Tasks per status."""
        out: dict[str, int] = {}
        for t in self.run.tasks:
            out[t.status] = out.get(t.status, 0) + 1
        return out

    def headline(self) -> list[str]:
        """The few lines above the tables: what ran, how it ended, what it cost."""
        run = self.run
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts().items()))
        spend = "unknown" if run.spend_usd is None else f"${run.spend_usd:.4f}"
        forecast = "none recorded" if run.forecast_usd is None else f"${run.forecast_usd:.4f}"
        lines = [
            f"run {run.run_id} ({run.name}): {run.status}, provider {run.provider or '?'}",
            f"tasks: {counts}",
            f"spend: {spend} (forecast {forecast})",
            f"target test error for 'time to target': {100 * self.target_error:.2f}%",
        ]
        if self.compare_run_id:
            lines.append(f"compared with run {self.compare_run_id}")
        return lines
