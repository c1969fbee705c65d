"""``gpu: T4`` / ``gpu: {memory: 24GB}`` / ``cpus:`` on an aws machine class become instance types:
the cheapest fitting type in the region, then the next two as the fallback list."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from infra.aws.facts import INSTANCE_TYPES
from infra.prices import load_catalog
from orchestrator.cli import main
from orchestrator.errors import SpecError
from orchestrator.resources import resolve_machines
from orchestrator.specfile import parse_experiment

HEAD = "name: a\nprovider: aws\nregion: {region}\nssh_cidr: 203.0.113.7/32\nmachines:\n"


def _exp(machine: str, region: str = "us-east-1") -> str:
    """One machine class, named for its device as by-device placement wants (``gpu``/``cpu``)."""
    device = "gpu" if "gpu:" in machine else "cpu"
    jobs = f"jobs:\n  - trainer: pca\n    device: [{device}]\n"
    return HEAD.format(region=region) + f"  {device}: {machine}\n" + jobs


def _choose(machine: str, region: str = "us-east-1") -> tuple[list[str], list[float]]:
    exp = parse_experiment(_exp(machine, region), "a.yaml")
    resolved, choices = resolve_machines(exp, load_catalog(None))
    mc = next(iter(resolved.machines.values()))
    (choice,) = choices
    assert [mc.instance_type, *mc.fallback_types] == list(choice.types)  # the fallback list
    return list(choice.types), [c.hourly_usd for c in choice.candidates]


@pytest.mark.parametrize(
    ("ask", "types"),
    [
        ("{gpu: T4, ami: dl-gpu}", ["g4dn.xlarge", "g4dn.2xlarge"]),
        ("{gpu: t4, ami: dl-gpu}", ["g4dn.xlarge", "g4dn.2xlarge"]),
        ("{gpu: {name: A10G, count: 1}, ami: dl-gpu}", ["g5.xlarge", "g5.2xlarge"]),
        ("{gpu: {memory: 24GB}, ami: dl-gpu}", ["g6.xlarge", "g5.xlarge", "g5.2xlarge"]),
        ("{gpu: 'A100:8', ami: dl-gpu}", ["p4d.24xlarge"]),
        ("{gpu: T4, cpus: 8, ami: dl-gpu}", ["g4dn.2xlarge"]),
        ("{cpus: 8, memory: 16GB, ami: cpu}", ["c6i.2xlarge", "c7i.2xlarge", "m6i.2xlarge"]),
    ],
)
def test_the_cheapest_fitting_type_then_the_next_two(ask: str, types: list[str]) -> None:
    chosen, prices = _choose(ask)
    assert chosen == types
    assert prices == sorted(prices)


def test_gpu_t4_plans_to_g4dn_xlarge_with_its_price(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The done-when line, through ``orchestrate plan`` (offline: no AWS credentials)."""
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("COLUMNS", "120")
    spec = tmp_path / "exp.yaml"
    spec.write_text(_exp("{gpu: T4, ami: dl-gpu-ubuntu24}").replace("dl-gpu-ubuntu24", _gpu_ami()))
    state = ["--state-dir", str(tmp_path / "state")]
    assert main(["plan", str(spec), "--json", *state]) == 0
    plan = json.loads(capsys.readouterr().out)
    (choice,) = plan["type_choices"]
    assert choice["candidates"][0] == {"instance_type": "g4dn.xlarge", "hourly_usd": 0.526}
    (machine,) = plan["machines"]
    # The forecast prices the dearest type the machine may fall back to (issue 13, point 3).
    assert machine["hourly_usd"] == 0.752 and machine["gpus"] == 1
    assert machine["summary"].startswith("g4dn.xlarge -> g4dn.2xlarge")
    assert main(["plan", str(spec), *state]) == 0
    out = capsys.readouterr().out
    assert "gpu: T4 -> g4dn.xlarge $0.526/h (next: g4dn.2xlarge $0.752/h)" in out


def _gpu_ami() -> str:
    from ami.spec import load_specs

    return next(n for n, s in sorted(load_specs().items()) if s.flavour == "cuda")


def test_asks_that_cannot_be_met_are_located_errors() -> None:
    with pytest.raises(SpecError) as info:
        _choose("{gpu: T5, ami: x}")
    assert "unknown GPU 'T5'" in str(info.value) and "did you mean 'T4'" in str(info.value)
    with pytest.raises(SpecError, match="no instance type in us-east-1 has gpu: T4 x4"):
        _choose("{gpu: 'T4:4', ami: x}")
    with pytest.raises(SpecError, match="either instance_type or what it needs"):
        parse_experiment(_exp("{instance_type: g4dn.xlarge, gpu: T4, ami: x}"), "a.yaml")
    with pytest.raises(SpecError, match="either instance_type or what it needs"):
        parse_experiment(_exp("{ami: x}"), "a.yaml")
    with pytest.raises(SpecError):
        parse_experiment(_exp("{gpu: {memory: lots}, ami: x}"), "a.yaml")


def test_every_gpu_type_in_the_catalog_is_in_the_table() -> None:
    catalog = load_catalog(None)
    for types in catalog.on_demand.values():
        assert set(types) <= set(INSTANCE_TYPES)


def test_gpus_lists_types_prices_memory_and_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    state = ["--state-dir", str(tmp_path / "state")]
    assert main(["gpus", "--region", "eu-west-1", *state]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 80 for line in lines)
    row = next(line for line in lines if line.startswith("g4dn.xlarge"))
    assert row.split() == ["g4dn.xlarge", "T4", "1", "16", "GiB", "4", "16", "GiB", "0.587"]
    assert any(line.startswith("images (ami:): ") and _gpu_ami() in line for line in lines)
    assert main(["gpus", "--json", *state]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["region"] == "us-east-1"
    assert [t["instance_type"] for t in listed["types"]][:2] == ["g4dn.xlarge", "g4dn.2xlarge"]
    assert all(t["hourly_usd"] > 0 and t["gpu_memory_gib"] > 0 for t in listed["types"])
