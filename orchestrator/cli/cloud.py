"""``gc``, ``ami bake|list`` and ``plan --check-aws``: the cloud-only verbs."""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from infra.prices import load_catalog
from infra.provider import Provider
from orchestrator.errors import SpecError, SpecIssue, UsageError
from orchestrator.providers import build_provider
from orchestrator.resources import resolve_machines
from orchestrator.specfile import load_experiment
from orchestrator.state import Journal, RunRow


def provider_for_run(run: RunRow, args: argparse.Namespace) -> Provider | None:
    """The provider a journalled run used, rebuilt from its experiment file (for ``down``)."""
    if run.provider == "local":
        return None  # this machine: jobs are stopped directly, nothing to release
    exp = load_experiment(Path(run.spec_path))
    setup = build_provider(
        exp, run_id=run.id, state_dir=args.state_dir, local=False, now=datetime.now(UTC)
    )
    return setup.provider


def _aws(args: argparse.Namespace, region: str | None) -> Any:
    """A provider for the verbs that launch nothing (gc, ami list) or pass their own CIDR
    (ami bake); the loopback CIDR only satisfies the constructor and opens nothing."""
    from infra.aws import AwsProvider

    return AwsProvider(
        state_dir=Path(args.state_dir) / "aws",
        region=region,
        profile=args.profile,
        ssh_cidr=getattr(args, "ssh_cidr", None) or "127.0.0.1/32",
    )


def cmd_gc(args: argparse.Namespace) -> int:
    from infra.aws.gc import collect_garbage

    journal = Journal.in_dir(args.state_dir)
    live = [r.id for r in journal.runs(limit=100_000) if r.status == "running"]
    regions = args.region or ["us-east-1"]
    if args.all_regions:
        regions = _all_regions(args)
    receipts = []
    for region in regions:
        provider = _aws(args, region)
        receipt = collect_garbage(
            provider.ec2,
            region=region,
            live_runs=live,
            now=datetime.now(UTC),
            dry_run=args.dry_run,
            include_images=args.images,
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


def _all_regions(args: argparse.Namespace) -> list[str]:
    provider = _aws(args, "us-east-1")
    regions = provider.ec2.describe_regions()["Regions"]
    return sorted(r["RegionName"] for r in regions)


def cmd_check_aws(args: argparse.Namespace) -> int:
    """``plan FILE --check-aws``: dry-run permissions, the AMI, the types in the zones."""
    from infra.aws.check import check_permissions

    exp = load_experiment(Path(args.file))
    if exp.provider != "aws":
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
    from infra.aws import AwsProvider

    provider = getattr(setup.provider, "inner", setup.provider)  # unwrap a test stand-in
    assert isinstance(provider, AwsProvider)
    ok = True
    for offer in setup.offers:
        launch = provider.prepare(offer.request)
        report = check_permissions(provider.ec2, launch, region=provider.region)
        ok = ok and report.ok
        print(f"machine {offer.request.name}:")
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
    provider = _aws(args, _region_or_usage(args))
    images = provider.list_images()
    if args.json:
        print(json.dumps([i.__dict__ for i in images], indent=2))
        return 0
    if not images:
        print(f"no baked images in {provider.region}")
    for im in images:
        print(f"{im.ami_id}  {im.spec:<18} {im.spec_hash}  {im.created}  {im.state}")
    return 0


def cmd_ami_bake(args: argparse.Namespace) -> int:
    from ami.spec import ImageSpecError, spec_for, spec_hash

    try:
        spec = spec_for(args.spec)
    except ImageSpecError as exc:
        raise SpecError([SpecIssue(args.spec, 0, 0, "spec", str(exc))]) from exc
    provider = _aws(args, args.region)  # ami bake's --ssh-cidr is read by _aws
    digest = spec_hash(spec)
    ref = provider.bake_image(
        spec,
        run_id=f"bake-{digest}",
        instance_type=args.instance_type,
        deadline=datetime.now(UTC) + timedelta(hours=args.max_hours),
        token=f"bake-{digest}",
    )
    print(f"baked {spec.name} ({digest}) -> {ref.ami_id} in {provider.region}")
    return 0


def add_cloud_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    aws = argparse.ArgumentParser(add_help=False)
    aws.add_argument("--profile", help="AWS profile (default: the standard boto3 chain)")
    aws.add_argument("--region", action="append", help="region (repeatable for gc)")

    p = sub.add_parser("gc", parents=[common, aws], help="remove orphaned or expired resources")
    p.add_argument("--all-regions", action="store_true", help="sweep every enabled region")
    p.add_argument("--dry-run", action="store_true", help="list what would go; change nothing")
    p.add_argument("--images", action="store_true", help="also baked AMIs and their snapshots")
    p.set_defaults(func=cmd_gc)

    ami = sub.add_parser("ami", parents=[common], help="baked machine images")
    asub = ami.add_subparsers(dest="ami_command", required=True)
    b = asub.add_parser("bake", parents=[common], help="bake SPEC into a private AMI")
    b.add_argument("spec", help="an AMI spec name (ami/specs/*.yaml)")
    b.add_argument("--region", help="where to bake (default: the boto3 chain's region)")
    b.add_argument("--profile", help="AWS profile (default: the standard boto3 chain)")
    b.add_argument("--ssh-cidr", required=True, help="your address as a /32, for the bake machine")
    b.add_argument(
        "--instance-type", default="c6i.xlarge", help="the bake machine (default c6i.xlarge)"
    )
    b.add_argument(
        "--max-hours", type=float, default=1.0, help="the bake machine's own deadline (default 1)"
    )
    b.set_defaults(func=cmd_ami_bake)
    ls = asub.add_parser("list", parents=[common], help="baked AMIs in a region")
    ls.add_argument("--region", help="the region to list (default: $AWS_REGION)")
    ls.add_argument("--profile", help="AWS profile (default: the standard boto3 chain)")
    ls.set_defaults(func=cmd_ami_list)
