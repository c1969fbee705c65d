"""The run summary and the ``status`` list as tables that fit the terminal (80 columns and up).

Rules, so narrow output stays readable and predictable:

1. Tables have no side borders and two spaces between columns; headers are short.
2. The free-text note never sits in a column: identical notes are grouped under the table
   ("8 tasks skipped: no GPU ..."), where they wrap at words.
3. When the task ids do not fit, their parts are abbreviated by one fixed table (``ABBREV``:
   ``tensorflow`` -> ``tf``) and a legend line says which abbreviations were used; only an id
   that still does not fit folds.
4. A written path is printed on a line of its own and never wrapped by us (``soft_wrap``), so it
   can be copied whole.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from orchestrator.summary import RunSummary

# Fixed, documented abbreviations of task-id parts (rule 3).
ABBREV = {
    "tensorflow": "tf",
    "theano": "th",
    "momentum": "mom",
    "nesterov": "nest",
    "rmsprop": "rms",
    "adagrad": "adag",
    "minibatch": "mbatch",
}
GAP = 2  # spaces between columns


def _table(title: str | None = None) -> Table:
    # box.SIMPLE_HEAD draws only the rule under the header; right padding 1 + the box's blank
    # divider make a two-space gap (rule 1).
    return Table(
        title=title,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),
        title_justify="left",
    )


def abbreviate(task_id: str) -> str:
    """``mnist-tensorflow-rmsprop-cpu`` -> ``mnist-tf-rms-cpu`` (``ABBREV``, part by part)."""
    return "-".join(ABBREV.get(part, part) for part in task_id.split("-"))


def _legend(ids: Sequence[str]) -> str:
    used = sorted({p for tid in ids for p in tid.split("-") if p in ABBREV})
    return ", ".join(f"{ABBREV[p]} = {p}" for p in used)


def _width(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> int:
    cols = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    return sum(cols) + GAP * (len(cols) - 1)


def display_path(path: str | Path) -> str:
    """A path relative to the current folder when it is under it (shorter), else as given."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def print_path(console: Console, label: str, path: str | Path) -> None:
    """``label`` then the path, never wrapped mid-name by us (rule 4)."""
    text = f"{label} {display_path(path)}"
    if len(text) > console.width:
        console.print(label, highlight=False)
        text = f"  {display_path(path)}"
    console.print(text, soft_wrap=True, highlight=False, markup=False)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


@dataclass(frozen=True)
class _Col:
    header: str
    justify: str = "right"


def render_summary(summary: RunSummary, console: Console) -> None:
    """The run's table: every column's header and value visible at 80 columns (module rules)."""
    cols = [_Col("task", "left"), _Col("status", "left"), _Col("wall s"), _Col("samples/s")]
    rows = [
        [
            t.task_id,
            t.status,
            _fmt(t.wall_s, ".1f"),
            _fmt(t.samples_per_s, ",.0f"),
            "-" if t.test_error is None else f"{100 * t.test_error:.2f}%",
            _fmt(t.eigen_error, ".1e"),
        ]
        for t in summary.tasks
    ]
    # Columns no task has a value for are left out (a PCA-only run has no test error).
    keep = [0, 1, 2, 3]
    if any(t.test_error is not None for t in summary.tasks):
        keep.append(4)
        cols.append(_Col("test err"))
    if any(t.eigen_error is not None for t in summary.tasks):
        keep.append(5)
        cols.append(_Col("eig err"))
    rows = [[r[i] for i in keep] for r in rows]
    headers = [c.header for c in cols]
    legend = ""
    if _width(headers, rows) > console.width:
        legend = _legend([r[0] for r in rows])
        rows = [[abbreviate(r[0]), *r[1:]] for r in rows]
    table = _table(f"run {summary.run_id}: {summary.status}")
    for i, c in enumerate(cols):
        table.add_column(
            c.header,
            justify="left" if c.justify == "left" else "right",
            no_wrap=i != 0,
            overflow="fold",
        )
    for r in rows:
        table.add_row(*r)
    console.print(table)
    if legend:
        console.print(f"(task ids abbreviated: {legend})", highlight=False)
    _print_notes(summary, console)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(summary.counts().items()))
    console.print(counts, highlight=False)
    print_path(console, "results:", summary.run_dir)


def _print_notes(summary: RunSummary, console: Console) -> None:
    """Rule 2: one line per distinct (status, note), naming the task or counting the tasks."""
    groups: dict[tuple[str, str], list[str]] = {}
    for t in summary.tasks:
        if t.detail:
            groups.setdefault((t.status, t.detail), []).append(t.task_id)
    for (status, detail), ids in groups.items():
        who = ids[0] if len(ids) == 1 else f"{len(ids)} tasks"
        console.print(f"{who} {status}: {detail}", highlight=False, markup=False)


@dataclass(frozen=True)
class RunLine:
    """One line of ``status``: a run and its task counts (skipped tasks are not to run)."""

    run_id: str
    status: str
    provider: str
    created_at: float
    done: int
    to_run: int
    skipped: int
    held: int


def render_runs(rows: Sequence[RunLine], console: Console, *, journal: str) -> None:
    """``status`` without a run: one line per run; ``tasks`` is done / to run (skips aside).

    When the table is wider than the terminal, ``started`` is left out first: the run id already
    carries its UTC start (``name-YYYYMMDD-HHMMSS-xxxx``)."""
    headers = ["run", "status", "provider", "started", "tasks", "held"]
    cells = []
    for r in rows:
        started = datetime.fromtimestamp(r.created_at, UTC).strftime("%m-%d %H:%M")
        tasks = f"{r.done}/{r.to_run}" + (f" +{r.skipped}s" if r.skipped else "")
        cells.append([r.run_id, r.status, r.provider, started, tasks, str(r.held)])
    if _width(headers, cells) > console.width:
        headers.pop(3)
        cells = [c[:3] + c[4:] for c in cells]
    table = _table()
    for h in headers:
        right = h in ("tasks", "held")
        table.add_column(
            h, no_wrap=h != "run", overflow="fold", justify="right" if right else "left"
        )
    for c in cells:
        table.add_row(*c)
    console.print(table)
    when = "started: UTC; " if "started" in headers else ""
    note = f"{when}tasks: done/to run, +N skipped (s); held: machines still held"
    console.print(note, highlight=False, style="dim")
    print_path(console, "journal:", os.fspath(journal))
