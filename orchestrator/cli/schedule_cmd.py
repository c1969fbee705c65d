"""``schedule add|list|remove|tick`` and ``scheduler``: runs that recur, within a budget.

Split from ``cli/money.py`` (prices and spend), whose name did not say it held these; each
fired run goes through the run service (``orchestrator.runner``) like ``run`` does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from orchestrator.cli.attach_cmd import cmd_attach
from orchestrator.cli.run import console
from orchestrator.errors import (
    MachinesUnavailable,
    RunCapped,
    RunInterrupted,
    SpecError,
    SpecIssue,
    TaskFailed,
    UnknownRun,
)
from orchestrator.events import Reporter
from orchestrator.runner import RunOptions, plan_experiment, run_experiment
from orchestrator.schedule import serve, tick, validate_cron
from orchestrator.schedule_store import ScheduleRow, ScheduleStore
from orchestrator.specfile import load_experiment
from orchestrator.state import Journal
from orchestrator.ui import JsonReporter
from orchestrator.ui_lines import LineReporter


def add_schedule_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``schedule`` (add, list, remove, tick) and ``scheduler``."""
    p = sub.add_parser("schedule", parents=[common], help="recurring runs with a budget")
    ssub = p.add_subparsers(dest="schedule_command", required=True)
    a = ssub.add_parser("add", parents=[common], help="run FILE on a cron schedule")
    a.add_argument("file", help="the experiment file (YAML)")
    a.add_argument("--cron", required=True, help="five-field cron expression, UTC")
    a.add_argument("--budget-month", type=float, help="USD a calendar month may spend")
    a.add_argument("--name", help="schedule name (default: the experiment's name)")
    a.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where results land (runs/)")
    a.set_defaults(func=cmd_schedule_add)
    ls = ssub.add_parser("list", parents=[common], help="schedules and their next firing")
    ls.set_defaults(func=cmd_schedule_list)
    rm = ssub.add_parser("remove", parents=[common], help="delete a schedule")
    rm.add_argument("name", help="the schedule's name (see `schedule list`)")
    rm.set_defaults(func=cmd_schedule_remove)
    t = ssub.add_parser("tick", parents=[common], help="fire what is due now (for system cron)")
    t.add_argument("--now", type=_datetime, help=argparse.SUPPRESS)
    t.set_defaults(func=cmd_schedule_tick)

    p = sub.add_parser(
        "scheduler", parents=[common], help="a long-running process firing schedules"
    )
    p.set_defaults(func=cmd_scheduler)


def _datetime(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _store(args: argparse.Namespace) -> ScheduleStore:
    return ScheduleStore(Journal.in_dir(args.state_dir))


def cmd_schedule_add(args: argparse.Namespace) -> int:
    """Keep a schedule; the file and the cron are checked now, not when it first fires."""
    validate_cron(args.cron)
    exp = load_experiment(Path(args.file))  # a broken file is refused now, not at 3 a.m.
    if args.budget_month is not None and args.budget_month <= 0:
        raise SpecError([SpecIssue("--budget-month", 0, 0, "budget_month", "must be > 0")])
    row = ScheduleRow(
        name=args.name or exp.name,
        spec_path=str(Path(args.file).resolve()),
        cron=args.cron,
        budget_month_usd=args.budget_month,
        created_at=time.time(),
        last_fire=None,
        runs_dir=str(Path(args.runs_dir).resolve()),
    )
    _store(args).add(row)
    print(f"schedule {row.name}: {row.cron} (UTC) -> {row.spec_path}")
    return 0


def cmd_schedule_list(args: argparse.Namespace) -> int:
    """Every schedule with its next firing and its month's spend against the budget."""
    from croniter import croniter

    store = _store(args)
    now = datetime.now(UTC)
    rows = []
    for s in store.all():
        nxt = croniter(s.cron, now).get_next(datetime)
        history = store.history(s.name)
        rows.append(
            {**s.__dict__, "next": nxt.isoformat(), "last": history[-1] if history else None}
        )
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    table = Table(title="schedules")
    for col in ("name", "cron", "budget/month", "next", "last outcome"):
        table.add_column(col)
    for r in rows:
        last = r["last"]
        outcome = f"{last['outcome']}: {last['reason'] or last['run_id']}" if last else "-"
        budget = "-" if r["budget_month_usd"] is None else f"${r['budget_month_usd']:.2f}"
        table.add_row(r["name"], r["cron"], budget, r["next"], outcome)
    console().print(table)
    return 0


def cmd_schedule_remove(args: argparse.Namespace) -> int:
    """Forget a schedule (its past runs stay in the journal)."""
    if not _store(args).remove(args.name):
        raise UnknownRun(f"no schedule {args.name!r}; see `orchestrate schedule list`")
    print(f"schedule {args.name} removed")
    return 0


def _callbacks(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """The scheduler's three asks, answered by the run service: what would this row's run
    cost, run it now (a run that ended badly still ran: its id is returned), and finish an
    orphaned previous run as ``attach RUN`` does (one that ends badly was still finished)."""

    def options(row: ScheduleRow) -> RunOptions:
        return RunOptions(
            state_dir=Path(args.state_dir), runs_dir=Path(row.runs_dir), schedule=row.name
        )

    def forecast(row: ScheduleRow) -> float:
        return plan_experiment(Path(row.spec_path), options(row)).plan.forecast_usd

    def start_run(row: ScheduleRow) -> str:
        opts = options(row)
        planned = plan_experiment(Path(row.spec_path), opts, for_run=True)
        reporter: Reporter = JsonReporter() if args.json else LineReporter(sys.stdout)
        try:
            return run_experiment(planned, opts, reporter=reporter).run_id
        except (TaskFailed, RunCapped, RunInterrupted, MachinesUnavailable) as ended:
            return ended.run_id

    def attach_run(run_id: str) -> None:
        ns = argparse.Namespace(run=run_id, state_dir=args.state_dir, json=args.json, data_dir=None)
        with contextlib.suppress(TaskFailed, RunCapped, RunInterrupted, MachinesUnavailable):
            cmd_attach(ns)

    return forecast, start_run, attach_run


def cmd_schedule_tick(args: argparse.Namespace) -> int:
    """Fire what is due now, once: for a system cron line instead of ``scheduler``."""
    forecast, start_run, attach_run = _callbacks(args)
    now = args.now or datetime.now(UTC)
    decisions = tick(
        _store(args), now=now, forecast=forecast, start_run=start_run, attach_run=attach_run
    )
    for d in decisions:
        line = {
            "schedule": d.schedule,
            "fire_time": d.fire_time.isoformat(),
            "outcome": d.outcome,
            "run_id": d.run_id,
            "reason": d.reason,
            "missed": d.missed,
        }
        print(json.dumps(line) if args.json else " ".join(f"{k}={v}" for k, v in line.items()))
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    """Stay up and fire each schedule when due (APScheduler), until Ctrl-C."""
    forecast, start_run, attach_run = _callbacks(args)
    print("scheduler running; Ctrl-C to stop")
    serve(_store(args), forecast=forecast, start_run=start_run, attach_run=attach_run)
    return 0
