"""Find everything carrying our tags, decide what is orphaned or expired, remove it, say so.

Used twice: ``teardown_run`` removes every resource of one run (the engine's last step and
``orchestrate down``), and ``collect_garbage`` removes what the journal no longer knows as live,
or what is past its ``orchestrate:expires`` (``orchestrate gc``). Both return a ``Receipt``
listing each resource and its final state, so the CLI can show that nothing is left behind.

Order matters: instances first (their volumes and group memberships go with them), then loose
volumes, security groups (refused while an instance still uses them), key pairs, images, and
snapshots (refused while an image still uses them).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from infra.aws.consistency import code_of
from infra.aws.errors import aws_errors, error_code
from infra.aws.requests import TAG_EXPIRES, TAG_OWNER, TAG_RUN, parse_expires
from infra.errors import ProviderError

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

Kind = Literal["instance", "volume", "security-group", "key-pair", "image", "snapshot"]

# TerminateInstances takes at most 1000 ids per call.
_TERMINATE_BATCH = 1000
_LIVE_INSTANCE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]
_TERMINABLE = frozenset({"pending", "running", "stopping", "stopped"})
_OURS = [{"Name": "tag-key", "Values": [TAG_RUN]}]


@dataclass(frozen=True)
class Resource:
    """One tagged AWS resource as found."""

    kind: Kind
    id: str
    region: str
    state: str
    tags: Mapping[str, str]

    @property
    def run_id(self) -> str | None:
        """The run the resource belongs to (its ``orchestrate:run`` tag)."""
        return self.tags.get(TAG_RUN)

    @property
    def expires(self) -> datetime | None:
        """When the resource must be gone (its ``orchestrate:expires`` tag), if tagged."""
        return parse_expires(self.tags.get(TAG_EXPIRES))


@dataclass(frozen=True)
class ReceiptItem:
    """What happened to one resource: ``state`` is its final state or what would happen."""

    kind: str
    id: str
    run_id: str | None
    state: str  # "terminated", "deleted", "deregistered", "would delete", "failed: ...", "kept"
    reason: str = ""

    @property
    def failed(self) -> bool:
        """Whether this resource could not be removed (or was left waiting)."""
        return self.state.startswith(("failed", "timed out"))


@dataclass(frozen=True)
class Receipt:
    """The outcome of a teardown or sweep in one region."""

    region: str
    dry_run: bool
    items: tuple[ReceiptItem, ...]

    @property
    def ok(self) -> bool:
        """True when nothing failed or was left waiting."""
        return not any(item.failed for item in self.items)

    def render(self) -> str:
        """One line per resource, for the CLI."""
        head = f"{self.region}{' (dry run)' if self.dry_run else ''}: {len(self.items)} resource(s)"
        lines = [head]
        for item in self.items:
            why = f"  ({item.reason})" if item.reason else ""
            lines.append(f"  {item.kind:<15} {item.id:<24} {item.state}{why}")
        return "\n".join(lines)


def _tags(raw: Iterable[Mapping[str, Any]] | None) -> dict[str, str]:
    return {str(t["Key"]): str(t["Value"]) for t in raw or []}


def list_ours(
    ec2: EC2Client,
    *,
    region: str,
    run_id: str | None = None,
    include_images: bool = False,
    owner: str | None = None,
) -> list[Resource]:
    """Every resource carrying ``orchestrate:run`` (of ``run_id`` when given; of ``owner``'s
    runs only when given), live ones only."""
    tag_filter: list[Any] = (
        [{"Name": f"tag:{TAG_RUN}", "Values": [run_id]}] if run_id is not None else list(_OURS)
    )
    if owner is not None:
        tag_filter.append({"Name": f"tag:{TAG_OWNER}", "Values": [owner]})
    found: list[Resource] = []
    with aws_errors(region=region):
        for page in ec2.get_paginator("describe_instances").paginate(
            Filters=[*tag_filter, {"Name": "instance-state-name", "Values": _LIVE_INSTANCE_STATES}]
        ):
            for reservation in page.get("Reservations", []):
                for inst in reservation.get("Instances", []):
                    state = inst.get("State", {}).get("Name", "")
                    found.append(
                        Resource(
                            "instance", inst["InstanceId"], region, state, _tags(inst.get("Tags"))
                        )
                    )
        for vol in ec2.describe_volumes(Filters=tag_filter).get("Volumes", []):
            found.append(
                Resource(
                    "volume", vol["VolumeId"], region, vol.get("State", ""), _tags(vol.get("Tags"))
                )
            )
        for sg in ec2.describe_security_groups(Filters=tag_filter).get("SecurityGroups", []):
            found.append(
                Resource("security-group", sg["GroupId"], region, "", _tags(sg.get("Tags")))
            )
        for kp in ec2.describe_key_pairs(Filters=tag_filter).get("KeyPairs", []):
            found.append(Resource("key-pair", kp["KeyName"], region, "", _tags(kp.get("Tags"))))
        if include_images:
            for image in ec2.describe_images(Owners=["self"], Filters=tag_filter).get("Images", []):
                found.append(
                    Resource(
                        "image",
                        image["ImageId"],
                        region,
                        image.get("State", ""),
                        _tags(image.get("Tags")),
                    )
                )
            for snap in ec2.describe_snapshots(OwnerIds=["self"], Filters=tag_filter).get(
                "Snapshots", []
            ):
                found.append(
                    Resource(
                        "snapshot",
                        snap["SnapshotId"],
                        region,
                        snap.get("State", ""),
                        _tags(snap.get("Tags")),
                    )
                )
    return found


def orphan_reason(resource: Resource, *, live_runs: Collection[str], now: datetime) -> str | None:
    """Why ``resource`` should go, or None to keep it.

    Contract:
      1. A resource whose run the journal does not know as live is an orphan.
      2. A resource past its ``orchestrate:expires`` goes even if its run is live: the deadline
         is the cost cap's last layer and outranks the journal.
    """
    expires = resource.expires
    if expires is not None and expires <= now:
        return f"expired at {expires:%Y-%m-%dT%H:%M:%SZ}"
    if resource.run_id not in live_runs:
        return f"run {resource.run_id!r} is not live in the journal"
    return None


class Sweeper:
    """Removes resources in dependency order and writes the receipt as it goes."""

    def __init__(
        self,
        ec2: EC2Client,
        *,
        region: str,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        timeout_s: float = 600.0,
        poll_s: float = 5.0,
    ) -> None:
        self._ec2 = ec2
        self._region = region
        self._sleep = sleep
        self._monotonic = monotonic
        self._timeout_s = timeout_s
        self._poll_s = poll_s

    def remove(self, doomed: list[tuple[Resource, str]], *, dry_run: bool = False) -> Receipt:
        """Remove each resource (or say what would go, with ``dry_run``)."""
        if dry_run:
            planned = [
                ReceiptItem(r.kind, r.id, r.run_id, "would delete", why) for r, why in doomed
            ]
            return Receipt(self._region, True, tuple(planned))
        by_kind: dict[str, list[tuple[Resource, str]]] = {}
        for resource, why in doomed:
            by_kind.setdefault(resource.kind, []).append((resource, why))
        deadline = self._monotonic() + self._timeout_s
        items: list[ReceiptItem] = []
        items += self._instances(by_kind.get("instance", []), deadline)
        for kind, verb, call in (
            ("volume", "deleted", lambda i: self._ec2.delete_volume(VolumeId=i)),
            ("security-group", "deleted", lambda i: self._ec2.delete_security_group(GroupId=i)),
            ("key-pair", "deleted", lambda i: self._ec2.delete_key_pair(KeyName=i)),
            ("image", "deregistered", lambda i: self._ec2.deregister_image(ImageId=i)),
            ("snapshot", "deleted", lambda i: self._ec2.delete_snapshot(SnapshotId=i)),
        ):
            for resource, why in by_kind.get(kind, []):
                items.append(self._delete(resource, why, verb, call, deadline))
        return Receipt(self._region, False, tuple(items))

    def _instances(self, doomed: list[tuple[Resource, str]], deadline: float) -> list[ReceiptItem]:
        if not doomed:
            return []
        ids = [r.id for r, _ in doomed]
        for start in range(0, len(ids), _TERMINATE_BATCH):
            self._terminate(ids[start : start + _TERMINATE_BATCH])
        states = self._wait_terminated(ids, deadline)
        return [
            ReceiptItem(
                "instance",
                r.id,
                r.run_id,
                "terminated"
                if states[r.id] == "terminated"
                else f"timed out (state={states[r.id]})",
                why,
            )
            for r, why in doomed
        ]

    def _terminate(self, ids: list[str]) -> None:
        """Request termination; a NotFound is settled by the describes that follow, not here.

        One unknown id fails a whole TerminateInstances call, so on NotFound each id is sent
        alone: the others are still terminated, and the unknown one is looked for again.
        """
        try:
            with aws_errors(region=self._region):
                self._ec2.terminate_instances(InstanceIds=ids)
        except ProviderError as exc:
            if code_of(exc) != "InvalidInstanceID.NotFound":
                raise
            for one in ids if len(ids) > 1 else []:
                self._terminate([one])

    def _wait_terminated(self, ids: list[str], deadline: float) -> dict[str, str]:
        """Each id's state once all are terminated (or at the deadline).

        Described by an ``instance-id`` filter, which (unlike ``InstanceIds``) does not fail on
        an id EC2 does not know yet. An instance still live (its terminate answered NotFound
        before it had propagated) is asked to terminate again.
        """
        states = dict.fromkeys(ids, "unknown")
        while True:
            with aws_errors(region=self._region):
                pages = self._ec2.get_paginator("describe_instances").paginate(
                    Filters=[{"Name": "instance-id", "Values": ids}]
                )
                for page in pages:
                    for reservation in page.get("Reservations", []):
                        for inst in reservation.get("Instances", []):
                            states[inst["InstanceId"]] = inst.get("State", {}).get("Name", "")
            if all(s == "terminated" for s in states.values()) or self._monotonic() >= deadline:
                return states
            live = [i for i, s in states.items() if s in _TERMINABLE]
            if live:
                self._terminate(live)
            self._sleep(self._poll_s)

    def _delete(
        self,
        resource: Resource,
        why: str,
        verb: str,
        call: Callable[[str], object],
        deadline: float,
    ) -> ReceiptItem:
        while True:
            try:
                call(resource.id)
                return ReceiptItem(resource.kind, resource.id, resource.run_id, verb, why)
            except Exception as exc:
                code = error_code(exc)
                if code.endswith(".NotFound") or code.startswith("InvalidKeyPair.NotFound"):
                    return ReceiptItem(resource.kind, resource.id, resource.run_id, verb, why)
                # Still in use (an instance shutting down, an image on a snapshot): wait and retry.
                retry = code in (
                    "DependencyViolation",
                    "VolumeInUse",
                    "IncorrectState",
                    "InvalidSnapshot.InUse",
                )
                if not retry or self._monotonic() >= deadline:
                    if not code:
                        raise
                    return ReceiptItem(
                        resource.kind, resource.id, resource.run_id, f"failed: {code}", why
                    )
            self._sleep(self._poll_s)


def collect_garbage(
    ec2: EC2Client,
    *,
    region: str,
    live_runs: Collection[str],
    now: datetime,
    dry_run: bool = False,
    include_images: bool = False,
    sweeper: Sweeper | None = None,
    owner: str | None,
) -> Receipt:
    """Remove every resource of ours that is orphaned or expired, in one region.

    Args:
        owner: only resources whose ``orchestrate:owner`` is this value are looked at; None
            (``gc --all-owners``, confirmed by the user) means everyone's in the account.
        live_runs: run ids the journal knows as live; anything else tagged as ours is an orphan.
        now: the current time (UTC), against which ``orchestrate:expires`` is read.
        dry_run: list what would go, change nothing.
        include_images: also baked images and their snapshots (they outlive runs by design).

    Returns:
        A receipt with one item per resource found: removed, would be removed, or kept.
    """
    found = list_ours(ec2, region=region, include_images=include_images, owner=owner)
    doomed: list[tuple[Resource, str]] = []
    kept: list[ReceiptItem] = []
    for resource in found:
        reason = orphan_reason(resource, live_runs=live_runs, now=now)
        if reason is None:
            kept.append(
                ReceiptItem(resource.kind, resource.id, resource.run_id, "kept", "live run")
            )
        else:
            doomed.append((resource, reason))
    receipt = (sweeper or Sweeper(ec2, region=region)).remove(doomed, dry_run=dry_run)
    return Receipt(region, dry_run, receipt.items + tuple(kept))
