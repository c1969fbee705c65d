"""``orchestrate attach RUN`` after a ``kill -9`` of the orchestrator, on a local and an ssh
machine (issue #16): the run finishes with every task's results, trainers that were running
are followed where they are (same process, epochs not repeated), nothing is left running;
``attach`` refuses a run that ended and one whose orchestrator is alive; ``run --resume``
reattaches too.

Phases (as in the kill matrix): a machine just journalled; a ``setup:`` command running;
trainers running; a trainer finished but its results not fetched; one task done and another
running.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli import last_json, orchestrate, start_and_wait
from tests.fakes import FAKE_TRAINERS
from tests.integration.test_kill_matrix import (
    PHASES,
    QUERIES,
    TRAINER,
    _journal,
    _kill_in,
    _settled,
    experiment,
)
from tests.sshd import SshdServer

pytestmark = [pytest.mark.slow]

BOTH_RUNNING = (
    "SELECT run_id FROM tasks WHERE status='running' AND job IS NOT NULL GROUP BY run_id "
    "HAVING COUNT(*) = 2"
)
STARTED = ("running", "finished-unfetched", "one-done")  # a trainer ran before the crash


def _setup(tmp_path: Path, server: SshdServer | None, phase: str) -> dict[str, str]:
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "t.py").write_text(TRAINER.replace("{go!r}", repr(str(tmp_path / "go"))))
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(experiment(phase, tmp_path, server)))
    return dict(
        os.environ,
        ORCHESTRATE_STATE_DIR=str(tmp_path / "state"),
        ORCHESTRATE_TRAINERS_SRC=str(FAKE_TRAINERS),
        ORCHESTRATE_LOCAL_GPUS="0",
    )


def _crash(phase: str, env: dict[str, str], tmp_path: Path) -> str:
    """Start the run and kill -9 its orchestrator in ``phase``; returns the run id."""
    proc, (run_id,) = start_and_wait(
        "exp.yaml",
        env,
        tmp_path,
        journal_query=QUERIES.get(phase, BOTH_RUNNING),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _kill_in(phase, proc, tmp_path)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    return str(run_id)


def _pids(tmp_path: Path, run_id: str) -> dict[str, int]:
    conn = _journal(tmp_path)
    rows = conn.execute("SELECT task_id, job FROM tasks WHERE run_id=? AND job!=''", (run_id,))
    pids = {task_id: int(json.loads(job)["pid"]) for task_id, job in rows}
    conn.close()
    return pids


def _epochs(tmp_path: Path, run_id: str, task_id: str) -> list[int]:
    timing = tmp_path / "runs" / run_id / task_id / "timing.jsonl"
    rows = [json.loads(line) for line in timing.read_text().splitlines() if line.strip()]
    return [r["epoch"] for r in rows if r.get("event") == "epoch"]


def _finished_whole(
    proc: subprocess.CompletedProcess[str], tmp_path: Path, run_id: str
) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = last_json(proc)
    assert summary["run_id"] == run_id and summary["counts"] == {"done": 2}, summary
    for task_id in ("short-cpu", "long-cpu"):
        assert (tmp_path / "runs" / run_id / task_id / "metrics.json").is_file(), task_id
    assert summary["report"], "the report is written as for any run"
    assert _settled(tmp_path) == []
    conn = _journal(tmp_path)
    (status,) = conn.execute("SELECT status FROM runs WHERE id=?", (run_id,)).fetchone()
    held = conn.execute(
        "SELECT COUNT(*) FROM machines WHERE run_id=? AND status IN ('requested','running')",
        (run_id,),
    ).fetchone()[0]
    conn.close()
    assert (status, held) == ("done", 0)
    return dict(summary)


@pytest.mark.sshd
@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("where", ["local", "ssh"])
def test_attach_after_kill_9_finishes_the_run(
    phase: str,
    where: str,
    tmp_path: Path,
    sshd_fleet: Callable[[int], list[SshdServer]],
) -> None:
    server = sshd_fleet(1)[0] if where == "ssh" else None
    env = _setup(tmp_path, server, phase)
    run_id = _crash(phase, env, tmp_path)
    before = _pids(tmp_path, run_id)
    if phase == "setup":
        (tmp_path / "go").touch()  # the setup, started again, passes at once

    attached = orchestrate(["attach", run_id, "--json"], env, tmp_path, timeout=120)
    _finished_whole(attached, tmp_path, run_id)
    after = _pids(tmp_path, run_id)
    if phase in STARTED:
        assert before, "the crash came after a trainer started"
    for task_id, pid in before.items():  # followed where it ran: the same process ...
        assert after[task_id] == pid, task_id
        epochs = _epochs(tmp_path, run_id, task_id)
        steps = 1 if task_id.startswith("short") else 8  # ... each epoch once
        if phase == "setup":  # a trainer that had not looked at the gate yet does 0 steps
            steps = len(epochs)
        assert epochs == list(range(1, steps + 1)), task_id
    again = orchestrate(["attach", run_id], env, tmp_path)
    assert again.returncode == 2 and "has ended (done)" in again.stderr, again.stderr
    assert "Traceback" not in again.stderr


@pytest.mark.sshd
def test_resume_reattaches_and_runs_only_what_is_gone(
    tmp_path: Path, sshd_fleet: Callable[[int], list[SshdServer]]
) -> None:
    env = _setup(tmp_path, sshd_fleet(1)[0], "running")  # two slots: both trainers start
    run_id = _crash("both-running", env, tmp_path)
    before = _pids(tmp_path, run_id)
    os.killpg(before["long-cpu"], 9)  # this trainer is really gone: it must run again
    listed = orchestrate(["status"], env, tmp_path)
    assert "orchestrator gone" in listed.stdout and "attach RUN" in listed.stdout, listed.stdout
    resumed = orchestrate(["run", "exp.yaml", "--resume", run_id, "--json"], env, tmp_path)
    _finished_whole(resumed, tmp_path, run_id)
    after = _pids(tmp_path, run_id)
    assert after["short-cpu"] == before["short-cpu"]  # adopted (running or finished)
    assert _epochs(tmp_path, run_id, "short-cpu") == [1]
    assert after["long-cpu"] != before["long-cpu"]  # run again


def test_attach_refuses_a_live_run_and_an_unknown_one(tmp_path: Path) -> None:
    env = _setup(tmp_path, None, "running")
    proc, (run_id,) = start_and_wait(
        "exp.yaml",
        env,
        tmp_path,
        journal_query=QUERIES["running"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        live = orchestrate(["attach", str(run_id)], env, tmp_path)
        assert live.returncode == 2, live.stderr
        assert f"pid {proc.pid}" in live.stderr and "nothing to attach" in live.stderr
        assert "Traceback" not in live.stderr
        assert proc.poll() is None  # the live run is left alone
        (row,) = json.loads(orchestrate(["status", "--json"], env, tmp_path).stdout)
        assert row["orchestrator_alive"] is True
    finally:
        proc.kill()
        proc.wait(timeout=10)
    down = orchestrate(["down", str(run_id)], env, tmp_path)
    assert down.returncode == 0, down.stderr
    unknown = orchestrate(["attach", "no-such-run"], env, tmp_path)
    assert unknown.returncode == 2 and "no run 'no-such-run'" in unknown.stderr
    (row,) = json.loads(orchestrate(["status", "--json"], env, tmp_path).stdout)
    assert row["orchestrator_alive"] is None  # ended: no orchestrator to speak of
    after_down = orchestrate(["attach", str(run_id)], env, tmp_path)
    assert after_down.returncode == 2 and "has ended (down)" in after_down.stderr


@pytest.mark.sshd
def test_attach_to_a_host_that_is_gone_fails_its_tasks_not_the_truth(
    tmp_path: Path, sshd_fleet: Callable[[int], list[SshdServer]]
) -> None:
    """The host went away with the orchestrator: attach cannot follow the trainers there, so
    their tasks fail saying so (never a run marked done with tasks still running)."""
    server = sshd_fleet(1)[0]
    env = _setup(tmp_path, server, "running")
    exp = yaml.safe_load((tmp_path / "exp.yaml").read_text())
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump({**exp, "connect_deadline_s": 3}))
    run_id = _crash("running", env, tmp_path)
    started = _pids(tmp_path, run_id)
    server.stop()
    try:
        attached = orchestrate(["attach", run_id, "--json"], env, tmp_path, timeout=120)
        assert attached.returncode not in (0, 70), attached.stderr[-2000:]
        conn = _journal(tmp_path)
        rows = dict(conn.execute("SELECT task_id, status FROM tasks WHERE run_id=?", (run_id,)))
        (status,) = conn.execute("SELECT status FROM runs WHERE id=?", (run_id,)).fetchone()
        conn.close()
        assert status == "failed", (status, rows)
        for task_id in started:
            assert rows[task_id] == "failed", rows
        assert "not followed" in attached.stdout
    finally:
        for pid in started.values():  # the trainers outlived their host's sshd
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, 9)
