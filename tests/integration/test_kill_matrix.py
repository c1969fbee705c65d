"""kill -9 of the orchestrator in each phase of a run, on a local and an ssh machine: after
``orchestrate down`` nothing of the run is left running, no finished result is lost, and
``--resume`` completes (issue #14; the aws leg is the lead's, on the instance emulator).

Phases: a machine just journalled; a ``setup:`` command running; trainers running; a trainer
finished but its results not yet fetched (the orchestrator is frozen with SIGSTOP until the
trainer writes its exit code, then killed); one task done and another running.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli import last_json, orchestrate, start_and_wait
from tests.fakes import FAKE_TRAINERS
from tests.procs import live_group_members
from tests.sshd import SshdServer

pytestmark = [pytest.mark.slow]

PHASES = ("acquired", "setup", "running", "finished-unfetched", "one-done")
QUERIES = {
    "acquired": "SELECT run_id FROM machines",
    "setup": "SELECT run_id FROM events WHERE kind='setup'",
    "running": "SELECT run_id FROM tasks WHERE status='running' AND job IS NOT NULL",
    "finished-unfetched": "SELECT run_id FROM tasks WHERE task_id LIKE 'short%' "
    "AND status='running' AND job IS NOT NULL",
    "one-done": "SELECT t.run_id FROM tasks t JOIN tasks u ON t.run_id=u.run_id "
    "WHERE t.status='done' AND u.status='running'",
}


def experiment(phase: str, tmp_path: Path, server: SshdServer | None) -> dict[str, Any]:
    jobs: list[dict[str, Any]] = [
        {"name": "short", "run": "python t.py 1"},
        {"name": "long", "run": "python t.py 8"},
    ]
    if phase == "setup":  # held until the test opens the gate (for --resume)
        jobs[0]["setup"] = f"test -e {tmp_path / 'go'} || sleep 60"
    exp: dict[str, Any] = {"name": "kill", "workdir": "work", "jobs": jobs}
    if server is not None:
        exp["provider"] = "ssh"
        exp["hosts"] = [
            {
                "name": "box",
                "host": server.host,
                "port": server.port,
                "user": server.user,
                "key": server.key_path,
                "host_key": server.host_key,
                "python": sys.executable,
                "workspace_root": str(tmp_path / "remote"),
                "slots": 2,
            }
        ]
    return exp


TRAINER = """\
import os, sys, time, json
out = os.environ["ORCHESTRATE_OUT"]
steps = 0 if os.path.exists({go!r}) else int(sys.argv[1])  # the gate open: finish at once
with open(os.path.join(out, "timing.jsonl"), "a") as log:
    for i in range(steps):
        time.sleep(0.5)
        log.write(json.dumps({"event": "epoch", "epoch": i + 1}) + "\\n")
        log.flush()
with open(os.path.join(out, "metrics.json"), "w") as f:
    json.dump({"steps": steps}, f)
"""


def _journal(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{tmp_path / 'state' / 'journal.sqlite'}?mode=ro", uri=True)


def _jobs(tmp_path: Path) -> list[dict[str, Any]]:
    """Every detached job the journal knows of (tasks and setup commands)."""
    conn = _journal(tmp_path)
    rows = [json.loads(j) for (j,) in conn.execute("SELECT job FROM tasks WHERE job IS NOT NULL")]
    rows += [
        json.loads(p) for (p,) in conn.execute("SELECT payload FROM events WHERE kind='setup'")
    ]
    conn.close()
    return rows


def _ours(tmp_path: Path) -> list[str]:
    """Live processes that belong to the run: any journalled job's group, or any process whose
    command line names the test's directory (sshd itself excepted)."""
    found: list[str] = []
    for job in _jobs(tmp_path):
        found += [f"job group {job['pid']}: {p}" for p in live_group_members(int(job["pid"]))]
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if str(tmp_path) in cmd and "sshd" not in cmd and state not in ("Z", "X"):
            found.append(f"{entry.name}: {cmd[:200]}")
    return found


def _settled(tmp_path: Path, timeout_s: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while (left := _ours(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def _finished_jobs(tmp_path: Path) -> set[str]:
    """Task ids whose trainer wrote exit code 0 (what must not be lost)."""
    conn = _journal(tmp_path)
    done = set()
    for task_id, job in conn.execute("SELECT task_id, job FROM tasks WHERE job IS NOT NULL"):
        code = Path(json.loads(job)["job_dir"]) / "exit_code"
        if code.exists() and code.read_text().strip() == "0":
            done.add(task_id)
    conn.close()
    return done


def _kill_in(phase: str, proc: subprocess.Popen[str], tmp_path: Path) -> None:
    if phase != "finished-unfetched":
        proc.send_signal(signal.SIGKILL)
        return
    proc.send_signal(signal.SIGSTOP)  # frozen: the trainer finishes, nothing fetches it
    deadline = time.monotonic() + 30
    while "short-cpu" not in _finished_jobs(tmp_path):
        assert time.monotonic() < deadline, "the short trainer never finished"
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)


@pytest.mark.sshd
@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("where", ["local", "ssh"])
def test_kill_9_then_down_then_resume(
    phase: str,
    where: str,
    tmp_path: Path,
    sshd_fleet: Callable[[int], list[SshdServer]],
) -> None:
    server = sshd_fleet(1)[0] if where == "ssh" else None
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "t.py").write_text(TRAINER.replace("{go!r}", repr(str(tmp_path / "go"))))
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(experiment(phase, tmp_path, server)))
    env = dict(
        os.environ,
        ORCHESTRATE_STATE_DIR=str(tmp_path / "state"),
        ORCHESTRATE_TRAINERS_SRC=str(FAKE_TRAINERS),
        ORCHESTRATE_LOCAL_GPUS="0",
    )
    proc, (run_id,) = start_and_wait(
        "exp.yaml",
        env,
        tmp_path,
        journal_query=QUERIES[phase],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _kill_in(phase, proc, tmp_path)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    finished = _finished_jobs(tmp_path)

    down = orchestrate(["down", str(run_id), "--json", "--wait", "30"], env, tmp_path)
    assert down.returncode == 0, down.stderr
    assert _settled(tmp_path) == [], down.stdout
    conn = _journal(tmp_path)
    statuses = dict(conn.execute("SELECT task_id, status FROM tasks WHERE run_id=?", (run_id,)))
    conn.close()
    for task_id in finished:  # a finished trainer's results survive the crash
        assert statuses[task_id] == "done", (task_id, statuses, down.stdout)
        assert (tmp_path / "runs" / str(run_id) / task_id / "metrics.json").is_file()

    (tmp_path / "go").touch()  # the resumed setup and tasks finish at once
    resumed = orchestrate(["run", "exp.yaml", "--resume", str(run_id), "--json"], env, tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert last_json(resumed)["counts"] == {"done": 2}
    assert _settled(tmp_path) == []
