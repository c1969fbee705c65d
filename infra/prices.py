"""The one price lookup: a date-stamped catalog of hourly prices, and the seam it fills.

AWS has no API a test can call for prices (moto has no Pricing API), so every price the plan,
the cost guard and the AWS provider use comes through ``PriceSource``: the bundled snapshot,
or one refreshed into the state dir by ``orchestrate prices --refresh``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

CATALOG_MAX_AGE_DAYS = 90  # AWS changes prices a few times a year; older than this, warn


class PriceSource(Protocol):
    """Hourly USD of an instance type in a region; None where the source does not know it."""

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
        """The spot price where one is known, else on-demand (never under-forecast spend)."""
        if spot and instance_type in self.spot.get(region, {}):
            return self.spot[region][instance_type]
        price = self.on_demand.get(region, {}).get(instance_type)
        if price is None:
            return None
        # Without a spot history, assume on-demand for the cap: never under-forecast spend.
        return price

    def age_days(self, today: date) -> int:
        """Days since the snapshot was taken."""
        return (today - self.as_of).days

    def staleness_warning(self, today: date) -> str | None:
        """A line telling the user to refresh, once the snapshot is old enough to mislead."""
        age = self.age_days(today)
        if age > CATALOG_MAX_AGE_DAYS:
            return (
                f"the price catalog is {age} days old ({self.as_of}); "
                "run `orchestrate prices --refresh` for current prices"
            )
        return None

    def to_json(self) -> dict[str, Any]:
        """The form ``save_catalog`` writes and ``load_catalog`` reads."""
        return {
            "as_of": self.as_of.isoformat(),
            "on_demand": self.on_demand,
            "spot": self.spot,
            "spot_discount_guess": self.spot_discount_guess,
        }


def dearest(
    prices: PriceSource, instance_types: Iterable[str], region: str, *, spot: bool
) -> float | None:
    """The highest known hourly price among ``instance_types`` (None if none is priced).

    A machine may come up as any of its fallback types, so the forecast and its deadline use
    the dearest: the cap must hold whichever one capacity allows.
    """
    known = [
        p
        for t in instance_types
        if (p := prices.hourly_usd(t, region, spot=spot)) is not None and p == p  # not NaN
    ]
    return max(known) if known else None


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
    """Write ``catalog`` into the state dir, where ``load_catalog`` prefers it."""
    path = Path(state_dir) / "prices.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(catalog.to_json(), indent=2))
    return path


def refresh_catalog(
    current: Catalog,
    region: str,
    *,
    types: Iterable[str] = (),
    pricing: Any = None,
    ec2: Any = None,
) -> Catalog:
    """The current catalog with ``region``'s on-demand and spot prices fetched anew.

    Every type the catalog knows in any region is fetched, plus ``types`` (any type, in any
    region: ``prices --refresh --region R --type T`` is how an unpriced machine gets a price).
    Clients may be passed in (tests); by default they come from the standard boto3 chain.
    """
    from infra.aws.pricing import on_demand_prices, spot_prices

    wanted = sorted({t for r in current.on_demand.values() for t in r} | set(types))
    on_demand = {r: dict(t) for r, t in current.on_demand.items()}
    on_demand.setdefault(region, {}).update(on_demand_prices(region, wanted, pricing=pricing))
    spot = {r: dict(t) for r, t in current.spot.items()}
    spot.setdefault(region, {}).update(spot_prices(region, wanted, ec2=ec2))
    return Catalog(
        as_of=datetime.now(UTC).date(),
        on_demand=on_demand,
        spot_discount_guess=current.spot_discount_guess,
        spot=spot,
        origin=f"AWS Pricing API ({region})",
    )
