"""``prices``, ``cost``, ``schedule`` and ``scheduler``: what runs cost and when they recur."""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from infra.aws.facts import DEFAULT_REGION
from infra.prices import load_catalog
from orchestrator.cli.run import build_plan, console, execute_run, run_args
from orchestrator.cost import ledger
from orchestrator.errors import SpecError, SpecIssue, UnknownRun
from orchestrator.schedule import serve, tick, validate_cron
from orchestrator.schedule_store import ScheduleRow, ScheduleStore
from orchestrator.specfile import load_experiment
from orchestrator.state import Journal


def add_money_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("prices", parents=[common], help="the price catalog in use")
    p.add_argument("--refresh", action="store_true", help="update it from the AWS Pricing API")
    p.add_argument(
        "--region", default=DEFAULT_REGION, help=f"region to --refresh ({DEFAULT_REGION})"
    )
    p.add_argument(
        "--type",
        action="append",
        default=[],
        metavar="TYPE",
        help="also --refresh this instance type (repeatable; any type AWS prices)",
    )
    p.set_defaults(func=cmd_prices)

    p = sub.add_parser("cost", parents=[common], help="spend per run: forecast vs actual")
    p.add_argument("run", nargs="?", help="one run id (default: every run)")
    p.add_argument("--since", type=_date, help="only runs started on or after YYYY-MM-DD")
    p.set_defaults(func=cmd_cost)

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


def _date(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _datetime(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _price(value: float | None) -> str:
    """A catalog price, or ``-`` where the region does not list the type (never ``nan``)."""
    return "-" if value is None or value != value else f"{value:.4f}"


def cmd_prices(args: argparse.Namespace) -> int:
    if args.refresh:
        from infra.prices import refresh_catalog, save_catalog

        path = save_catalog(
            refresh_catalog(load_catalog(args.state_dir), args.region, types=args.type),
            args.state_dir,
        )
        print(f"price catalog refreshed: {path}")
    catalog = load_catalog(args.state_dir)
    if args.json:
        print(json.dumps({"origin": catalog.origin, **catalog.to_json()}, indent=2))
        return 0
    table = Table(title=f"on-demand USD/hour, as of {catalog.as_of} ({catalog.origin})")
    table.add_column("instance type")
    regions = sorted(catalog.on_demand)
    for region in regions:
        table.add_column(region, justify="right")
    types = sorted({t for r in regions for t in catalog.on_demand[r]})
    for itype in types:
        table.add_row(itype, *(_price(catalog.on_demand[r].get(itype)) for r in regions))
    out = console()
    out.print(table)
    warning = catalog.staleness_warning(datetime.now(UTC).date())
    if warning:
        out.print(f"[yellow]warning:[/] {warning}")
    return 0


def cmd_cost(args: argparse.Namespace) -> int:
    journal = Journal.in_dir(args.state_dir)
    if args.run and journal.run(args.run) is None:
        raise UnknownRun(f"no run {args.run!r}; see `orchestrate status`")
    rows = ledger(journal, run_id=args.run, since=args.since)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title="spend: forecast vs actual (USD)")
    for col in ("run", "status", "forecast", "actual", "machines"):
        table.add_column(col)
    for r in rows:
        forecast = "-" if r["forecast_usd"] is None else f"{r['forecast_usd']:.4f}"
        machines = ", ".join(
            f"{m['name']} {m['instance_type'] or ''} ${m['spend_usd']:.4f}" for m in r["machines"]
        )
        table.add_row(r["run"], r["status"], forecast, f"{r['actual_usd']:.4f}", machines)
    console().print(table)
    total = sum(r["actual_usd"] for r in rows)
    console().print(f"total actual spend: ${total:.4f} over {len(rows)} run(s)")
    return 0


def _store(args: argparse.Namespace) -> ScheduleStore:
    return ScheduleStore(Journal.in_dir(args.state_dir))


def cmd_schedule_add(args: argparse.Namespace) -> int:
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
    if not _store(args).remove(args.name):
        raise UnknownRun(f"no schedule {args.name!r}; see `orchestrate schedule list`")
    print(f"schedule {args.name} removed")
    return 0


def _callbacks(args: argparse.Namespace) -> tuple[Any, Any]:
    def forecast(row: ScheduleRow) -> float:
        journal = Journal.in_dir(args.state_dir)
        ns = run_args(row.spec_path, state_dir=args.state_dir, runs_dir=Path(row.runs_dir))
        plan, _ = build_plan(ns, journal, run_id="(forecast)")
        return plan.forecast_usd

    def start_run(row: ScheduleRow) -> str:
        ns = run_args(
            row.spec_path,
            state_dir=args.state_dir,
            runs_dir=Path(row.runs_dir),
            json=args.json,
            schedule_name=row.name,
        )
        summary = execute_run(ns)
        assert summary is not None
        return summary.run_id

    return forecast, start_run


def cmd_schedule_tick(args: argparse.Namespace) -> int:
    forecast, start_run = _callbacks(args)
    now = args.now or datetime.now(UTC)
    decisions = tick(_store(args), now=now, forecast=forecast, start_run=start_run)
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
    forecast, start_run = _callbacks(args)
    print("scheduler running; Ctrl-C to stop")
    serve(_store(args), forecast=forecast, start_run=start_run)
    return 0
