"""``orchestrate init`` in an empty folder gives a project that runs as written, and a run
never ships earlier results back out (runs/ stays home)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.cli import last_json, orchestrate


def test_init_then_run_twice_ships_no_old_results(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    env = dict(os.environ, ORCHESTRATE_STATE_DIR=str(tmp_path / "state"))
    env.pop("ORCHESTRATE_TRAINERS_SRC", None)
    init = orchestrate(["init"], env, project)
    assert init.returncode == 0, init.stderr
    assert {p.name for p in project.iterdir()} == {
        "experiment.yaml",
        "train.py",
        ".orchestrateignore",
    }
    assert "runs/" in (project / ".orchestrateignore").read_text().splitlines()
    (project / ".orchestrateignore").unlink()  # runs/ stays home even without the ignore file
    for _ in range(2):
        proc = orchestrate(["run", "experiment.yaml", "--json"], env, project, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        summary = last_json(proc)
        assert summary["counts"] == {"done": 2}
    run = Path(summary["run_dir"])
    metrics = json.loads((run / "train-lr0.1-cpu" / "metrics.json").read_text())
    assert metrics["final_loss"] < 1.0
    work = tmp_path / "state" / "workspaces" / run.name / "work"
    assert sorted(p.name for p in work.iterdir()) == ["experiment.yaml", "train.py"]
