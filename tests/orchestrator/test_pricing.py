from __future__ import annotations

import json

from infra.prices import load_catalog, refresh_catalog, save_catalog


class RecordedPricing:
    """The Pricing API's answer shape for one product (moto has no Pricing API)."""

    def get_products(self, **kw: object) -> dict[str, object]:
        filters = {f["Field"]: f["Value"] for f in kw["Filters"]}  # type: ignore[index, union-attr]
        usd = {"g4dn.xlarge": "0.6000000000"}.get(filters["instanceType"])
        if usd is None:
            return {"PriceList": []}
        product = {
            "terms": {"OnDemand": {"x": {"priceDimensions": {"y": {"pricePerUnit": {"USD": usd}}}}}}
        }
        return {"PriceList": [json.dumps(product)]}


class RecordedSpot:
    def describe_spot_price_history(self, **kw: object) -> dict[str, object]:
        return {
            "SpotPriceHistory": [
                {"InstanceType": "g4dn.xlarge", "SpotPrice": "0.2000"},
                {"InstanceType": "g4dn.xlarge", "SpotPrice": "0.2500"},
            ]
        }


def test_refresh_updates_the_region_and_is_saved_and_preferred(tmp_path) -> None:
    bundled = load_catalog(None)
    fresh = refresh_catalog(bundled, "us-east-1", pricing=RecordedPricing(), ec2=RecordedSpot())
    assert fresh.hourly_usd("g4dn.xlarge", "us-east-1", spot=False) == 0.6
    assert fresh.hourly_usd("g4dn.xlarge", "us-east-1", spot=True) == 0.25  # the highest seen
    assert fresh.hourly_usd("c6i.2xlarge", "us-east-1", spot=False) == bundled.hourly_usd(
        "c6i.2xlarge", "us-east-1", spot=False
    )
    save_catalog(fresh, tmp_path)
    again = load_catalog(tmp_path)
    assert again.hourly_usd("g4dn.xlarge", "us-east-1", spot=False) == 0.6
    assert again.as_of == fresh.as_of
