"""``nodes: 2`` through the real CLI on ``provider: local``: two real TensorFlow workers on
127.0.0.1 (gang placement, issue 19)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli import orchestrate, start_and_wait
from tests.fakes import FAKE_TRAINERS
from tests.mnist_data import MNIST_DIR, needs_mnist
from tests.procs import alive, live_group_members
from trainers.timing import read_timing

TASK = "mnist-tensorflow-momentum-cpu"


def _env(tmp_path: Path, slots: int = 2) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("ORCHESTRATE_TRAINERS_SRC", None)  # the real trainers
    env.update(
        ORCHESTRATE_STATE_DIR=str(tmp_path / "state"),
        ORCHESTRATE_LOCAL_GPUS="0",
        ORCHESTRATE_LOCAL_SLOTS=str(slots),
        COLUMNS="200",
    )
    return env


def _spec(tmp_path: Path, **job: object) -> None:
    spec = {
        "name": "gang",
        "data_dir": str(MNIST_DIR),
        "jobs": [
            {"trainer": "mnist", "optimizer": "momentum", "epochs": 1, "hidden": 32,
             "batch_size": 100, "subset": 2000, "seed": 3, "nodes": 2, **job}
        ],
    }  # fmt: skip
    (tmp_path / "exp.yaml").write_text(json.dumps(spec))


@needs_mnist
@pytest.mark.slow
def test_two_local_workers_train_one_task(tmp_path: Path) -> None:
    _spec(tmp_path)
    proc = orchestrate(["run", "exp.yaml"], _env(tmp_path), tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run,) = (tmp_path / "runs").iterdir()
    task = run / TASK
    assert "epoch 1/1" in (task / "task.log").read_text()  # worker 0's log is the task's
    manifest = json.loads((task / "manifest.json").read_text())
    assert manifest["workers"] == 2 and manifest["worker_index"] == 0
    assert manifest["worker_hosts"] == ["127.0.0.1", "127.0.0.1"]
    other = task / "workers" / "1"
    assert json.loads((other / "manifest.json").read_text())["worker_index"] == 1
    rows = read_timing(other / "timing.jsonl")  # every worker's timing is kept
    assert [r["event"] for r in rows if r["event"] in ("start", "end")] == ["start", "end"]
    assert json.loads((run / "summary.json").read_text())["counts"] == {"done": 1}


def test_plan_shows_a_gang_and_its_width(tmp_path: Path) -> None:
    _spec(tmp_path)
    env = _env(tmp_path)
    text = orchestrate(["plan", "exp.yaml"], env, tmp_path, timeout=120)
    assert text.returncode == 0, text.stderr
    assert "2 nodes at once of: local" in text.stdout
    as_json = orchestrate(["plan", "exp.yaml", "--json"], env, tmp_path, timeout=120)
    (task,) = json.loads(as_json.stdout)["tasks"]
    assert task["nodes"] == 2 and task["machines"] == ["local"]


def test_a_gang_wider_than_the_slots_fails_at_once(tmp_path: Path) -> None:
    _spec(tmp_path, nodes=3)
    proc = orchestrate(["run", "exp.yaml"], _env(tmp_path, slots=2), tmp_path, timeout=120)
    assert proc.returncode != 0
    assert "nodes: 3 but 2 slots fit it" in proc.stdout + proc.stderr


def _workers_alive(task: str) -> list[int]:
    """Pids of trainer processes of ``task`` (any worker) still running."""
    pids = []
    for cmd in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmd.read_bytes().split(b"\0")
        except OSError:
            continue
        mine = b"trainers.mnist" in argv and any(task.encode() in a for a in argv)
        if mine and alive(int(cmd.parent.name)):
            pids.append(int(cmd.parent.name))
    return pids


@needs_mnist
@pytest.mark.slow
def test_a_worker_killed_mid_run_fails_the_task_everywhere_and_resume_completes(
    tmp_path: Path,
) -> None:
    _spec(tmp_path, epochs=400, subset=6000)
    env = _env(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run", "exp.yaml", "--json"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        victim: list[int] = []
        while time.monotonic() < deadline and not victim:
            time.sleep(0.2)
            logs = list((tmp_path / "state").rglob(f"{TASK}.worker1/timing.jsonl"))
            if logs and any(r["event"] == "epoch" for r in read_timing(logs[0])):
                victim = _workers_alive(f"{TASK}.worker1")
        assert victim, "worker 1 never trained an epoch"
        for pid in victim:
            os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0, out[-2000:] + err[-2000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["counts"] == {"failed": 1}, summary
    assert "worker 1" in out, out[-2000:]
    assert _workers_alive(TASK) == [], "a worker was left running"

    # The chief checkpointed each epoch: a resumed run asking one epoch more finishes from it.
    (run,) = (tmp_path / "runs").iterdir()
    done = max(
        r["epoch"] for r in read_timing(run / TASK / "timing.jsonl") if r["event"] == "epoch"
    )
    _spec(tmp_path, epochs=done + 1, subset=6000)
    resumed = orchestrate(["run", "exp.yaml", "--resume", run.name, "--json"], env, tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    starts = [r for r in read_timing(run / TASK / "timing.jsonl") if r["event"] == "start"]
    assert starts[-1]["resumed_from_epoch"] >= done and starts[-1]["workers"] == 2


def _gang_pids(tmp_path: Path) -> list[int]:
    """The process groups of every gang worker the journal holds (setsid: pid = pgid)."""
    db = sqlite3.connect(tmp_path / "state" / "journal.sqlite")
    rows = db.execute("SELECT payload FROM events WHERE kind='worker'").fetchall()
    return [int(json.loads(payload)["pid"]) for (payload,) in rows]


@pytest.mark.parametrize("then", ["down", "resume"])
def test_after_the_orchestrator_dies_down_or_resume_leaves_no_worker_behind(
    tmp_path: Path, then: str
) -> None:
    """kill -9 of the orchestrator leaves both workers running (they are detached); ``down``
    stops them all, and a resume stops them and runs the gang again to the end."""
    (tmp_path / "exp.yaml").write_text(
        "name: gang\njobs:\n  - trainer: mnist\n    optimizer: sgd\n    epochs: 6\n    nodes: 2\n"
    )
    env = {**_env(tmp_path), "ORCHESTRATE_TRAINERS_SRC": str(FAKE_TRAINERS), "FAKE_EPOCH_S": "3"}
    proc, _ = start_and_wait(
        "exp.yaml",
        env,
        tmp_path,
        journal_query="SELECT count(*) FROM events WHERE kind='worker' HAVING count(*) = 2",
        timeout=60,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    proc.kill()
    proc.wait(timeout=10)
    pids = _gang_pids(tmp_path)
    assert len(pids) == 2 and all(live_group_members(p) for p in pids)
    (run_id,) = {r[0] for r in sqlite3.connect(tmp_path / "state" / "journal.sqlite").execute(
        "SELECT id FROM runs")}  # fmt: skip
    if then == "down":
        done = orchestrate(["down", run_id], env, tmp_path, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    else:
        env["FAKE_EPOCH_S"] = "0"
        done = orchestrate(["run", "exp.yaml", "--resume", run_id, "--json"], env, tmp_path)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert json.loads(done.stdout.strip().splitlines()[-1])["counts"] == {"done": 1}
    deadline = time.monotonic() + 15
    while any(live_group_members(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(live_group_members(p) for p in pids), "a worker of the dead run still runs"
