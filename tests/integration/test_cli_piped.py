"""A ``run`` whose output is piped (CI logs, ``| tee``) prints timestamped progress lines."""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.cli import orchestrate
from tests.fakes import FAKE_TRAINERS

EXP = """
name: piped
jobs:
  - trainer: mnist
    framework: [tensorflow]
    optimizer: [adam]
    device: [cpu, gpu]
    epochs: 3
"""
STAMP = r"^\d\d:\d\d:\d\d "


def test_piped_run_prints_started_epoch_and_finished_lines(tmp_path: Path) -> None:
    env = dict(
        os.environ,
        ORCHESTRATE_TRAINERS_SRC=str(FAKE_TRAINERS),
        ORCHESTRATE_STATE_DIR=str(tmp_path / "state"),
        ORCHESTRATE_LOCAL_GPUS="0",
        FAKE_EPOCH_S="0.3",
        COLUMNS="80",
    )
    (tmp_path / "exp.yaml").write_text(EXP)
    proc = orchestrate(["run", "exp.yaml"], env, tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    task = "mnist-tensorflow-adam-cpu"
    for pattern in (
        r"run piped-\S+: 2 tasks \(1 skipped\) -> ",
        rf"{task} started on local$",
        rf"{task} epoch 1/3",
        rf"{task} epoch 3/3",
        rf"{task} done \(",
        r"run piped-\S+ done$",
    ):
        assert re.search(STAMP + pattern, out, re.M), (pattern, out)
    assert "\x1b[" not in out  # no terminal control sequences in a log
    lines = out.splitlines()
    first_epoch = next(i for i, ln in enumerate(lines) if "epoch 1/3" in ln)
    assert first_epoch < next(i for i, ln in enumerate(lines) if f"{task} done" in ln)
