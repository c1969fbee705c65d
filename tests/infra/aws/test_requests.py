from __future__ import annotations

from datetime import UTC, datetime

import pytest

from infra.aws.requests import (
    InstanceParams,
    client_token,
    redact,
    resource_tags,
    run_instances_kwargs,
    ssh_ingress,
)
from infra.errors import ProviderError


def _params(**over: object) -> InstanceParams:
    base: dict[str, object] = dict(
        image_id="ami-12345678",
        instance_type="g4dn.xlarge",
        key_name="k",
        security_group_id="sg-1",
        user_data="#cloud-config\n",
        tags={"orchestrate:run": "r1"},
        client_token="tok",
    )
    base.update(over)
    return InstanceParams(**base)  # type: ignore[arg-type]


def test_run_instances_is_locked_down() -> None:
    kw = run_instances_kwargs(_params())
    assert kw["MetadataOptions"]["HttpTokens"] == "required"
    assert kw["InstanceInitiatedShutdownBehavior"] == "terminate"
    ebs = kw["BlockDeviceMappings"][0]["Ebs"]
    assert ebs == {
        "VolumeSize": 40,
        "VolumeType": "gp3",
        "Encrypted": True,
        "DeleteOnTermination": True,
    }
    assert [s["ResourceType"] for s in kw["TagSpecifications"]] == ["instance", "volume"]
    assert kw["ClientToken"] == "tok" and kw["MinCount"] == kw["MaxCount"] == 1
    assert "InstanceMarketOptions" not in kw


def test_spot_is_one_time_and_terminates() -> None:
    options = run_instances_kwargs(_params(spot=True))["InstanceMarketOptions"]
    assert options["MarketType"] == "spot"
    assert options["SpotOptions"]["InstanceInterruptionBehavior"] == "terminate"


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "::/0"])
def test_open_ssh_is_refused_unless_asked(cidr: str) -> None:
    with pytest.raises(ProviderError, match="whole internet"):
        ssh_ingress(cidr)
    assert ssh_ingress(cidr, allow_open_ssh=True)[0]["FromPort"] == 22


def test_ingress_is_port_22_from_the_cidr_only() -> None:
    (rule,) = ssh_ingress("203.0.113.7/32")
    assert (rule["FromPort"], rule["ToPort"], rule["IpProtocol"]) == (22, 22, "tcp")
    assert [r["CidrIp"] for r in rule["IpRanges"]] == ["203.0.113.7/32"]


@pytest.mark.parametrize("cidr", [None, "", "not-a-cidr"])
def test_missing_or_bad_cidr_is_refused(cidr: str | None) -> None:
    with pytest.raises(ProviderError, match="ssh_cidr"):
        ssh_ingress(cidr)


def test_client_token_per_candidate_and_bounded() -> None:
    a = client_token("x" * 100, "g5.xlarge", "us-east-1a", "spot")
    assert len(a) <= 64
    assert a == client_token("x" * 100, "g5.xlarge", "us-east-1a", "spot")
    assert a != client_token("x" * 100, "g5.xlarge", "us-east-1b", "spot")


def test_tags_keep_the_run_id_and_expiry() -> None:
    tags = resource_tags(
        run_id="r1",
        owner="me",
        deadline=datetime(2030, 1, 1, tzinfo=UTC),
        machine="gpu",
        extra={"orchestrate:run": "spoofed", "team": "ml"},
    )
    assert tags == {
        "orchestrate:run": "r1",
        "orchestrate:owner": "me",
        "team": "ml",
        "orchestrate:expires": "2030-01-01T00:00:00Z",
        "orchestrate:machine": "gpu",
    }


def test_redact_hides_user_data() -> None:
    out = redact({"UserData": "#cloud-config\nssh_keys: SECRET", "ImageId": "ami-1"})
    assert "SECRET" not in str(out) and out["ImageId"] == "ami-1"
