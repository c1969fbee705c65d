"""The local end-to-end path through the real CLI, with the stand-in trainers (fast)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli import orchestrate, start_and_wait
from tests.fakes import FAKE_TRAINERS
from tests.procs import live_group_members

EXP = """
name: quick
jobs:
  - trainer: mnist
    framework: [tensorflow, theano]
    optimizer: [sgd, adam]
    device: [cpu, gpu]
    epochs: 3
  - trainer: pca
    components: 4
"""


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ORCHESTRATE_TRAINERS_SRC=str(FAKE_TRAINERS),
        ORCHESTRATE_STATE_DIR=str(tmp_path / "state"),
        ORCHESTRATE_LOCAL_GPUS="0",
        FAKE_EPOCH_S="0.05",
        COLUMNS="200",
    )
    (tmp_path / "exp.yaml").write_text(EXP)
    return env


def _journal(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "state" / "journal.sqlite")


def test_run_writes_results_journal_and_summary(tmp_path: Path, cli_env: dict[str, str]) -> None:
    proc = orchestrate(["run", "exp.yaml"], cli_env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1
    run = runs[0]
    for task in ("mnist-tensorflow-sgd-cpu", "mnist-theano-adam-cpu", "pca-tensorflow-cpu"):
        for name in ("timing.jsonl", "metrics.json", "manifest.json", "task.log"):
            assert (run / task / name).is_file(), (task, name)
    assert "epoch 3/3" in (run / "mnist-tensorflow-sgd-cpu" / "task.log").read_text()
    assert not (run / "mnist-tensorflow-sgd-gpu").exists()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["counts"] == {"done": 5, "skipped": 4}
    assert "mnist-tensorflow-sgd-gpu" in proc.stdout and "skipped" in proc.stdout
    rows = _journal(tmp_path).execute("SELECT status, released_at FROM machines").fetchall()
    assert rows and all(status == "released" and t for status, t in rows)

    status = orchestrate(["status", "--json"], cli_env, tmp_path)
    assert json.loads(status.stdout)[0]["status"] == "done"
    logs = orchestrate(["logs", run.name, "pca-tensorflow-cpu"], cli_env, tmp_path)
    assert "epoch 2/2" in logs.stdout


def test_json_mode_emits_events_and_a_summary(tmp_path: Path, cli_env: dict[str, str]) -> None:
    proc = orchestrate(["run", "exp.yaml", "--json"], cli_env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    kinds = {e.get("kind") or e.get("event") for e in events}
    assert {"run_started", "task", "machine", "run_ended", "summary"} <= kinds
    assert events[-1]["counts"]["done"] == 5


def test_failed_task_gives_exit_1_and_the_rest_run(tmp_path: Path, cli_env: dict[str, str]) -> None:
    cli_env["FAKE_FAIL_TASKS"] = "mnist-theano-sgd-cpu"
    proc = orchestrate(["run", "exp.yaml", "--json"], cli_env, tmp_path)
    assert proc.returncode == 1
    summary = json.loads(proc.stdout.splitlines()[-1])
    by_id = {t["task_id"]: t for t in summary["tasks"]}
    assert by_id["mnist-theano-sgd-cpu"]["status"] == "failed"
    assert "planted failure" in by_id["mnist-theano-sgd-cpu"]["detail"]
    assert summary["counts"]["done"] == 4


def test_broken_file_exits_2_and_launches_nothing(tmp_path: Path, cli_env: dict[str, str]) -> None:
    broken = Path(__file__).resolve().parents[1] / "data" / "experiments" / "broken.yaml"
    proc = orchestrate(["run", str(broken)], cli_env, tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("broken.yaml:") == 6
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "state" / "workspaces").exists()


def test_plan_is_side_effect_free_and_has_json(tmp_path: Path, cli_env: dict[str, str]) -> None:
    proc = orchestrate(["plan", "exp.yaml", "--json"], cli_env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert len(plan["tasks"]) == 9
    assert sum(t["status"] == "skipped" for t in plan["tasks"]) == 4
    assert not (tmp_path / "runs").exists()
    dry = orchestrate(["run", "exp.yaml", "--dry-run"], cli_env, tmp_path)
    assert dry.returncode == 0 and "5 of 9 tasks would run" in dry.stdout
    assert not (tmp_path / "runs").exists()


def _start_and_wait_for_a_task(
    tmp_path: Path, env: dict[str, str], **popen: Any
) -> tuple[subprocess.Popen[str], str, dict[str, Any]]:
    """``orchestrate run`` in the background; returns once the journal shows a running task."""
    proc, (run_id, job) = start_and_wait(
        "exp.yaml",
        env,
        tmp_path,
        journal_query="SELECT run_id, job FROM tasks WHERE status='running' AND job IS NOT NULL",
        **popen,
    )
    return proc, str(run_id), json.loads(job)


def test_sigint_stops_children_and_resume_completes(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    cli_env["FAKE_EPOCH_S"] = "1.0"
    proc, _, job = _start_and_wait_for_a_task(
        tmp_path, cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    time.sleep(1.2)  # let it finish an epoch, so there is a partial log to keep
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "--resume" in err
    assert live_group_members(job["pid"]) == []
    conn = _journal(tmp_path)
    run_id, status = conn.execute("SELECT id, status FROM runs").fetchone()
    assert status == "interrupted"
    assert {s for (s,) in conn.execute("SELECT status FROM machines")} == {"released"}
    stopped = conn.execute("SELECT task_id FROM tasks WHERE status='stopped'").fetchone()[0]
    partial = tmp_path / "runs" / run_id / stopped / "timing.jsonl"
    assert partial.exists() and '"epoch": 1' in partial.read_text()

    cli_env["FAKE_EPOCH_S"] = "0.01"
    resumed = orchestrate(["run", "exp.yaml", "--resume", run_id, "--json"], cli_env, tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout.splitlines()[-1])
    assert summary["status"] == "done"
    assert summary["counts"] == {"done": 5, "skipped": 4}


def test_resume_of_unknown_run_is_exit_2(tmp_path: Path, cli_env: dict[str, str]) -> None:
    proc = orchestrate(["run", "exp.yaml", "--resume", "nope"], cli_env, tmp_path)
    assert proc.returncode == 2
    assert "no run 'nope'" in proc.stderr


def test_down_after_a_crash_stops_the_detached_trainer_and_releases(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    cli_env["FAKE_EPOCH_S"] = "2.0"
    proc, run_id, job = _start_and_wait_for_a_task(
        tmp_path, cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    proc.kill()  # the orchestrator dies without any cleanup (a crash, an OOM kill)
    proc.wait(timeout=10)
    assert live_group_members(job["pid"]), "the trainer runs detached and outlives the crash"
    down = orchestrate(["down", run_id, "--json"], cli_env, tmp_path)
    assert down.returncode == 0, down.stderr
    receipt = json.loads(down.stdout)
    assert any("stopped task" in a for a in receipt["actions"])
    assert any("released machine local" in a for a in receipt["actions"])
    assert live_group_members(job["pid"]) == []
    conn = _journal(tmp_path)
    assert conn.execute("SELECT status FROM runs").fetchone()[0] == "down"
    assert {s for (s,) in conn.execute("SELECT status FROM machines")} == {"released"}
    again = orchestrate(["down", run_id, "--json"], cli_env, tmp_path)  # idempotent
    assert again.returncode == 0 and json.loads(again.stdout)["actions"] == []


def test_logs_follow_streams_until_the_run_ends(tmp_path: Path, cli_env: dict[str, str]) -> None:
    cli_env["FAKE_EPOCH_S"] = "0.3"
    proc, run_id, _ = _start_and_wait_for_a_task(
        tmp_path, cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    follow = orchestrate(["logs", run_id, "-f"], cli_env, tmp_path, timeout=120)
    assert proc.wait(timeout=60) == 0
    assert follow.returncode == 0
    lines = follow.stdout.splitlines()
    # every task's lines, prefixed with its id, through to the last epoch of the last task
    assert "mnist-tensorflow-sgd-cpu | epoch 3/3 loss 0.333" in lines
    assert "pca-tensorflow-cpu | epoch 2/2 loss 0.500" in lines


def test_local_flag_runs_an_aws_file_here_for_free(tmp_path: Path, cli_env: dict[str, str]) -> None:
    aws = Path(__file__).resolve().parents[2] / "examples" / "aws-cpu-vs-gpu.yaml"
    for key in [k for k in cli_env if k.startswith("AWS_")]:
        del cli_env[key]  # no credentials: nothing may reach AWS
    text = aws.read_text().replace("epochs: 10", "epochs: 1")
    (tmp_path / "aws.yaml").write_text(text)
    proc = orchestrate(["run", "aws.yaml", "--local", "--json"], cli_env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["counts"] == {"done": 14, "skipped": 14}
    assert {t["machine"] for t in summary["tasks"] if t["status"] == "done"} == {"local"}
    row = _journal(tmp_path).execute("SELECT provider FROM runs").fetchone()
    assert row == ("local",)
