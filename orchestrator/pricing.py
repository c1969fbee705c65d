"""Refreshing the price catalog from AWS (``orchestrate prices --refresh``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from orchestrator.cost import Catalog


def refresh_catalog(
    current: Catalog, region: str, *, pricing: Any = None, ec2: Any = None
) -> Catalog:
    """The current catalog with ``region``'s on-demand and spot prices fetched anew.

    Clients may be passed in (tests); by default they come from the standard boto3 chain.
    """
    from infra.aws.pricing import on_demand_prices, spot_prices

    types = sorted({t for r in current.on_demand.values() for t in r})
    on_demand = {r: dict(t) for r, t in current.on_demand.items()}
    on_demand.setdefault(region, {}).update(on_demand_prices(region, types, pricing=pricing))
    spot = {r: dict(t) for r, t in current.spot.items()}
    spot[region] = spot_prices(region, types, ec2=ec2)
    return Catalog(
        as_of=datetime.now(UTC).date(),
        on_demand=on_demand,
        spot_discount_guess=current.spot_discount_guess,
        spot=spot,
        origin=f"AWS Pricing API ({region})",
    )
