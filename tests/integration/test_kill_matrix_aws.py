"""The kill -9 matrix's AWS leg (issue #14): moto's server, every instance a booted machine
(the instance emulator), its image already baked so no setup runs.

Phases, chosen where an EC2 run differs from a local one (each costs two boots, ~10-20 s
each): the instance launched and still booting (acquire has not returned, so the journal has
no instance id yet: only the run's tags find it); trainers running on it; a trainer finished
on it but its results not fetched (the orchestrator frozen until the instance shows the exit
code, then killed). After ``orchestrate down``: no instance of the run pending or running in
moto, its container powered off, finished results kept; then ``--resume`` completes on a new
instance, which is gone too afterwards.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli import last_json, orchestrate, start_and_wait
from tests.instances.emulator import InstanceEmulator
from tests.instances.fixtures import ec2_client
from tests.integration.test_kill_matrix import TRAINER

pytestmark = [pytest.mark.moto_server, pytest.mark.instance, pytest.mark.slow]

REGION = "us-east-1"
PHASES = ("booting", "running", "finished-unfetched")
QUERIES = {
    "booting": "SELECT run_id FROM machines",  # then: wait for the instance in moto
    "running": "SELECT run_id FROM tasks WHERE status='running' AND job IS NOT NULL",
    "finished-unfetched": "SELECT run_id FROM tasks WHERE task_id LIKE 'short%' "
    "AND status='running' AND job IS NOT NULL",
}


def _live(env: dict[str, str], run_id: str) -> list[str]:
    """The run's instances moto shows pending or running."""
    tag = [{"Name": "tag:orchestrate:run", "Values": [run_id]}]
    return [
        i["InstanceId"]
        for r in ec2_client(env).describe_instances(Filters=tag)["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] in ("pending", "running")
    ]


def _journal_rows(tmp_path: Path, query: str, *args: Any) -> list[Any]:
    import sqlite3

    db = tmp_path / "state" / "journal.sqlite"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(query, args).fetchall()
    finally:
        conn.close()


def _finished_on_instance(tmp_path: Path, emulator: InstanceEmulator) -> set[str]:
    """Task ids whose trainer wrote exit code 0 on its instance (what must not be lost)."""
    done = set()
    for task_id, job in _journal_rows(tmp_path, "SELECT task_id, job FROM tasks WHERE job!=''"):
        info = json.loads(job)
        iid = info["machine_id"]
        if iid not in emulator.containers or not emulator.containers[iid].running:
            continue
        code = emulator.run(iid, f"cat {info['job_dir']}/exit_code 2>/dev/null").stdout
        if code.strip() == "0":
            done.add(task_id)
    return done


def _experiment(tmp_path: Path) -> Path:
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "t.py").write_text(TRAINER.replace("{go!r}", repr(str(tmp_path / "go"))))
    exp = {
        "name": "kill-aws",
        "provider": "aws",
        "region": REGION,
        "ssh_cidr": "127.0.0.1/32",
        "budget": {"max_usd": 5, "max_hours": 1},
        "machines": {"cpu": {"instance_type": "c6i.xlarge", "ami": "ubuntu24-cpu"}},
        "workdir": "work",
        "jobs": [
            {"name": "short", "run": "python t.py 1"},
            {"name": "long", "run": "python t.py 8"},
        ],
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(exp))
    return path


def _kill_in(
    phase: str,
    proc: subprocess.Popen[str],
    run_id: str,
    tmp_path: Path,
    env: dict[str, str],
    emulator: InstanceEmulator,
) -> None:
    deadline = time.monotonic() + 120
    if phase == "booting":  # launched in moto, acquire still waiting for SSH
        while not _live(env, run_id):
            assert time.monotonic() < deadline, "no instance was launched"
            time.sleep(0.1)
        assert _journal_rows(tmp_path, "SELECT machine_id FROM machines") == [(None,)]
    elif phase == "finished-unfetched":
        proc.send_signal(signal.SIGSTOP)  # frozen: the trainer finishes, nothing fetches it
        while "short-cpu" not in _finished_on_instance(tmp_path, emulator):
            assert time.monotonic() < deadline, "the short trainer never finished"
            time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)


def _all_powered_off(emulator: InstanceEmulator) -> None:
    booted = {e.instance_id for e in emulator.events if e.what == "booted"}
    for iid in booted:
        emulator.wait_for(iid, "powered off", timeout_s=60)
    assert not any(c.running for c in emulator.containers.values())


def _crash_in(
    phase: str, tmp_path: Path, aws_env: dict[str, str], emulator: InstanceEmulator
) -> tuple[Path, str]:
    """Start the experiment from a baked image and kill -9 its orchestrator in ``phase``;
    returns the experiment file and the run id."""
    emulator.register_public_images()
    emulator.register_baked("ubuntu24-cpu")
    spec = _experiment(tmp_path)
    proc, (run_id,) = start_and_wait(
        str(spec),
        aws_env,
        tmp_path,
        journal_query=QUERIES[phase],
        timeout=180,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _kill_in(phase, proc, str(run_id), tmp_path, aws_env, emulator)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    return spec, str(run_id)


@pytest.mark.parametrize("phase", PHASES)
def test_kill_9_on_aws_then_down_then_resume(
    phase: str, tmp_path: Path, aws_env: dict[str, str], instance_emulator: InstanceEmulator
) -> None:
    spec, run_id = _crash_in(phase, tmp_path, aws_env, instance_emulator)
    finished = _finished_on_instance(tmp_path, instance_emulator)
    assert _live(aws_env, str(run_id)), "the crash should have left the instance running"

    down = orchestrate(["down", str(run_id), "--json"], aws_env, tmp_path, timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    assert _live(aws_env, str(run_id)) == []
    _all_powered_off(instance_emulator)
    statuses = dict(
        _journal_rows(tmp_path, "SELECT task_id, status FROM tasks WHERE run_id=?", run_id)
    )
    for task_id in finished:  # a finished trainer's results survive the crash
        assert statuses[task_id] == "done", (task_id, statuses, down.stdout)
        assert (tmp_path / "runs" / str(run_id) / task_id / "metrics.json").is_file()
    if phase == "finished-unfetched":
        assert finished == {"short-cpu"}

    resumed = orchestrate(
        ["run", str(spec), "--resume", str(run_id), "--json"], aws_env, tmp_path, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert last_json(resumed)["counts"] == {"done": 2}
    assert _live(aws_env, str(run_id)) == []
    _all_powered_off(instance_emulator)
    assert not instance_emulator.errors


@pytest.mark.parametrize("phase", ["booting", "running"])
def test_attach_after_kill_9_on_aws_finishes_on_the_same_instance(
    phase: str, tmp_path: Path, aws_env: dict[str, str], instance_emulator: InstanceEmulator
) -> None:
    """Issue #16's AWS leg: ``attach`` finds the instance the dead orchestrator launched (by
    its token), follows the trainer running there, runs the rest, and tears it all down."""
    spec, run_id = _crash_in(phase, tmp_path, aws_env, instance_emulator)
    (iid,) = _live(aws_env, str(run_id))
    jobs = dict(_journal_rows(tmp_path, "SELECT task_id, job FROM tasks WHERE job!=''"))

    attached = orchestrate(["attach", str(run_id), "--json"], aws_env, tmp_path, timeout=400)
    assert attached.returncode == 0, attached.stdout[-3000:] + attached.stderr[-3000:]
    assert last_json(attached)["counts"] == {"done": 2}
    for task_id in ("short-cpu", "long-cpu"):
        assert (tmp_path / "runs" / str(run_id) / task_id / "metrics.json").is_file()
    after = dict(_journal_rows(tmp_path, "SELECT task_id, job FROM tasks WHERE job!=''"))
    for task_id, job in jobs.items():  # followed, not started again
        assert json.loads(after[task_id])["pid"] == json.loads(job)["pid"], task_id
    booted = [e.instance_id for e in instance_emulator.events if e.what == "booted"]
    assert booted == [iid]  # the same machine: no second launch
    assert _live(aws_env, str(run_id)) == []
    _all_powered_off(instance_emulator)
    assert not instance_emulator.errors
