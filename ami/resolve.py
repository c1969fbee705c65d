"""Find the base image an ``ImageSpec`` names, in one region, with clients passed in.

Order of preference:
  1. a literal ``ami_id`` (looked up only to learn its root device and size);
  2. the spec's SSM public parameter (the vendor's own "current" pointer);
  3. ``owner`` + ``name_filter`` through ``describe_images``: the newest match wins.

A missing SSM parameter (``ParameterNotFound``, or not readable in that region) falls through
to the owner + name rule. This module never creates a client: the caller passes objects that
look like boto3's SSM and EC2 clients, typed by the small Protocols below, so ``ami`` stays
free of boto3.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict

from ami.spec import ImageSpec

# SSM error codes that mean "this rule cannot answer here", not "something is broken".
_SSM_FALLTHROUGH = frozenset({"ParameterNotFound", "ParameterVersionNotFound"})
# Not allowed to read it: the next rule may still answer, but if none does the user must hear
# "access denied", never "not found".
_SSM_DENIED = frozenset({"AccessDeniedException", "AccessDenied"})


class ImageFilter(TypedDict, total=False):
    """One EC2 filter, shaped as boto3 takes it."""

    Name: str
    Values: Sequence[str]


class SsmParameters(Protocol):
    """The one SSM call resolution needs (boto3's SSM client satisfies it)."""

    def get_parameter(self, *, Name: str) -> Mapping[str, Any]: ...


class Ec2Images(Protocol):
    """The one EC2 call resolution needs (boto3's EC2 client satisfies it)."""

    def describe_images(
        self,
        *,
        Owners: Sequence[str] = ...,
        ImageIds: Sequence[str] = ...,
        Filters: Sequence[ImageFilter] = ...,
    ) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class ImageRef:
    """A concrete image in one region, and how it was found (``source``)."""

    ami_id: str
    name: str
    creation_date: str
    region: str
    source: str  # "literal" | "ssm:<parameter>" | "owner:<owner>/<filter>"
    root_device_name: str = "/dev/sda1"
    root_snapshot_gb: int = 0  # the base snapshot's size: the root volume may not be smaller


class ImageAccessDenied(PermissionError):
    """No rule found an image and at least one was refused by IAM (``ssm:GetParameter``):
    the message names the action to grant, not a missing image."""


class ImageNotFound(LookupError):
    """No rule of the spec found an image in the region; the message lists what was tried.

    A ``LookupError`` because ``ami`` imports nothing of ours; ``infra`` maps it to
    ``ProviderError``.
    """


def resolve_image(
    spec: ImageSpec,
    *,
    region: str,
    ec2: Ec2Images | None = None,
    ssm: SsmParameters | None = None,
) -> ImageRef:
    """Resolve ``spec`` to one image in ``region``.

    Contract:
      1. Makes read-only calls only (SSM ``GetParameter``, EC2 ``DescribeImages``).
      2. A literal id is returned without any call when ``ec2`` is None.
      3. Among owner + name matches the newest ``CreationDate`` wins (ties: the larger name).

    Raises:
        ImageAccessDenied: no rule produced an image and IAM refused one of them.
        ImageNotFound: no rule produced an image; the message names each rule tried.
    """
    tried: list[str] = []
    denied = False
    if spec.ami_id:
        if ec2 is None:
            return ImageRef(spec.ami_id, spec.ami_id, "", region, "literal")
        found = _describe_one(ec2, spec.ami_id, region, "literal")
        if found is not None:
            return found
        tried.append(f"literal id {spec.ami_id}: not found")
    if spec.ssm_parameter and ssm is not None:
        try:
            ami_id = _ssm_ami_id(ssm, spec.ssm_parameter)
        except PermissionError:
            ami_id, denied = None, True
        source = f"ssm:{spec.ssm_parameter}"
        if denied:
            tried.append(f"SSM parameter {spec.ssm_parameter}: access denied to ssm:GetParameter")
        elif ami_id is None:
            tried.append(f"SSM parameter {spec.ssm_parameter}: not found")
        elif ec2 is None:
            return ImageRef(ami_id, ami_id, "", region, source)
        else:
            found = _describe_one(ec2, ami_id, region, source)
            if found is not None:
                return found
            tried.append(f"SSM parameter {spec.ssm_parameter} -> {ami_id}: image not found")
    if spec.owner and spec.name_filter and ec2 is not None:
        found = newest_image(
            ec2,
            owner=spec.owner,
            name_filter=spec.name_filter,
            region=region,
            architecture=spec.architecture,
        )
        if found is not None:
            return found
        tried.append(f"owner {spec.owner} + name {spec.name_filter!r}: no match")
    if not tried:
        tried.append("no rule could run with the clients given")
    if denied:
        raise ImageAccessDenied(f"no image for spec {spec.name!r} in {region}: " + "; ".join(tried))
    raise ImageNotFound(f"no image for spec {spec.name!r} in {region}: " + "; ".join(tried))


def newest_image(
    ec2: Ec2Images, *, owner: str, name_filter: str, region: str, architecture: str = "x86_64"
) -> ImageRef | None:
    """The newest available image of ``owner`` whose name matches ``name_filter`` (wildcards)."""
    response = ec2.describe_images(
        Owners=[owner],
        Filters=[
            {"Name": "name", "Values": [name_filter]},
            {"Name": "state", "Values": ["available"]},
            {"Name": "architecture", "Values": [architecture]},
        ],
    )
    images = list(response.get("Images", []))
    if not images:
        return None
    best = max(images, key=lambda im: (str(im.get("CreationDate") or ""), str(im.get("Name", ""))))
    return _to_ref(best, region, f"owner:{owner}/{name_filter}")


def _ssm_ami_id(ssm: SsmParameters, name: str) -> str | None:
    try:
        response = ssm.get_parameter(Name=name)
    except Exception as exc:
        # Duck-typed botocore ClientError: ami must not import botocore to catch it by class.
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        if code in _SSM_FALLTHROUGH:
            return None
        if code in _SSM_DENIED:
            raise PermissionError(code) from exc
        raise
    value = str(response.get("Parameter", {}).get("Value", "")).strip()
    return value or None


def _describe_one(ec2: Ec2Images, ami_id: str, region: str, source: str) -> ImageRef | None:
    try:
        response = ec2.describe_images(ImageIds=[ami_id])
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        if code in ("InvalidAMIID.NotFound", "InvalidAMIID.Malformed", "InvalidAMIID.Unavailable"):
            return None
        raise
    images = list(response.get("Images", []))
    return _to_ref(images[0], region, source) if images else None


def _to_ref(image: Mapping[str, Any], region: str, source: str) -> ImageRef:
    root = str(image.get("RootDeviceName") or "/dev/sda1")
    size = 0
    for mapping in image.get("BlockDeviceMappings", []) or []:
        if mapping.get("DeviceName") == root:
            size = int(mapping.get("Ebs", {}).get("VolumeSize") or 0)
    return ImageRef(
        ami_id=str(image["ImageId"]),
        name=str(image.get("Name") or image["ImageId"]),
        creation_date=str(image.get("CreationDate") or ""),
        region=region,
        source=source,
        root_device_name=root,
        root_snapshot_gb=size,
    )
