"""The cloud-only verbs (``gc``, ``ami bake|list``, ``plan --check-aws``) from a config.

The CLI holds an ``AwsConfig`` (``infra.registry``), never the provider class: each verb here
opens the provider itself and returns plain values (receipts, images, check reports).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime
from typing import cast

from ami.resolve import ImageRef
from ami.spec import ImageSpec
from infra.aws.bake import BakedImage
from infra.aws.check import CheckReport, check_permissions
from infra.aws.gc import Receipt, collect_garbage
from infra.aws.provider import AwsProvider
from infra.prices import PriceSource
from infra.provider import MachineRequest
from infra.registry import AwsConfig, open_provider


def _open(config: AwsConfig, prices: PriceSource | None = None) -> AwsProvider:
    # Verbs that launch nothing pass no CIDR: the loopback one satisfies the provider's check
    # and opens nothing.
    config = replace(config, ssh_cidr=config.ssh_cidr or "127.0.0.1/32")
    return cast(AwsProvider, open_provider(config, prices=prices))


def sweep(
    config: AwsConfig,
    *,
    live_runs: Collection[str],
    now: datetime,
    dry_run: bool = False,
    include_images: bool = False,
    all_owners: bool = False,
) -> Receipt:
    """``gc`` in ``config.region``: remove what is ours and orphaned or expired
    (``infra.aws.gc.collect_garbage`` holds the rules). Ours: this user's owner tag, unless
    ``all_owners`` (which the CLI confirms with the user first)."""
    provider = _open(config)
    return collect_garbage(
        provider.ec2,
        owner=None if all_owners else provider.owner,
        region=provider.region,
        live_runs=live_runs,
        now=now,
        dry_run=dry_run,
        include_images=include_images,
    )


def enabled_regions(config: AwsConfig) -> list[str]:
    """Every region the account has enabled (``gc --all-regions``)."""
    regions = _open(config).ec2.describe_regions()["Regions"]
    return sorted(r["RegionName"] for r in regions)


def list_images(config: AwsConfig) -> tuple[str, list[BakedImage]]:
    """The region asked, and every baked image of ours there, newest first."""
    provider = _open(config)
    return provider.region, provider.list_images()


def bake_image(
    config: AwsConfig,
    spec: ImageSpec,
    *,
    run_id: str,
    instance_type: str,
    deadline: datetime,
    token: str,
) -> tuple[str, ImageRef]:
    """Bake ``spec`` in ``config.region`` (``infra.aws.bake.bake`` holds the contract)."""
    provider = _open(config)
    ref = provider.bake_image(
        spec, run_id=run_id, instance_type=instance_type, deadline=deadline, token=token
    )
    return provider.region, ref


def check_requests(
    config: AwsConfig, requests: Sequence[MachineRequest], *, prices: PriceSource | None = None
) -> list[tuple[str, CheckReport]]:
    """``plan --check-aws``: each machine's exact launch, dry-run against the account."""
    provider = _open(config, prices)
    reports = []
    for req in requests:
        launch = provider.prepare(req)
        report = check_permissions(provider.ec2, launch, region=provider.region, ssm=provider.ssm)
        reports.append((req.name, report))
    return reports
