from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from ami.resolve import ImageNotFound, newest_image, resolve_image
from ami.spec import ImageSpec

AL2023 = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
UBUNTU = ImageSpec(
    name="u", owner="099720109477", name_filter="ubuntu/images/hvm-ssd/ubuntu-*-amd64-server-*"
)


def test_ssm_public_parameter_resolves(aws: tuple[Any, Any]) -> None:
    ec2, ssm = aws
    expected = ssm.get_parameter(Name=AL2023)["Parameter"]["Value"]
    ref = resolve_image(
        ImageSpec(name="al", ssm_parameter=AL2023), region="us-east-1", ec2=ec2, ssm=ssm
    )
    assert ref.ami_id == expected and ref.source == f"ssm:{AL2023}"


def test_missing_ssm_parameter_falls_back_to_owner_and_name(aws: tuple[Any, Any]) -> None:
    ec2, ssm = aws
    spec = ImageSpec(
        name="u",
        ssm_parameter="/orchestrate-test/missing",
        owner=UBUNTU.owner,
        name_filter=UBUNTU.name_filter,
    )
    ref = resolve_image(spec, region="us-east-1", ec2=ec2, ssm=ssm)
    assert ref.source.startswith("owner:099720109477/")
    # moto's Canonical images: xenial (16.04) is newer than trusty (14.04).
    assert "xenial" in ref.name


def test_owner_filter_with_no_match_names_every_rule(aws: tuple[Any, Any]) -> None:
    ec2, ssm = aws
    spec = ImageSpec(
        name="jammy",
        ssm_parameter="/orchestrate-test/missing",
        owner="099720109477",
        name_filter="ubuntu/images/hvm-ssd/ubuntu-jammy-*",
    )
    with pytest.raises(ImageNotFound) as info:
        resolve_image(spec, region="us-east-1", ec2=ec2, ssm=ssm)
    assert "SSM parameter /orchestrate-test/missing" in str(info.value)
    assert "ubuntu-jammy" in str(info.value)


def test_literal_id_needs_no_call() -> None:
    ref = resolve_image(ImageSpec(name="x", ami_id="ami-12345678"), region="eu-west-1")
    assert ref.ami_id == "ami-12345678" and ref.source == "literal"


class _Images:
    """A two-image catalog: the newest CreationDate must win regardless of order."""

    def describe_images(self, **kwargs: Any) -> Mapping[str, Any]:
        self.kwargs = kwargs
        return {
            "Images": [
                {
                    "ImageId": "ami-new",
                    "Name": "b",
                    "CreationDate": "2024-05-01T00:00:00.000Z",
                    "RootDeviceName": "/dev/sda1",
                    "BlockDeviceMappings": [{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 75}}],
                },
                {"ImageId": "ami-old", "Name": "c", "CreationDate": "2023-01-01T00:00:00.000Z"},
            ]
        }


def test_newest_match_wins_and_carries_snapshot_size() -> None:
    images = _Images()
    ref = newest_image(images, owner="amazon", name_filter="Deep*", region="us-east-1")
    assert ref is not None and ref.ami_id == "ami-new" and ref.root_snapshot_gb == 75
    assert {"Name": "state", "Values": ["available"]} in images.kwargs["Filters"]
    assert images.kwargs["Owners"] == ["amazon"]
