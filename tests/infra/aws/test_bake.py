"""Bake: launch the base, run setup over the transport, create_image tagged by spec hash."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ami.spec import spec_hash
from infra.aws.bake import ComputeWithImages
from infra.aws.gc import collect_garbage
from infra.aws.provider import AwsProvider
from tests.infra.aws.conftest import START, TEST_SPEC, FakeSsh, machine_request


def test_bake_creates_a_tagged_image_and_cleans_up(
    provider: AwsProvider, ec2: Any, ssh: FakeSsh
) -> None:
    assert isinstance(provider, ComputeWithImages)
    assert provider.find_image(TEST_SPEC) is None
    ref = provider.bake_image(
        TEST_SPEC,
        run_id="bake-1",
        instance_type="t3.micro",
        deadline=START + timedelta(hours=2),
        token="bake-tok",
    )
    assert ref.source == f"baked:{spec_hash(TEST_SPEC)}"
    scripts = [c for c in ssh.commands if c[:2] == ("bash", "-c")]
    assert any("orchestrate-setup-flavour.sh" in script[2] for script in scripts)
    assert any("cloud-init clean" in " ".join(c) for c in ssh.commands)

    image = ec2.describe_images(ImageIds=[ref.ami_id])["Images"][0]
    tags = {t["Key"]: t["Value"] for t in image["Tags"]}
    assert tags["orchestrate:spec-hash"] == spec_hash(TEST_SPEC)
    assert tags["orchestrate:spec"] == "test-ubuntu"
    # The bake machine, its key pair and group are gone.
    assert provider.owned(run_id="bake-1") == []
    assert ec2.describe_key_pairs()["KeyPairs"] == []

    # A second bake of the same spec launches nothing; a run now prefers the baked image.
    ssh.commands.clear()
    again = provider.bake_image(
        TEST_SPEC,
        run_id="bake-2",
        instance_type="t3.micro",
        deadline=START + timedelta(hours=2),
        token="bake-tok-2",
    )
    assert again.ami_id == ref.ami_id and ssh.commands == []
    fresh = AwsProvider(
        state_dir=provider.state_dir,
        ec2=ec2,
        ssm=provider.ssm,
        region="us-east-1",
        ssh_cidr="203.0.113.7/32",
    )
    launch = fresh.prepare(machine_request())
    run = next(c for c in launch.calls if c.name == "ec2.run_instances").kwargs
    assert run["ImageId"] == ref.ami_id
    assert {t["Key"]: t["Value"] for t in run["TagSpecifications"][0]["Tags"]}[
        "orchestrate:setup"
    ] == "baked"
    assert [b.ami_id for b in provider.list_images()] == [ref.ami_id]


def test_gc_removes_baked_images_only_when_asked(provider: AwsProvider, ec2: Any) -> None:
    ref = provider.bake_image(
        TEST_SPEC,
        run_id="bake-1",
        instance_type="t3.micro",
        deadline=START + timedelta(hours=2),
        token="bake-tok",
    )
    plain = collect_garbage(ec2, owner=None, region="us-east-1", live_runs=set(), now=START)
    assert plain.items == ()
    receipt = collect_garbage(
        ec2, owner=None, region="us-east-1", live_runs=set(), now=START, include_images=True
    )
    assert receipt.ok
    assert ("image", ref.ami_id, "deregistered") in {(i.kind, i.id, i.state) for i in receipt.items}
    assert provider.list_images() == []
