from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from infra.prices import load_catalog
from orchestrator.cli.init_cmd import AlreadyExists, cmd_init
from orchestrator.matrix import expand
from orchestrator.offers import build_provider
from orchestrator.specfile import load_experiment, parse_experiment

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_init_writes_a_valid_commented_starter(tmp_path: Path) -> None:
    (tmp_path / "train_model.py").write_text("print(1)\n")
    (tmp_path / "requirements.txt").write_text("numpy\n")
    args = argparse.Namespace(directory=str(tmp_path), file="experiment.yaml", force=False)
    assert cmd_init(args) == 0
    text = (tmp_path / "experiment.yaml").read_text()
    assert (
        "python train_model.py --lr {lr}" in text and "pip install -q -r requirements.txt" in text
    )
    exp = load_experiment(tmp_path / "experiment.yaml")  # it validates as written
    assert [t.id for t in expand(exp)] == ["train-lr0.1-cpu", "train-lr0.01-cpu"]
    with pytest.raises(AlreadyExists):
        cmd_init(args)


def _aws(max_usd: float, max_hours: float = 2.0):  # type: ignore[no-untyped-def]
    return parse_experiment(
        f"name: a\nprovider: aws\nregion: us-east-1\nssh_cidr: 203.0.113.7/32\n"
        f"budget: {{max_usd: {max_usd}, max_hours: {max_hours}}}\n"
        "machines:\n  gpu: {instance_type: g4dn.xlarge, ami: ami-12345678}\n"
        "  cpu: {instance_type: c6i.2xlarge, ami: ami-12345678}\n"
        "jobs:\n  - trainer: pca\n    device: [cpu, gpu]\n",
        "a.yaml",
    )


def test_each_instance_deadline_comes_from_the_budget_left(tmp_path: Path) -> None:
    setup = build_provider(
        _aws(max_usd=0.5),
        run_id="r",
        state_dir=tmp_path,
        local=False,
        now=NOW,
        prices=load_catalog(None),
    )
    deadlines = {o.request.name: o.request.deadline for o in setup.offers}
    # $0.50 buys 0.95 h of g4dn.xlarge ($0.526/h) and 1.47 h of c6i.2xlarge ($0.34/h)
    assert deadlines["gpu"] == NOW + timedelta(hours=0.5 / 0.526)
    assert deadlines["cpu"] == NOW + timedelta(hours=0.5 / 0.34)
    gpus = {o.request.name: o.gpus for o in setup.offers}
    assert gpus == {"gpu": 1, "cpu": 0}
    roomy = build_provider(
        _aws(max_usd=100),
        run_id="r",
        state_dir=tmp_path,
        local=False,
        now=NOW,
        prices=load_catalog(None),
    )
    assert all(o.request.deadline == NOW + timedelta(hours=2) for o in roomy.offers)
