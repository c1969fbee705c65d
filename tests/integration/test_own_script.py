"""The own-script example end to end through the CLI on the local provider."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

from tests.cli import orchestrate

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "own-script"


def _env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def test_own_script_matrix_runs_and_brings_back_outputs(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("checkpoints", "__pycache__"))
    env = dict(os.environ, ORCHESTRATE_STATE_DIR=str(tmp_path / "state"))
    env.pop("ORCHESTRATE_TRAINERS_SRC", None)
    proc = orchestrate(["run", str(project / "experiment.yaml"), "--json"], env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["counts"] == {"done": 4}
    run = Path(summary["run_dir"])
    for task in summary["tasks"]:
        tdir = run / task["task_id"]
        assert 0.0 < task["test_error"] < 0.75
        process = json.loads((tdir / "process.json").read_text())
        assert process["exit_code"] == 0 and process["peak_rss_mb"] > 10
        rows = [json.loads(r) for r in (tdir / "timing.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in rows if r["event"] == "epoch"] == [1, 2, 3, 4, 5]
        npz = list((tdir / "outputs" / "checkpoints").glob("*.npz"))
        assert len(npz) == 1  # its own checkpoint only, not its neighbours'
        manifest = json.loads((tdir / "manifest.json").read_text())
        assert manifest["params"]["lr"] in (0.5, 0.05)
    db = sqlite3.connect(tmp_path / "state" / "journal.sqlite")
    recorded = {r[0]: json.loads(r[1]) for r in db.execute("SELECT task_id, params FROM tasks")}
    assert recorded["softmax-lr0.5-batch32-cpu"] == {"lr": 0.5, "batch": 32}


def test_secret_in_workdir_refuses_to_launch(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("checkpoints", "__pycache__"))
    (project / "id_ed25519").write_text("-----BEGIN OPENSSH PRIVATE KEY-----")
    env = dict(os.environ, ORCHESTRATE_STATE_DIR=str(tmp_path / "state"))
    proc = orchestrate(["run", str(project / "experiment.yaml")], env, tmp_path)
    assert proc.returncode == 2
    assert "refusing to ship secret-looking file(s)" in proc.stderr and "id_ed25519" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_script_env_and_gpu_visibility(tmp_path: Path) -> None:
    (tmp_path / "exp.yaml").write_text(
        "name: envcheck\njobs:\n  - name: env\n"
        "    run: env | grep -E '^(ORCHESTRATE_|CUDA_VISIBLE)' | sort > $ORCHESTRATE_OUT/env.txt\n"
        "    device: [cpu, gpu]\n"
    )
    env = dict(
        os.environ, ORCHESTRATE_STATE_DIR=str(tmp_path / "state"), ORCHESTRATE_LOCAL_GPUS="1"
    )
    proc = orchestrate(["run", "exp.yaml", "--json"], env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    run = Path(json.loads(proc.stdout.splitlines()[-1])["run_dir"])
    cpu = dict(
        line.split("=", 1) for line in (run / "env-cpu" / "env.txt").read_text().splitlines()
    )
    gpu = dict(
        line.split("=", 1) for line in (run / "env-gpu" / "env.txt").read_text().splitlines()
    )
    assert cpu["CUDA_VISIBLE_DEVICES"] == "" and gpu["CUDA_VISIBLE_DEVICES"] == "0"
    assert cpu["ORCHESTRATE_TASK"] == "env-cpu" and cpu["ORCHESTRATE_RUN"] == run.name
    assert cpu["ORCHESTRATE_OUT"].endswith("/out/env-cpu")


def test_report_shows_own_script_beside_builtin_trainers(tmp_path: Path) -> None:
    from tests.fakes import FAKE_TRAINERS

    shutil.copy(EXAMPLE / "train.py", tmp_path / "train.py")
    (tmp_path / "exp.yaml").write_text(
        "name: mixed\nworkdir: .\njobs:\n"
        "  - trainer: mnist\n    optimizer: [adam]\n    epochs: 2\n"
        "  - name: softmax\n"
        "    run: python train.py --lr {lr} --batch 64 --epochs 3 --out $ORCHESTRATE_OUT\n"
        "    params: {lr: [0.5, 0.05]}\n"
    )
    env = dict(
        os.environ,
        ORCHESTRATE_STATE_DIR=str(tmp_path / "state"),
        ORCHESTRATE_TRAINERS_SRC=str(FAKE_TRAINERS),
        FAKE_EPOCH_S="0",
    )
    proc = orchestrate(["run", "exp.yaml", "--json"], env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.splitlines()[-1])
    results = json.loads((Path(summary["run_dir"]) / "report" / "results.json").read_text())
    text = json.dumps(results)
    assert "mnist-tensorflow-adam-cpu" in text and "softmax-lr0.5-cpu" in text
    md = (Path(summary["run_dir"]) / "report" / "report.md").read_text()
    per_epoch = md.split("### Test error per epoch", 1)[1].split("###", 1)[0]
    assert "mnist-tensorflow-adam-cpu" in per_epoch and "softmax-lr0.05-cpu" in per_epoch
