"""``orchestrate report``: a run's pulled-back logs -> tables, figures and files.

The last step of the data flow (spec -> plan -> engine -> trainer -> timing logs -> report). It
reads files only (and the journal, for prices), never imports a trainer, and imports matplotlib
only when figures are drawn, so ``orchestrate plan`` never pays for it.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.report.analysis import DEFAULT_TARGET_ERROR, build_tables
from orchestrator.report.compare import compare_runs
from orchestrator.report.document import Report
from orchestrator.report.load import load_run
from orchestrator.report.model import RunData, TaskResult
from orchestrator.report.plots import Plot, make_plots
from orchestrator.report.render import write_outputs
from orchestrator.state import Journal

MATPLOTLIB_HINT = "matplotlib is not installed: pip install 'orchestrate[report]'"


def build_report(
    run_dir: Path,
    *,
    journal: Journal | None = None,
    target_error: float = DEFAULT_TARGET_ERROR,
    plots_dir: Path | None = None,
    compare_dir: Path | None = None,
) -> Report:
    """Load a run (and optionally a second one), build its tables, draw figures into plots_dir.

    Args:
        run_dir: ``runs/<run-id>/``.
        journal: adds machine prices, hours held and the forecast; None reads files only.
        target_error: the test error "time to target" measures to (a fraction).
        plots_dir: where the PNGs go; None draws none.
        compare_dir: a second run directory to put beside the first.
    """
    run = load_run(run_dir, journal)
    plots: tuple[Plot, ...] = ()
    note = None if plots_dir is not None else "not asked for"
    if plots_dir is not None:
        try:
            plots = make_plots(run, plots_dir)
        except ModuleNotFoundError:
            note = MATPLOTLIB_HINT
    other = load_run(compare_dir, journal) if compare_dir is not None else None
    return Report(
        run=run,
        tables=build_tables(run, target_error),
        plots=plots,
        target_error=target_error,
        compare_run_id=other.run_id if other else None,
        compare=compare_runs(run, other) if other else (),
        plot_note=note,
    )


__all__ = [
    "DEFAULT_TARGET_ERROR",
    "Report",
    "RunData",
    "TaskResult",
    "build_report",
    "load_run",
    "write_outputs",
]
