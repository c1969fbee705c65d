"""Baked images: launch a spec's base image, run its setup, save it as an AMI, find it again.

The cache key is ``ami.spec.spec_hash``: an image tagged ``orchestrate:spec-hash=<hash>`` is a
finished bake of exactly that spec, so ``find_baked`` answers "is there one?" with one
``DescribeImages`` call, and ``AwsProvider.resolve_image`` uses it in place of the base image.

Baking is an optional ability, so it is a small Protocol checked with ``isinstance``
(dstack's ``ComputeWithImagesSupport``), not a widening of ``Provider``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ami.resolve import ImageRef
from ami.spec import ImageSpec, spec_hash
from ami.userdata import DEADLINE_DISARM, setup_commands
from infra.aws.errors import aws_errors
from infra.aws.requests import (
    TAG_BASE,
    TAG_OWNER,
    TAG_RUN,
    TAG_SPEC,
    TAG_SPEC_HASH,
    tag_specifications,
)
from infra.errors import LaunchTimeout, ProviderError
from infra.provider import MachineRequest

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

    from infra.aws.context import BakeContext

# Leave no secret and no identity of the bake machine in the image: its pinned host key and
# our login key must not be shared by every machine launched from it. `cloud-init clean` makes
# the next boot a first boot, so new host keys and the new key pair are installed then.
CLEANUP = (
    "cloud-init clean --logs --machine-id 2>/dev/null || cloud-init clean --logs; "
    "rm -f /etc/ssh/ssh_host_* /root/.ssh/authorized_keys /home/*/.ssh/authorized_keys; "
    + DEADLINE_DISARM
)
SETUP_TIMEOUT_S = 3600.0  # a CUDA wheel set is several GB; slow mirrors take a while
IMAGE_TIMEOUT_S = 3600.0  # CreateImage of a 100 GB root can take tens of minutes


@dataclass(frozen=True)
class BakedImage:
    """One baked image in one region, as `orchestrate ami list` shows it."""

    ami_id: str
    name: str
    spec: str
    spec_hash: str
    base_ami: str
    created: str
    state: str
    region: str


@runtime_checkable
class ComputeWithImages(Protocol):
    """A provider that can bake and find images (check with ``isinstance``)."""

    def find_image(self, spec: ImageSpec) -> ImageRef | None:
        """The newest available baked image of exactly this spec, or None."""
        ...

    def bake_image(
        self, spec: ImageSpec, *, run_id: str, instance_type: str, deadline: datetime, token: str
    ) -> ImageRef:
        """Bake ``spec`` (or return the existing bake); the bake machine is always released."""
        ...

    def list_images(self) -> list[BakedImage]:
        """Every baked image of ours in this region."""
        ...


def _tags(raw: Any) -> dict[str, str]:
    return {str(t["Key"]): str(t["Value"]) for t in raw or []}


def find_baked(ec2: EC2Client, spec: ImageSpec, *, region: str) -> ImageRef | None:
    """The newest available image tagged with ``spec``'s hash, or None."""
    digest = spec_hash(spec)
    with aws_errors(region=region):
        images = ec2.describe_images(
            Owners=["self"],
            Filters=[
                {"Name": f"tag:{TAG_SPEC_HASH}", "Values": [digest]},
                {"Name": "state", "Values": ["available"]},
            ],
        )["Images"]
    if not images:
        return None
    best = max(images, key=lambda im: (im.get("CreationDate", ""), im.get("ImageId", "")))
    root = best.get("RootDeviceName", "/dev/sda1")
    size = next(
        (
            int(m.get("Ebs", {}).get("VolumeSize", 0))
            for m in best.get("BlockDeviceMappings", [])
            if m.get("DeviceName") == root
        ),
        0,
    )
    return ImageRef(
        ami_id=best["ImageId"],
        name=best.get("Name", best["ImageId"]),
        creation_date=best.get("CreationDate", ""),
        region=region,
        source=f"baked:{digest}",
        root_device_name=root,
        root_snapshot_gb=size,
    )


def list_baked(ec2: EC2Client, *, region: str) -> list[BakedImage]:
    """Every image of ours carrying a spec hash, newest first."""
    with aws_errors(region=region):
        images = ec2.describe_images(
            Owners=["self"], Filters=[{"Name": "tag-key", "Values": [TAG_SPEC_HASH]}]
        )["Images"]
    out = []
    for image in images:
        tags = _tags(image.get("Tags"))
        out.append(
            BakedImage(
                ami_id=image["ImageId"],
                name=image.get("Name", ""),
                spec=tags.get(TAG_SPEC, ""),
                spec_hash=tags.get(TAG_SPEC_HASH, ""),
                base_ami=tags.get(TAG_BASE, ""),
                created=image.get("CreationDate", ""),
                state=image.get("State", ""),
                region=region,
            )
        )
    return sorted(out, key=lambda b: b.created, reverse=True)


def bake(
    provider: BakeContext,
    spec: ImageSpec,
    *,
    run_id: str,
    instance_type: str,
    deadline: datetime,
    token: str,
) -> ImageRef:
    """Launch the base of ``spec``, run its setup, clean it, and save it as an AMI.

    Contract:
      1. An existing bake of the same spec hash is returned without launching anything.
      2. The bake machine, its key pair and security group are torn down whatever happens.
      3. The image (at creation) and its snapshots (once they exist) are tagged with the
         spec, its hash and the base image.
    """
    existing = find_baked(provider.ec2, spec, region=provider.region)
    if existing is not None:
        return existing
    digest = spec_hash(spec)
    request = MachineRequest(
        run_id=run_id,
        name=f"bake-{spec.name}",
        instance_types=(instance_type,),
        image=spec,
        spot="no",
        deadline=deadline,
    )
    try:
        launch = provider.prepare(request)
        base = provider.resolve_image(spec)
        machine = provider.acquire(launch, token=token)
        transport = provider.connect(machine)
        try:
            transport.run(
                ["bash", "-c", setup_commands(spec, for_image=True)], timeout_s=SETUP_TIMEOUT_S
            )
            transport.run(["sudo", "sh", "-c", CLEANUP], timeout_s=120)
        finally:
            transport.close()
        stamp = provider.clock.now().strftime("%Y%m%d-%H%M%S")
        tags = {
            TAG_RUN: run_id,
            TAG_OWNER: provider.owner,
            TAG_SPEC: spec.name,
            TAG_SPEC_HASH: digest,
            TAG_BASE: base.ami_id,
        }
        with aws_errors(region=provider.region):
            kwargs: dict[str, Any] = {
                "InstanceId": machine.id,
                "Name": f"orchestrate-{spec.name}-{digest}-{stamp}",
                "Description": f"orchestrate bake of {spec.name} ({digest}) from {base.ami_id}",
                "TagSpecifications": tag_specifications(["image"], tags),
            }
            image_id = provider.ec2.create_image(**kwargs)["ImageId"]
        snapshots = _wait_available(provider, image_id)
        if snapshots:
            # Tagged after the fact: the snapshots exist only once the image does.
            with aws_errors(region=provider.region):
                provider.ec2.create_tags(
                    Resources=snapshots, Tags=[{"Key": k, "Value": v} for k, v in tags.items()]
                )
    finally:
        provider.teardown_run(run_id)
    found = find_baked(provider.ec2, spec, region=provider.region)
    if found is None:
        raise ProviderError(f"baked image {image_id} is not visible by its spec hash {digest}")
    return found


def _wait_available(provider: BakeContext, image_id: str) -> list[str]:
    """Wait until the image is available; returns its snapshot ids."""
    deadline = provider.clock.monotonic() + IMAGE_TIMEOUT_S
    while True:
        with aws_errors(region=provider.region):
            images = provider.ec2.describe_images(ImageIds=[image_id])["Images"]
        state = images[0].get("State", "") if images else "missing"
        if state == "available":
            return [
                str(m["Ebs"]["SnapshotId"])
                for m in images[0].get("BlockDeviceMappings", [])
                if m.get("Ebs", {}).get("SnapshotId")
            ]
        if state in ("failed", "invalid", "deregistered", "error"):
            reason = images[0].get("StateReason", {}).get("Message", "") if images else ""
            raise ProviderError(f"image {image_id} {state} while baking: {reason}")
        if provider.clock.monotonic() >= deadline:
            raise LaunchTimeout(f"image {image_id} still {state} after {IMAGE_TIMEOUT_S:.0f}s")
        provider.sleep(provider.waits.poll_s)
