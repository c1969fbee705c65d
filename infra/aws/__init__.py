"""EC2 behind the Provider contract; boto3 is imported lazily (the `aws` extra).

``AwsProvider`` is the provider; ``teardown_run`` / ``collect_garbage`` return a ``Receipt``;
``check_permissions`` answers `plan --check-aws`; baking is ``ComputeWithImages``.
"""

from __future__ import annotations

from infra.aws.bake import BakedImage, ComputeWithImages
from infra.aws.check import CheckReport, check_permissions
from infra.aws.context import Waits
from infra.aws.gc import Receipt, ReceiptItem, collect_garbage
from infra.aws.hostkeys import ConsoleHostKeys, HostKeySource
from infra.aws.provider import AwsProvider

__all__ = [
    "AwsProvider",
    "BakedImage",
    "CheckReport",
    "ComputeWithImages",
    "ConsoleHostKeys",
    "HostKeySource",
    "Receipt",
    "ReceiptItem",
    "Waits",
    "check_permissions",
    "collect_garbage",
]
