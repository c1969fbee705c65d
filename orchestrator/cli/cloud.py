"""``gc``, ``ami bake|list`` and ``plan --check-aws``: the cloud-only verbs.

They hold an ``AwsConfig`` and call ``infra.aws.verbs``; no provider class is named here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from infra.aws.facts import DEFAULT_REGION
from infra.prices import load_catalog
from infra.registry import AwsConfig, config_from_json
from orchestrator.errors import SpecError, SpecIssue, UsageError
from orchestrator.offers import build_provider
from orchestrator.resources import resolve_machines
from orchestrator.specfile import load_experiment
from orchestrator.state import Journal, RunRow, RunStatus


def _config(args: argparse.Namespace, region: str | None) -> AwsConfig:
    """The AWS config for the verbs that launch nothing (gc, ami list) or pass their own
    CIDR (ami bake)."""
    return AwsConfig(
        state_dir=str((Path(args.state_dir) / "aws").resolve()),
        region=region,
        profile=args.profile,
        ssh_cidr=getattr(args, "ssh_cidr", None),
    )


def journal_regions(runs: list[RunRow], default: str = DEFAULT_REGION) -> list[str]:
    """The regions the journal's AWS runs used (their kept provider configs): where ``gc``
    sweeps when no ``--region`` is given, with the experiment files gone or moved. A run
    that named no region used the chain's: ``default``, the region configured now."""
    regions = set()
    for run in runs:
        if run.provider != AwsConfig.name:
            continue
        config = config_from_json(run.provider_config) if run.provider_config else None
        region = config.region if isinstance(config, AwsConfig) else None
        regions.add(region or default)
    return sorted(regions)


# A run `running` in the journal whose orchestrator is gone (no live lease: pid and heartbeat)
# is an orphan once its last sign of life is this old; until then gc leaves it alone.
ORPHAN_GRACE_S = 600.0


def live_runs(journal: Journal, runs: list[RunRow], *, now: float) -> list[str]:
    """The runs ``gc`` must leave alone: ``running`` in the journal, and either held by a live
    orchestrator (``orchestrator.lease``: a fresh heartbeat and, on this host, its pid) or
    heard from (heartbeat, else the run's start) less than ``ORPHAN_GRACE_S`` ago."""
    from orchestrator.lease import holder

    alive = []
    for run in runs:
        if run.status != RunStatus.RUNNING:
            continue
        lease = holder(journal, run.id)
        if lease is not None and lease.live(now):
            alive.append(run.id)
            continue
        last = lease.beat if lease is not None else run.created_at
        if now - last < ORPHAN_GRACE_S:
            alive.append(run.id)
    return alive


def _confirm_all_owners(args: argparse.Namespace, regions: list[str]) -> None:
    """``gc --all-owners`` removes other people's orphans too: the user says so, every time."""
    if args.dry_run or args.yes:
        return
    what = "gc --all-owners removes every owner's orphaned resources, not only yours"
    if not sys.stdin.isatty():
        raise UsageError(f"{what}: pass --yes to confirm (see them first with --dry-run)")
    answer = input(f"{what}, in {', '.join(regions) or 'no region'}. Type 'yes' to go on: ")
    if answer.strip().lower() != "yes":
        raise UsageError("gc --all-owners not confirmed: nothing was removed")


def cmd_gc(args: argparse.Namespace) -> int:
    """Sweep the regions asked for (else those of the journal's AWS runs) for orphans."""
    from infra.aws.session import configured_region
    from infra.aws.verbs import enabled_regions, sweep

    journal = Journal.in_dir(args.state_dir)
    runs = journal.runs(limit=100_000)
    live = live_runs(journal, runs, now=time.time())
    configured = configured_region(args.profile)
    # Asked for, else where the journal's runs went and the configured region (never a
    # hard-coded one: a run that named no region launched in the chain's).
    regions = args.region or sorted(
        set(journal_regions(runs, configured or DEFAULT_REGION)) | ({configured} - {None})
    )
    if args.all_regions:
        regions = enabled_regions(_config(args, configured or DEFAULT_REGION))
    if args.all_owners:
        _confirm_all_owners(args, regions)
    if not regions:
        print(
            "no AWS run in the journal, so no region to sweep "
            "(pass --region REGION to sweep one anyway)"
        )
    receipts = []
    for region in regions:
        receipt = sweep(
            _config(args, region),
            live_runs=live,
            now=datetime.now(UTC),
            dry_run=args.dry_run,
            include_images=args.images,
            all_owners=args.all_owners,
        )
        receipts.append(receipt)
        if not args.json:
            print(receipt.render())
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "region": r.region,
                        "dry_run": r.dry_run,
                        "items": [i.__dict__ for i in r.items],
                    }
                    for r in receipts
                ],
                indent=2,
            )
        )
    return 0 if all(r.ok for r in receipts) else 4


def cmd_check_aws(args: argparse.Namespace) -> int:
    """``plan FILE --check-aws``: dry-run permissions, the AMI, the types in the zones."""
    from infra.aws.verbs import check_requests

    exp = load_experiment(Path(args.file))
    if exp.provider != AwsConfig.name:
        raise SpecError([SpecIssue(args.file, 1, 1, "provider", "--check-aws needs provider: aws")])
    catalog = load_catalog(args.state_dir)
    exp, _ = resolve_machines(exp, catalog, spec_path=args.file)
    setup = build_provider(
        exp,
        run_id="check",
        state_dir=args.state_dir,
        local=False,
        now=datetime.now(UTC),
        prices=catalog,
    )
    assert isinstance(setup.config, AwsConfig)
    requests = [offer.request for offer in setup.offers]
    ok = True
    for name, report in check_requests(setup.config, requests, prices=catalog):
        ok = ok and report.ok
        print(f"machine {name}:")
        print(report.render())
    return 0 if ok else 2


def _region_or_usage(args: argparse.Namespace) -> str:
    """``--region``, else the environment's AWS region; else a usage error naming --region
    (boto3 would fail later with NoRegionError, read as an unreachable cloud, exit 4)."""
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise UsageError("no AWS region: pass --region REGION (or set AWS_REGION)")
    return str(region)


def cmd_ami_list(args: argparse.Namespace) -> int:
    """Our baked images in one region."""
    from infra.aws.verbs import list_images

    region, images = list_images(_config(args, _region_or_usage(args)))
    if args.json:
        print(json.dumps([i.__dict__ for i in images], indent=2))
        return 0
    if not images:
        print(f"no baked images in {region}")
    for im in images:
        print(f"{im.ami_id}  {im.spec:<18} {im.spec_hash}  {im.created}  {im.state}")
    return 0


def cmd_ami_bake(args: argparse.Namespace) -> int:
    """Bake an image spec into a private AMI (the bake machine is always released)."""
    from ami.spec import ImageSpecError, spec_for, spec_hash
    from infra.aws.verbs import bake_image

    try:
        spec = spec_for(args.spec)
    except ImageSpecError as exc:
        raise SpecError([SpecIssue(args.spec, 0, 0, "spec", str(exc))]) from exc
    instance_type = args.instance_type or spec.bake_type
    if why := spec.mismatch(instance_type):
        raise UsageError(f"--instance-type {instance_type}: {why}")
    digest = spec_hash(spec)
    region, ref = bake_image(
        _config(args, args.region),  # ami bake's --ssh-cidr is read by _config
        spec,
        run_id=f"bake-{digest}",
        instance_type=instance_type,
        deadline=datetime.now(UTC) + timedelta(hours=args.max_hours),
        token=f"bake-{digest}",
    )
    print(f"baked {spec.name} ({digest}) -> {ref.ami_id} in {region}")
    return 0


def add_cloud_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """``gc`` and ``ami bake|list``."""
    aws = argparse.ArgumentParser(add_help=False)
    aws.add_argument("--profile", help="AWS profile (default: the standard boto3 chain)")
    aws.add_argument("--region", action="append", help="region (repeatable for gc)")

    p = sub.add_parser("gc", parents=[common, aws], help="remove orphaned or expired resources")
    p.add_argument("--all-regions", action="store_true", help="sweep every enabled region")
    p.add_argument("--dry-run", action="store_true", help="list what would go; change nothing")
    p.add_argument("--images", action="store_true", help="also baked AMIs and their snapshots")
    p.add_argument(
        "--all-owners",
        action="store_true",
        help="also other owners' orphans in the account (asks first; default: only yours)",
    )
    p.add_argument("--yes", action="store_true", help="confirm --all-owners without asking")
    p.set_defaults(func=cmd_gc)

    ami = sub.add_parser("ami", parents=[common], help="baked machine images")
    asub = ami.add_subparsers(dest="ami_command", required=True)
    b = asub.add_parser("bake", parents=[common], help="bake SPEC into a private AMI")
    b.add_argument("spec", help="an AMI spec name (ami/specs/*.yaml)")
    b.add_argument("--region", help="where to bake (default: the boto3 chain's region)")
    b.add_argument("--profile", help="AWS profile (default: the standard boto3 chain)")
    b.add_argument("--ssh-cidr", required=True, help="your address as a /32, for the bake machine")
    b.add_argument(
        "--instance-type",
        help="the bake machine (default: the spec's bake_instance_type; a GPU type for a GPU spec)",
    )
    b.add_argument(
        "--max-hours", type=float, default=1.0, help="the bake machine's own deadline (default 1)"
    )
    b.set_defaults(func=cmd_ami_bake)
    ls = asub.add_parser("list", parents=[common], help="baked AMIs in a region")
    ls.add_argument("--region", help="the region to list (default: $AWS_REGION)")
    ls.add_argument("--profile", help="AWS profile (default: the standard boto3 chain)")
    ls.set_defaults(func=cmd_ami_list)
