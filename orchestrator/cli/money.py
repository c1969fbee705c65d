"""``prices`` and ``cost``: what runs cost (schedules are in ``cli/schedule_cmd.py``)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from rich.table import Table

from infra.aws.facts import DEFAULT_REGION
from infra.prices import load_catalog
from orchestrator.cli.run import console
from orchestrator.cost import ledger
from orchestrator.errors import UnknownRun
from orchestrator.state import Journal


def add_money_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``prices`` and ``cost``."""
    p = sub.add_parser("prices", parents=[common], help="the price catalog in use")
    p.add_argument("--refresh", action="store_true", help="update it from the AWS Pricing API")
    p.add_argument(
        "--region",
        help=f"region to --refresh (default: the configured one, else {DEFAULT_REGION})",
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


def _date(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _price(value: float | None) -> str:
    """A catalog price, or ``-`` where the region does not list the type (never ``nan``)."""
    return "-" if value is None or value != value else f"{value:.4f}"


def _region(args: argparse.Namespace) -> str:
    """``--region``, else the region the boto3 chain names, else the default one."""
    from infra.aws.session import configured_region

    return str(args.region or configured_region() or DEFAULT_REGION)


def cmd_prices(args: argparse.Namespace) -> int:
    """Show the catalog every forecast uses, and how old it is (``--refresh`` renews it)."""
    if args.refresh:
        from infra.prices import refresh_catalog, save_catalog

        path = save_catalog(
            refresh_catalog(load_catalog(args.state_dir), _region(args), types=args.type),
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
    """Forecast against actual spend per run, from the journal's ledger."""
    journal = Journal.in_dir(args.state_dir)
    if args.run and journal.run(args.run) is None:
        raise UnknownRun(f"no run {args.run!r}; see `orchestrate status`")
    rows = ledger(journal, run_id=args.run, since=args.since)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title="spend: forecast vs actual (USD)")
    for col in ("run", "status", "forecast", "actual", "attempts", "retries", "machines"):
        table.add_column(col)
    for r in rows:
        forecast = "-" if r["forecast_usd"] is None else f"{r['forecast_usd']:.4f}"
        machines = ", ".join(
            f"{m['name']} {m['instance_type'] or ''} ${m['spend_usd']:.4f}" for m in r["machines"]
        )
        table.add_row(
            r["run"],
            r["status"],
            forecast,
            f"{r['actual_usd']:.4f}",
            str(r["attempts"]),
            f"{r['retries_usd']:.4f}",
            machines,
        )
    console().print(table)
    total = sum(r["actual_usd"] for r in rows)
    console().print(f"total actual spend: ${total:.4f} over {len(rows)} run(s)")
    return 0
