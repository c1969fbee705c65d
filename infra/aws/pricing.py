"""Live prices: the AWS Pricing API (on-demand) and EC2 spot price history.

Behind a seam because moto implements neither: tests pass clients that return recorded
answers, and the bundled catalog covers machines that cannot reach AWS.

Products are selected by ``regionCode`` (the region's API name, an attribute of every EC2
product in the Price List), so any region is priced without a table of display names.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from infra.aws.session import make_session

# The Pricing API is served from a few regions only; us-east-1 answers for every region.
PRICING_API_REGION = "us-east-1"


def product_filters(region: str, instance_type: str) -> list[dict[str, str]]:
    """GetProducts filters for Linux, shared-tenancy, no pre-installed software, on-demand use."""
    return [
        {"Type": "TERM_MATCH", "Field": "instanceType", "Value": instance_type},
        {"Type": "TERM_MATCH", "Field": "regionCode", "Value": region},
        {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Linux"},
        {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"},
        {"Type": "TERM_MATCH", "Field": "preInstalledSw", "Value": "NA"},
        {"Type": "TERM_MATCH", "Field": "licenseModel", "Value": "No License required"},
        {"Type": "TERM_MATCH", "Field": "capacitystatus", "Value": "Used"},
    ]


def on_demand_prices(
    region: str, instance_types: Iterable[str], *, pricing: Any = None
) -> dict[str, float]:
    """Linux, shared-tenancy, on-demand USD/hour for each instance type that has a price.

    A type with several matching products (there should be one) gets the highest price: the
    figure is a cost cap's input, so it must never be low.
    """
    if pricing is None:
        pricing = make_session().client("pricing", region_name=PRICING_API_REGION)
    out: dict[str, float] = {}
    for itype in instance_types:
        resp = pricing.get_products(
            ServiceCode="AmazonEC2", Filters=product_filters(region, itype), MaxResults=10
        )
        for item in resp.get("PriceList", []):
            product = json.loads(item) if isinstance(item, str) else item
            for term in product.get("terms", {}).get("OnDemand", {}).values():
                for dim in term.get("priceDimensions", {}).values():
                    usd = float(dim.get("pricePerUnit", {}).get("USD", 0) or 0)
                    if usd > 0:
                        out[itype] = max(out.get(itype, 0.0), usd)
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
