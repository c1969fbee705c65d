"""``teardown_run``: everything of one run goes, found by its tag (the engine's last step and
``orchestrate down``), with a receipt naming each resource and its final state.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from infra.aws.errors import aws_errors
from infra.aws.gc import Receipt, ReceiptItem, Sweeper, list_ours
from infra.aws.requests import TAG_RUN

if TYPE_CHECKING:
    from infra.aws.context import AwsContext


def teardown_run(provider: AwsContext, run_id: str) -> Receipt:
    """Terminate every instance of ``run_id`` and wait, then delete its SG and key pair.

    Idempotent: a second call finds nothing and returns an empty receipt (plus the local
    key file's state). The receipt's ``ok`` is False if anything is left behind.
    """
    sweeper = Sweeper(
        provider.ec2,
        region=provider.region,
        sleep=provider.sleep,
        monotonic=provider.clock.monotonic,
        timeout_s=provider.waits.teardown_timeout_s,
        poll_s=provider.waits.poll_s,
    )
    items: list[ReceiptItem] = []
    # Found by the run's tag, not only the journal: an instance whose id was never recorded
    # (RunInstances answered, the process died) is found too. A second look catches one
    # that the tag listing did not show yet (eventual consistency).
    for _ in range(2):
        seen = {i.id for i in items}
        found = [
            r
            for r in list_ours(provider.ec2, region=provider.region, run_id=run_id)
            if r.id not in seen
        ]
        if found:
            items += sweeper.remove([(r, "teardown") for r in found]).items
    receipt = Receipt(provider.region, False, tuple(items))
    key = provider.key_path(run_id)
    # Instances the engine already released are gone from the live list; the receipt
    # still names each one with its final state.
    listed = {i.id for i in items}
    with aws_errors(region=provider.region):
        pages = provider.ec2.get_paginator("describe_instances").paginate(
            Filters=[
                {"Name": f"tag:{TAG_RUN}", "Values": [run_id]},
                {"Name": "instance-state-name", "Values": ["terminated"]},
            ]
        )
        for page in pages:
            for reservation in page.get("Reservations", []):
                for inst in reservation.get("Instances", []):
                    if inst["InstanceId"] not in listed:
                        items.append(
                            ReceiptItem(
                                "instance", inst["InstanceId"], run_id, "terminated", "released"
                            )
                        )
    if key.exists():
        key.unlink()
        items.append(ReceiptItem("local-key", str(key), run_id, "deleted", "teardown"))
    return replace(receipt, items=tuple(items))
