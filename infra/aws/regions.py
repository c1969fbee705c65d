"""Which region names exist, from botocore's bundled endpoint data (no call to AWS).

An unknown region would otherwise surface only at the first API call (an endpoint that does
not resolve: exit 4 after retries); ``plan`` refuses it up front, with a "did you mean".
"""

from __future__ import annotations

import difflib
from functools import cache


@cache
def known_regions() -> frozenset[str]:
    """Every EC2 region botocore knows in the standard partitions (empty without botocore)."""
    try:
        import botocore.session
    except ImportError:  # pragma: no cover - boto3 is a dependency of the aws provider
        return frozenset()
    session = botocore.session.get_session()
    names: set[str] = set()
    for partition in session.get_available_partitions():
        names.update(session.get_available_regions("ec2", partition_name=partition))
    return frozenset(names)


def region_problem(region: str) -> tuple[str, str] | None:
    """(message, hint) when ``region`` is not a region name botocore knows, else None."""
    regions = known_regions()
    if not regions or region in regions:
        return None
    close = difflib.get_close_matches(region, sorted(regions), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else "see `aws ec2 describe-regions`"
    return f"unknown AWS region {region!r}", hint
