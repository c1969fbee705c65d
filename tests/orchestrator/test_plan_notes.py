"""A batch_size that gd/sgd cannot use is named in the plan, never dropped silently."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.matrix import expand
from orchestrator.plan_notes import batch_notes
from orchestrator.specfile import parse_experiment

EXP = "name: b\njobs:\n  - trainer: mnist\n    optimizer: [sgd, gd, adam]\n    batch_size: 100\n"


def test_batch_size_on_sgd_and_gd_is_named() -> None:
    notes = batch_notes(expand(parse_experiment(EXP, "b.yaml")))
    assert len(notes) == 2
    assert notes[0].startswith("gd steps on the whole training set: batch_size has no effect")
    assert "mnist-tensorflow-sgd-cpu" in notes[1] and "adam" in notes[1]
    no_batch = EXP.replace("    batch_size: 100\n", "")
    assert batch_notes(expand(parse_experiment(no_batch, "b.yaml"))) == []


def test_plan_prints_the_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "b.yaml").write_text(EXP)
    assert main(["plan", str(tmp_path / "b.yaml"), "--state-dir", str(tmp_path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "note: sgd steps on one sample: batch_size has no effect" in out
