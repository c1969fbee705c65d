"""Prices, the spend guard, and the budget arithmetic of the three-layer cap.

Layer 1 is the plan (``plan.make_plan`` refuses a forecast over ``budget.max_usd``); layer 2 is
``CostGuard``, which the engine asks between polls; layer 3 is each instance's own deadline,
``instance_deadline``, rendered into its user-data as a shutdown timer so spend stays bounded if
this process dies. AWS has no API a test can call for prices (moto has no Pricing API), so
prices come through the small ``PriceSource`` seam.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from orchestrator.state import Journal

CATALOG_MAX_AGE_DAYS = 90  # AWS changes prices a few times a year; older than this, warn


class PriceSource(Protocol):
    def hourly_usd(self, instance_type: str, region: str, *, spot: bool) -> float | None: ...


@dataclass(frozen=True)
class Catalog:
    """A date-stamped price snapshot: the bundled one, or one refreshed into the state dir."""

    as_of: date
    on_demand: dict[str, dict[str, float]]
    spot_discount_guess: float
    spot: dict[str, dict[str, float]]
    origin: str

    def hourly_usd(self, instance_type: str, region: str, *, spot: bool) -> float | None:
        if spot and instance_type in self.spot.get(region, {}):
            return self.spot[region][instance_type]
        price = self.on_demand.get(region, {}).get(instance_type)
        if price is None:
            return None
        # Without a spot history, assume on-demand for the cap: never under-forecast spend.
        return price

    def age_days(self, today: date) -> int:
        return (today - self.as_of).days

    def staleness_warning(self, today: date) -> str | None:
        age = self.age_days(today)
        if age > CATALOG_MAX_AGE_DAYS:
            return (
                f"the price catalog is {age} days old ({self.as_of}); "
                "run `orchestrate prices --refresh` for current prices"
            )
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "on_demand": self.on_demand,
            "spot": self.spot,
            "spot_discount_guess": self.spot_discount_guess,
        }


def _parse(data: dict[str, Any], origin: str) -> Catalog:
    return Catalog(
        as_of=date.fromisoformat(data["as_of"]),
        on_demand={r: {k: float(v) for k, v in t.items()} for r, t in data["on_demand"].items()},
        spot_discount_guess=float(data.get("spot_discount_guess", 0.0)),
        spot={r: {k: float(v) for k, v in t.items()} for r, t in data.get("spot", {}).items()},
        origin=origin,
    )


def load_catalog(state_dir: Path | None = None) -> Catalog:
    """The refreshed catalog in the state dir when there is one, else the bundled snapshot."""
    if state_dir is not None:
        refreshed = Path(state_dir) / "prices.json"
        if refreshed.exists():
            return _parse(json.loads(refreshed.read_text()), str(refreshed))
    text = (Path(__file__).parent / "data" / "prices.json").read_text()
    return _parse(json.loads(text), "bundled snapshot")


def save_catalog(catalog: Catalog, state_dir: Path) -> Path:
    path = Path(state_dir) / "prices.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(catalog.to_json(), indent=2))
    return path


@dataclass(frozen=True)
class FixedPrices:
    """Every machine at one made-up price (tests; the local provider is free)."""

    usd: float

    def hourly_usd(self, instance_type: str, region: str, *, spot: bool) -> float | None:
        return self.usd


class Clock(Protocol):
    def time(self) -> float: ...


class SystemClock:
    def time(self) -> float:
        return time.time()


class CostGuard:
    """Layer 2: spend so far = sum over machines of price x time held; stop at the cap.

    The guard reads the journal (acquired/released times, hourly price), so it counts every
    machine the run holds, including ones still booting. It records each machine's spend as it
    goes, which is the ledger ``orchestrate cost`` reads.
    """

    def __init__(
        self, journal: Journal, run_id: str, *, cap_usd: float | None, clock: Clock | None = None
    ) -> None:
        self.journal = journal
        self.run_id = run_id
        self.cap_usd = cap_usd
        self.clock = clock or SystemClock()

    def spend(self) -> float:
        now = self.clock.time()
        total = 0.0
        for m in self.journal.machines(self.run_id):
            if m.acquired_at is None:
                continue
            end = m.released_at if m.released_at is not None else now
            usd = max(end - m.acquired_at, 0.0) / 3600 * m.hourly_usd
            self.journal.machine_spend(m.token, usd)
            total += usd
        return total

    def check(self) -> str | None:
        """None while under the cap; else the reason to stop (the engine marks the run capped)."""
        spent = self.spend()
        if self.cap_usd is not None and spent >= self.cap_usd:
            return f"spend ${spent:.4f} reached the cap ${self.cap_usd:.2f}"
        return None

    def as_check(self) -> Callable[[], str | None]:
        return self.check


def instance_deadline(
    *, now: datetime, max_hours: float, cap_usd: float | None, spent_usd: float, hourly_usd: float
) -> datetime:
    """Layer 3: when a machine must be gone, from the hour cap and the budget left.

    A machine alone may burn the whole remaining budget, so its own timer is the sooner of
    ``max_hours`` and ``remaining / its hourly price``. The guard (layer 2) handles the sum.
    """
    hours = max_hours
    if cap_usd is not None and hourly_usd > 0:
        hours = min(hours, max(cap_usd - spent_usd, 0.0) / hourly_usd)
    return now + timedelta(hours=hours)


def ledger(
    journal: Journal, *, run_id: str | None = None, since: datetime | None = None
) -> list[dict[str, Any]]:
    """Forecast vs actual spend per run (and per machine), newest first."""
    rows = []
    for run in journal.runs(limit=10_000):
        if run_id and run.id != run_id:
            continue
        if since and datetime.fromtimestamp(run.created_at, UTC) < since:
            continue
        machines = journal.machines(run.id)
        rows.append(
            {
                "run": run.id,
                "status": run.status,
                "forecast_usd": journal.run_forecast(run.id),
                "actual_usd": round(sum(m.spend_usd or 0.0 for m in machines), 6),
                "machines": [
                    {
                        "name": m.name,
                        "instance_type": m.instance_type,
                        "hourly_usd": m.hourly_usd,
                        "spend_usd": round(m.spend_usd or 0.0, 6),
                    }
                    for m in machines
                ],
            }
        )
    return rows
