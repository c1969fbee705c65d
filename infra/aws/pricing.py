"""Live prices: the AWS Pricing API (on-demand) and EC2 spot price history.

Behind a seam because moto implements neither: tests pass clients that return recorded
answers, and the bundled catalog covers machines that cannot reach AWS.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from infra.aws.session import make_session

# The Pricing API is served from a few regions only; us-east-1 answers for every region.
PRICING_API_REGION = "us-east-1"
_LOCATION = {
    "us-east-1": "US East (N. Virginia)",
    "us-east-2": "US East (Ohio)",
    "us-west-2": "US West (Oregon)",
    "eu-west-1": "EU (Ireland)",
    "eu-central-1": "EU (Frankfurt)",
}


def on_demand_prices(
    region: str, instance_types: Iterable[str], *, pricing: Any = None
) -> dict[str, float]:
    """Linux, shared-tenancy, on-demand USD/hour for each instance type that has a price."""
    if pricing is None:
        pricing = make_session().client("pricing", region_name=PRICING_API_REGION)
    out: dict[str, float] = {}
    for itype in instance_types:
        resp = pricing.get_products(
            ServiceCode="AmazonEC2",
            Filters=[
                {"Type": "TERM_MATCH", "Field": "instanceType", "Value": itype},
                {"Type": "TERM_MATCH", "Field": "location", "Value": _LOCATION.get(region, region)},
                {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Linux"},
                {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"},
                {"Type": "TERM_MATCH", "Field": "preInstalledSw", "Value": "NA"},
                {"Type": "TERM_MATCH", "Field": "capacitystatus", "Value": "Used"},
            ],
            MaxResults=10,
        )
        for item in resp.get("PriceList", []):
            product = json.loads(item) if isinstance(item, str) else item
            for term in product.get("terms", {}).get("OnDemand", {}).values():
                for dim in term.get("priceDimensions", {}).values():
                    usd = float(dim.get("pricePerUnit", {}).get("USD", 0) or 0)
                    if usd > 0:
                        out[itype] = usd
    return out


def spot_prices(
    region: str, instance_types: Iterable[str], *, ec2: Any = None, now: datetime | None = None
) -> dict[str, float]:
    """The highest spot price over the last day across zones: a cautious figure for the cap."""
    if ec2 is None:
        ec2 = make_session(region=region).client("ec2", region_name=region)
    start = (now or datetime.now(UTC)) - timedelta(days=1)
    out: dict[str, float] = {}
    resp = ec2.describe_spot_price_history(
        InstanceTypes=list(instance_types),
        ProductDescriptions=["Linux/UNIX"],
        StartTime=start,
    )
    for row in resp.get("SpotPriceHistory", []):
        itype, usd = row["InstanceType"], float(row["SpotPrice"])
        out[itype] = max(out.get(itype, 0.0), usd)
    return out
