"""Hardware truth (issue 13, point 6): GPU counts from DescribeInstanceTypes (cached), p3 out
of the GPU defaults, an image spec's families and architecture enforced at plan and at bake,
a Name tag, and burstable types launched with CreditSpecification=standard. moto's EC2, whose
instance-type data is AWS's own."""

from __future__ import annotations

import io
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from ami.spec import spec_for
from infra.aws.facts import INSTANCE_TYPES
from infra.aws.provider import AwsProvider
from infra.aws.requests import InstanceParams, run_instances_kwargs
from infra.aws.types import CACHE_FILE, TypeFacts, describe_types
from infra.prices import load_catalog
from orchestrator.cli import main
from orchestrator.offers import build_provider
from orchestrator.resources import GPU_MODELS, image_mismatches
from orchestrator.specfile import parse_experiment
from tests.infra.aws.conftest import fail_call, machine_request

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def _exp(machine: str) -> str:
    return (
        "name: hw\nprovider: aws\nregion: us-east-1\nssh_cidr: 203.0.113.7/32\n"
        "budget: {max_usd: 1000}\n"
        f"machines:\n  gpu: {machine}\n"
        "jobs:\n  - trainer: pca\n    device: [gpu]\n"
    )


def test_gpu_count_of_a_type_no_table_knows_comes_from_ec2_and_is_cached(
    tmp_path: Path, ec2: Any
) -> None:
    exp = parse_experiment(_exp("{instance_type: p5.48xlarge, ami: dl-gpu-ubuntu24}"), "x.yaml")
    assert "p5.48xlarge" not in INSTANCE_TYPES
    setup = build_provider(exp, run_id="r", state_dir=tmp_path, local=False, now=NOW)
    (offer,) = setup.offers
    assert offer.gpus == 8 and offer.request.gpus == 8
    cached = json.loads((tmp_path / "aws" / CACHE_FILE).read_text())
    assert cached["p5.48xlarge"]["gpu"] == "H100" and cached["p5.48xlarge"]["gpus"] == 8


def test_the_cache_answers_without_credentials(tmp_path: Path, ec2: Any) -> None:
    TypeFacts(tmp_path, lambda: ec2).info("p5.48xlarge")
    offline = TypeFacts(tmp_path, None)  # nothing to ask with
    assert offline.gpus("p5.48xlarge") == 8
    assert TypeFacts(tmp_path / "empty", None).gpus("g4dn.xlarge") == 1  # the table, offline


def test_each_type_is_described_once(tmp_path: Path, ec2: Any) -> None:
    seen = fail_call(ec2, "DescribeInstanceTypes", "never", when=lambda _: False)
    facts = TypeFacts(tmp_path, lambda: ec2)
    assert facts.gpus("g5.xlarge") == 1 and facts.gpus("g5.xlarge") == 1
    assert facts.gpus("no-such.type") == 0 and facts.gpus("no-such.type") == 0
    assert len(seen) == 2
    assert describe_types(ec2, ["c6i.xlarge"])["c6i.xlarge"].gpus == 0


def test_p3_is_not_a_gpu_default() -> None:
    assert "p3.2xlarge" not in INSTANCE_TYPES and "V100" not in GPU_MODELS
    for types in load_catalog(None).on_demand.values():
        assert not any(t.startswith("p3.") for t in types)


@pytest.mark.parametrize(
    ("machine", "where", "why"),
    [
        (
            "{instance_type: p3.2xlarge, gpus: 1, ami: dl-gpu-ubuntu24}",
            ("machines", "gpu", "instance_type"),
            "supports the g4dn, g5",
        ),
        (
            "{instance_type: g4dn.xlarge, fallback_types: [c6i.xlarge], ami: dl-gpu-ubuntu24}",
            ("machines", "gpu", "fallback_types", 0),
            "not c6i",
        ),
        (
            "{instance_type: t4g.large, gpus: 0, ami: ubuntu24-cpu}",
            ("machines", "gpu", "instance_type"),
            "t4g.large is arm64 and image ubuntu24-cpu is x86_64",
        ),
    ],
)
def test_a_type_its_image_cannot_use_is_refused(
    machine: str, where: tuple[Any, ...], why: str
) -> None:
    ((loc, message, _),) = image_mismatches(parse_experiment(_exp(machine), "x.yaml"))
    assert loc == where and why in message


def test_plan_refuses_p3_with_the_gpu_image_located(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "p3.yaml"
    spec.write_text(_exp("{instance_type: p3.2xlarge, gpus: 1, ami: dl-gpu-ubuntu24}"))
    assert main(["plan", str(spec), "--state-dir", str(tmp_path / "state")]) == 2
    err = capsys.readouterr().err
    assert f"{spec}:7" in err and "not p3" in err


def test_bake_of_a_gpu_spec_defaults_to_a_gpu_type() -> None:
    gpu, cpu = spec_for("dl-gpu-ubuntu24"), spec_for("ubuntu24-cpu")
    assert INSTANCE_TYPES[gpu.bake_type].gpus >= 1 and gpu.mismatch(gpu.bake_type) is None
    assert INSTANCE_TYPES[cpu.bake_type].gpus == 0


def test_bake_refuses_a_type_the_spec_cannot_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    argv = ["ami", "bake", "dl-gpu-ubuntu24", "--instance-type", "p3.2xlarge"]
    with mock_aws():
        code = main([*argv, "--ssh-cidr", "203.0.113.7/32", "--state-dir", str(tmp_path)])
    assert code == 2 and "not p3" in capsys.readouterr().err


def test_instances_are_named_and_burstable_ones_bill_no_credits(
    provider: AwsProvider, ec2: Any
) -> None:
    seen = fail_call(ec2, "RunInstances", "never", when=lambda _: False)
    machine = provider.acquire(provider.prepare(machine_request(types=("t3.micro",))), token="n")
    assert seen[-1]["CreditSpecification"] == {"CpuCredits": "standard"}
    inst = ec2.describe_instances(InstanceIds=[machine.id])["Reservations"][0]["Instances"][0]
    assert {t["Key"]: t["Value"] for t in inst["Tags"]}["Name"] == "orchestrate-run-1-cpu"


@pytest.mark.parametrize(("itype", "credits"), [("t4g.small", True), ("c6i.xlarge", False)])
def test_credit_specification_only_for_burstable_types(itype: str, credits: bool) -> None:
    params = InstanceParams("ami-1", itype, "k", "sg-1", "", {}, "tok")
    assert ("CreditSpecification" in run_instances_kwargs(params)) is credits


def test_a_literal_image_id_is_not_judged_by_a_spec_it_has_not() -> None:
    exp = parse_experiment(
        _exp("{instance_type: t4g.large, gpus: 0, ami: ami-0123456789abcdef0}"), "x.yaml"
    )
    assert image_mismatches(exp) == []
