"""A run whose orchestrator is alive: ``--resume`` is refused naming its pid, and ``down``
asks it to stop and waits while it cleans up (issue #14)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli import last_json, orchestrate, start_and_wait
from tests.fakes import FAKE_TRAINERS
from tests.procs import live_group_members

EXP = (
    "name: live\njobs:\n  - trainer: mnist\n    optimizer: [sgd, adam, momentum]\n    epochs: 20\n"
)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "exp.yaml").write_text(EXP)
    return dict(
        os.environ,
        ORCHESTRATE_TRAINERS_SRC=str(FAKE_TRAINERS),
        ORCHESTRATE_STATE_DIR=str(tmp_path / "state"),
        ORCHESTRATE_LOCAL_GPUS="0",
        FAKE_EPOCH_S="1.0",
    )


def test_resume_of_a_live_run_is_refused_and_down_stops_it(
    tmp_path: Path, env: dict[str, str]
) -> None:
    proc, (run_id, job) = start_and_wait(
        "exp.yaml",
        env,
        tmp_path,
        journal_query="SELECT run_id, job FROM tasks WHERE status='running' AND job IS NOT NULL",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        again = orchestrate(["run", "exp.yaml", "--resume", run_id], env, tmp_path, timeout=60)
        assert again.returncode == 2
        assert f"pid {proc.pid} on " in again.stderr and "orchestrate down" in again.stderr

        down = orchestrate(["down", run_id, "--json"], env, tmp_path, timeout=120)
        assert down.returncode == 0, down.stderr
        receipt = json.loads(down.stdout)
        assert "asked the live orchestrator" in receipt["actions"][0]
        # The orchestrator itself stopped, fetched and released before down went on.
        assert proc.wait(timeout=30) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert live_group_members(json.loads(job)["pid"]) == []
    started = [p for p in (tmp_path / "runs" / run_id).iterdir() if (p / "task.log").exists()]
    # Each task takes 20 s: those running when down came were stopped, no further one began.
    assert 1 <= len(started) < 3, started

    env["FAKE_EPOCH_S"] = "0.01"
    resumed = orchestrate(["run", "exp.yaml", "--resume", run_id, "--json"], env, tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert last_json(resumed)["counts"] == {"done": 3}


def test_ctrl_c_during_setup_stops_it_at_once(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "work").mkdir()
    (tmp_path / "exp.yaml").write_text(
        "name: setup\nworkdir: work\njobs:\n  - run: 'true'\n    setup: sleep 120\n"
    )
    proc, (payload,) = start_and_wait(
        "exp.yaml",
        env,
        tmp_path,
        journal_query="SELECT payload FROM events WHERE kind='setup'",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert time.monotonic() - t0 < 30  # not the setup's 120 s, nor its 3600 s timeout
    assert live_group_members(json.loads(payload)["pid"]) == []
