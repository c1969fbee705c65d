"""``orchestrate gpus [--region R]``: the GPU types a machine class can ask for, with prices.

It reads the same GPU table and price catalog that ``plan`` uses to turn ``gpu: T4`` into an
instance type, so what it lists is what a plan can pick; nothing calls AWS.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich import box
from rich.table import Table

from infra.aws.facts import DEFAULT_REGION
from infra.prices import load_catalog
from orchestrator.cli.run import console
from orchestrator.resources import gpu_rows


def _image_specs() -> dict[str, list[str]]:
    """Bundled AMI spec names by flavour (``cuda`` images run GPU types)."""
    from ami.spec import load_specs

    by_flavour: dict[str, list[str]] = {}
    for name, spec in sorted(load_specs().items()):
        by_flavour.setdefault(spec.flavour, []).append(name)
    return by_flavour


def cmd_gpus(args: argparse.Namespace) -> int:
    """The GPU instance types a region offers, with prices, for ``gpu:`` asks."""
    catalog = load_catalog(args.state_dir)
    region = args.region
    rows = gpu_rows(region, catalog)
    images = _image_specs().get("cuda", [])
    if args.json:
        out = [
            {
                "instance_type": c.instance_type,
                "gpu": c.info.gpu,
                "gpus": c.info.gpus,
                "gpu_memory_gib": c.info.gpu_memory_gib,
                "vcpus": c.info.vcpus,
                "memory_gib": c.info.memory_gib,
                "hourly_usd": c.hourly_usd,
                "images": images,
            }
            for c in rows
        ]
        print(json.dumps({"region": region, "as_of": str(catalog.as_of), "types": out}, indent=2))
        return 0
    out_console = console()
    if not rows:
        regions = ", ".join(sorted(catalog.on_demand))
        out_console.print(f"no priced GPU types in {region}; the catalog has: {regions}")
        return 0
    table = Table(
        title=f"GPU types in {region} (prices as of {catalog.as_of}, on-demand)",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        title_justify="left",
    )
    for col in ("type", "GPU", "count", "GPU mem", "vCPUs", "memory", "$/h"):
        table.add_column(col, justify="left" if col in ("type", "GPU") else "right")
    for c in rows:
        table.add_row(
            c.instance_type,
            c.info.gpu or "-",
            str(c.info.gpus),
            f"{c.info.gpu_memory_gib:g} GiB",
            str(c.info.vcpus),
            f"{c.info.memory_gib:g} GiB",
            f"{c.hourly_usd:.3f}",
        )
    out_console.print(table)
    out_console.print(f"images (ami:): {', '.join(images) or 'none bundled'}", highlight=False)
    out_console.print(
        "ask: gpu: T4 | gpu: {name: A10G, count: 1} | gpu: {memory: 24GB}",
        highlight=False,
        markup=False,
    )
    return 0


def add_gpus_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``gpus``."""
    p = sub.add_parser(
        "gpus", parents=[common], help="GPU instance types with $/h, GPU memory and images"
    )
    p.add_argument(
        "--region",
        default=DEFAULT_REGION,
        help=f"the AWS region to price (default {DEFAULT_REGION})",
    )
    p.set_defaults(func=cmd_gpus)
