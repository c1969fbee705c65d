"""No launch without a price (issue 13, point 3): a type or region the catalog does not price
is refused at plan (exit 2, located, naming the refresh), ``prices --refresh`` prices any type
in any region (Pricing API by ``regionCode``; recorded answers, since moto has no Pricing API),
and the forecast and the instance deadline use the dearest type a machine may fall back to."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from infra.prices import Catalog, load_catalog, refresh_catalog, save_catalog
from orchestrator.offers import build_provider
from orchestrator.plan import make_plan
from orchestrator.resources import unpriced
from orchestrator.specfile import parse_experiment
from tests.cli import orchestrate

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
P5_USD = "55.0400000000"  # a recorded answer's shape; the figure is the test's own


def _spec(machine: str, *, region: str = "us-east-1", budget: str = "{max_usd: 500}") -> str:
    return (
        f"name: big\nprovider: aws\nregion: {region}\nssh_cidr: 203.0.113.7/32\n"
        f"budget: {budget}\n"
        f"machines:\n  gpu: {machine}\n"
        "jobs:\n  - trainer: pca\n    device: [gpu]\n"
    )


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # No credentials: plan answers offline from the file and the catalog, and a refusal comes
    # before anything is launched.
    env.update(
        ORCHESTRATE_STATE_DIR=str(tmp_path / "state"),
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-aws-credentials"),
        COLUMNS="200",
    )
    return env


def test_plan_of_p5_48xlarge_without_a_price_is_refused_located(tmp_path: Path) -> None:
    (tmp_path / "big.yaml").write_text(_spec("{instance_type: p5.48xlarge, ami: dl-gpu-ubuntu24}"))
    proc = orchestrate(["plan", "big.yaml"], _env(tmp_path), tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "big.yaml:7" in proc.stderr and "machines.gpu.instance_type" in proc.stderr
    assert "no price for p5.48xlarge in us-east-1" in proc.stderr
    assert "orchestrate prices --refresh --region us-east-1 --type p5.48xlarge" in proc.stderr
    assert not (tmp_path / "state" / "aws" / "keys").exists()


def test_an_unpriced_fallback_type_is_refused_where_it_is_named(tmp_path: Path) -> None:
    (tmp_path / "big.yaml").write_text(
        _spec("{instance_type: g4dn.xlarge, fallback_types: [p5.48xlarge], ami: dl-gpu-ubuntu24}")
    )
    proc = orchestrate(["run", "big.yaml"], _env(tmp_path), tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "machines.gpu.fallback_types[0]" in proc.stderr
    assert "p5.48xlarge" in proc.stderr


def test_an_unknown_region_is_refused_with_a_hint(tmp_path: Path) -> None:
    (tmp_path / "big.yaml").write_text(
        _spec("{instance_type: g4dn.xlarge, ami: dl-gpu-ubuntu24}", region="us-east-9")
    )
    proc = orchestrate(["plan", "big.yaml"], _env(tmp_path), tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "big.yaml:3" in proc.stderr and "unknown AWS region 'us-east-9'" in proc.stderr
    assert "did you mean 'us-east-2'?" in proc.stderr


def test_a_region_the_catalog_lacks_names_the_refresh() -> None:
    exp = parse_experiment(
        _spec("{instance_type: g4dn.xlarge, ami: dl-gpu-ubuntu24}", region="ap-south-2"), "x.yaml"
    )
    ((where, message, hint),) = unpriced(exp, load_catalog(None))
    assert where == ("machines", "gpu", "instance_type")
    assert "g4dn.xlarge in ap-south-2" in message
    assert hint == "run `orchestrate prices --refresh --region ap-south-2 --type g4dn.xlarge`"


class RecordedPricing:
    """GetProducts answers keyed by (instanceType, regionCode), as the Price List shapes them."""

    def __init__(self) -> None:
        self.filters: list[dict[str, str]] = []

    def get_products(self, **kw: object) -> dict[str, object]:
        filters = {f["Field"]: f["Value"] for f in kw["Filters"]}  # type: ignore[attr-defined]
        self.filters.append(filters)
        usd = {("p5.48xlarge", "ap-south-2"): P5_USD}.get(
            (filters["instanceType"], filters.get("regionCode", ""))
        )
        if usd is None:
            return {"PriceList": []}
        dims = {"y": {"pricePerUnit": {"USD": usd}}}
        return {
            "PriceList": [json.dumps({"terms": {"OnDemand": {"x": {"priceDimensions": dims}}}})]
        }


class NoSpot:
    def describe_spot_price_history(self, **kw: object) -> dict[str, object]:
        return {"SpotPriceHistory": []}


def test_refresh_prices_any_type_in_any_region_by_region_code(tmp_path: Path) -> None:
    pricing = RecordedPricing()
    fresh = refresh_catalog(
        load_catalog(None), "ap-south-2", types=["p5.48xlarge"], pricing=pricing, ec2=NoSpot()
    )
    assert fresh.hourly_usd("p5.48xlarge", "ap-south-2", spot=False) == float(P5_USD)
    asked = {f["instanceType"] for f in pricing.filters}
    assert "p5.48xlarge" in asked and "g4dn.xlarge" in asked
    assert {f["regionCode"] for f in pricing.filters} == {"ap-south-2"}
    assert all("location" not in f for f in pricing.filters)
    save_catalog(fresh, tmp_path / "state")
    spec = _spec("{instance_type: p5.48xlarge, gpus: 8, ami: dl-gpu-ubuntu24}", region="ap-south-2")
    (tmp_path / "big.yaml").write_text(spec)
    proc = orchestrate(["plan", "big.yaml", "--json"], _env(tmp_path), tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (machine,) = json.loads(proc.stdout)["machines"]
    assert machine["hourly_usd"] == float(P5_USD)


def _catalog(**usd: float) -> Catalog:
    return Catalog(NOW.date(), {"us-east-1": usd}, 0.0, {}, "test")


def test_forecast_and_deadline_use_the_dearest_fallback(tmp_path: Path) -> None:
    prices = _catalog(**{"g4dn.xlarge": 0.5, "g5.2xlarge": 2.0})
    exp = parse_experiment(
        _spec(
            "{instance_type: g4dn.xlarge, fallback_types: [g5.2xlarge], ami: ami-12345678}",
            budget="{max_usd: 1.0, max_hours: 4}",
        ),
        "x.yaml",
    )
    setup = build_provider(exp, run_id="r", state_dir=tmp_path, local=False, now=NOW, prices=prices)
    (offer,) = setup.offers
    # $1.00 at the dearest type's $2/h lasts 30 minutes; at the first type's $0.5/h, 2 hours.
    assert offer.request.deadline == NOW + timedelta(hours=0.5)
    from orchestrator.offers import OfflinePlanning

    plan = make_plan(
        exp,
        spec_path="x.yaml",
        run_id="r",
        provider=OfflinePlanning(setup.provider),
        offers=setup.offers,
        prices=prices,
        enforce_budget=False,
    )
    (slot,) = plan.machines
    assert slot.launch.hourly_usd == 2.0


def test_a_file_without_a_region_is_priced_in_the_configured_region(tmp_path: Path) -> None:
    spec = _spec("{instance_type: g4dn.xlarge, ami: dl-gpu-ubuntu24}")
    (tmp_path / "eu.yaml").write_text(spec.replace("region: us-east-1\n", ""))
    env = _env(tmp_path) | {"AWS_DEFAULT_REGION": "eu-west-1"}
    proc = orchestrate(["plan", "eu.yaml", "--json"], env, tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (machine,) = json.loads(proc.stdout)["machines"]
    assert machine["hourly_usd"] == load_catalog(None).hourly_usd(
        "g4dn.xlarge", "eu-west-1", spot=False
    )
