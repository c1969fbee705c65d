"""Rendering for people (rich) and scripts (JSON lines); the only printing module besides cli."""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column, Table

from orchestrator.events import (
    Event,
    MachineEvent,
    RunEnded,
    RunStarted,
    TaskEvent,
    TaskOutput,
    event_dict,
)
from orchestrator.plan import Plan
from orchestrator.plan_notes import batch_notes
from orchestrator.state import TaskStatus
from orchestrator.ui_tables import abbreviate, render_summary

__all__ = ["FileReporter", "JsonReporter", "RichReporter", "render_plan", "render_summary"]

_EPOCH = re.compile(r"epoch\s*[=:]?\s*(\d+)\s*/\s*(\d+)", re.IGNORECASE)
_FINAL = (
    TaskStatus.DONE,
    TaskStatus.FAILED,
    TaskStatus.SKIPPED,
    TaskStatus.STOPPED,
    TaskStatus.TIMEOUT,
)


class FileReporter:
    """Appends every event as a JSON line to the run's ``run.log``; output goes to task logs."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115
        self._lock = threading.Lock()

    def event(self, e: Event) -> None:
        """Append the event to ``run.log`` as one timestamped line."""
        if isinstance(e, TaskOutput):
            return
        with self._lock:
            self._fh.write(json.dumps({"t": time.time(), **event_dict(e)}) + "\n")
            self._fh.flush()

    def close(self) -> None:
        self._fh.close()


class JsonReporter:
    """One JSON object per event on a stream, for ``--json``."""

    def __init__(self, stream: IO[str] | None = None, *, with_output: bool = False) -> None:
        self.stream = stream or sys.stdout
        self.with_output = with_output
        self._lock = threading.Lock()

    def event(self, e: Event) -> None:
        """Print the event as one JSON line (``--json``)."""
        if isinstance(e, TaskOutput) and not self.with_output:
            return
        with self._lock:
            self.stream.write(json.dumps(event_dict(e)) + "\n")
            self.stream.flush()


NARROW = 110  # below this many columns the live view drops its bars and abbreviates ids


class RichReporter:
    """Live progress: one bar for the run, one line per task with its latest log line.

    Task id and state are never cut: in a terminal narrower than ``NARROW`` the bars go, ids
    are abbreviated by ``ui_tables.ABBREV`` and only the log line gives way (ellipsis)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.narrow = console.width < NARROW
        whole = Column(no_wrap=True)
        columns: list[ProgressColumn] = [
            SpinnerColumn(),
            TextColumn("[bold]{task.description}", justify="left", table_column=whole),
        ]
        if not self.narrow:
            columns.append(BarColumn(bar_width=20))
        columns += [
            TextColumn("{task.fields[state]:<8}", table_column=Column(no_wrap=True, min_width=8)),
            TimeElapsedColumn(),
            TextColumn(
                "[dim]{task.fields[line]}",
                table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1),
            ),
        ]
        self.progress = Progress(*columns, console=console, transient=False, expand=True)
        self._rows: dict[str, TaskID] = {}
        self._overall: TaskID | None = None
        self._lock = threading.Lock()

    def event(self, e: Event) -> None:
        """Update the live view with the event."""
        with self._lock:
            self._event(e)

    def _event(self, e: Event) -> None:
        if isinstance(e, RunStarted):
            self.console.print(f"run [bold]{e.run_id}[/] -> {e.run_dir}")
            self.progress.start()
            self._overall = self.progress.add_task(
                "all tasks", total=len(e.tasks), state="", line=""
            )
            for tid, _machine, status in e.tasks:
                pending = status == TaskStatus.PENDING
                self._rows[tid] = self.progress.add_task(
                    abbreviate(tid) if self.narrow else tid,
                    total=None if pending else 1,
                    completed=0 if pending else 1,  # skipped/done rows show no spinner
                    state=status,
                    line="",
                )
                if not pending:  # an update marks it finished (add_task alone does not)
                    self.progress.update(self._rows[tid], completed=1)
        elif isinstance(e, TaskEvent) and e.task_id in self._rows:
            row = self._rows[e.task_id]
            fields: dict[str, object] = {"state": e.state}
            if e.state in _FINAL:
                fields["line"] = e.detail[:80]
                self.progress.update(row, total=1, completed=1, **fields)  # type: ignore[arg-type]
                if self._overall is not None:
                    self.progress.advance(self._overall)
            else:
                self.progress.update(row, **fields)  # type: ignore[arg-type]
        elif isinstance(e, TaskOutput) and e.task_id in self._rows:
            lines = [ln for ln in e.text.splitlines() if ln.strip()]
            if lines:
                row = self._rows[e.task_id]
                m = _EPOCH.search(lines[-1])
                if m:
                    done, total = int(m.group(1)), int(m.group(2))
                    self.progress.update(row, total=total, completed=done)
                self.progress.update(row, line=lines[-1][:80])
        elif isinstance(e, MachineEvent):
            self.progress.console.print(f"[cyan]machine {e.machine}[/]: {e.state} {e.detail}")
        elif isinstance(e, RunEnded):
            self.progress.stop()


def render_plan(plan: Plan, console: Console) -> None:
    """The plan for people: machines, tasks, what would launch, the forecast."""
    table = Table(title=f"plan: {plan.experiment.name} ({plan.provider})")
    table.add_column("task", no_wrap=True)
    for col in ("machine", "device", "status", "estimate"):
        table.add_column(col, overflow="fold")
    for pt in plan.tasks:
        status = f"skipped: {pt.skip_reason}" if pt.skip_reason else "will run"
        est = f"{pt.estimate_s / 60:.1f} min ({pt.estimate_basis})" if pt.estimate_s else "-"
        machines = ", ".join(pt.machines) if pt.machines else "-"
        if pt.task.nodes > 1:  # a gang: that many of these at once (orchestrator.gang)
            machines = f"{pt.task.nodes} nodes at once of: {machines}"
        table.add_row(
            pt.task.id, machines, pt.task.device, status, est if not pt.skip_reason else "-"
        )
    console.print(table)
    mt = Table(title="machines that would be launched")
    for col in ("machine", "provider", "what", "slots", "GPUs", "$/h", "hours", "$"):
        mt.add_column(col)
    for m in plan.machines:
        hours = plan.forecast_hours.get(m.name, 0.0)
        mt.add_row(
            m.name,
            m.launch.provider,
            m.launch.summary,
            str(m.slots),
            str(m.gpus),
            f"{m.launch.hourly_usd:.3f}",
            f"{hours:.2f}",
            f"{hours * m.launch.hourly_usd:.2f}",
        )
    console.print(mt)
    for choice in plan.type_choices:
        console.print(f"machine {choice.machine} ({choice.region}): {choice.describe()}")
    for note in batch_notes(pt.task for pt in plan.runnable):
        console.print(f"note: {note}", markup=False, highlight=False)
    cap = plan.experiment.budget.max_usd
    cap_text = f" (cap ${cap:.2f})" if cap is not None else " (no cap set)"
    n_run, n_all = len(plan.runnable), len(plan.tasks)
    console.print(
        f"{n_run} of {n_all} tasks would run; forecast [bold]${plan.forecast_usd:.2f}[/]{cap_text}"
    )
