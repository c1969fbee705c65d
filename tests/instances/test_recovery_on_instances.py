"""Spot recovery on emulated EC2 instances (issue #16), through the CLI against moto's server.

1. A spot interruption notice, served by a fake instance metadata service on loopback, reaches
   the task wrapper on a really booted spot instance mid-training; the task checkpoints and
   stops, the instance is terminated, a new spot instance is launched, and training resumes
   there from the checkpoint that came back (no epoch repeated beyond one).
2. An instance lost without notice (its container killed): the attempt is ``lost``, at most
   one checkpoint interval of work is redone on a new instance.

The trainer is a plain script (the baked test image has no TensorFlow) with the contract a
user's script gets: ``$ORCHESTRATE_CHECKPOINT_DIR`` comes back and follows it, and SIGTERM
means "checkpoint and stop". Marked ``instance`` and ``slow``.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli import orchestrate
from tests.imds import FakeImds
from tests.instances.emulator import InstanceEmulator
from tests.instances.fixtures import ec2_client

pytestmark = [pytest.mark.moto_server, pytest.mark.instance, pytest.mark.slow]

EPOCHS = 8
TRAINER = """
import json, os, signal, socket, sys, time
ck, out = os.environ["ORCHESTRATE_CHECKPOINT_DIR"], os.environ["ORCHESTRATE_OUT"]
os.makedirs(ck, exist_ok=True)
path = os.path.join(ck, "state.json")
state = json.load(open(path)) if os.path.exists(path) else {"epoch": 0, "hosts": []}
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
while state["epoch"] < EPOCHS:
    time.sleep(EPOCH_S)
    state["epoch"] += 1
    state["hosts"].append(socket.gethostname())
    with open(path + ".tmp", "w") as fh:
        json.dump(state, fh)
    os.replace(path + ".tmp", path)
    print(f"epoch {state['epoch']}", flush=True)
    if stop:
        sys.exit(75)
json.dump(state, open(os.path.join(out, "result.json"), "w"))
"""


def _experiment(tmp_path: Path, epoch_s: float, every_min: float) -> None:
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "train.py").write_text(
        TRAINER.replace("EPOCHS", str(EPOCHS)).replace("EPOCH_S", str(epoch_s))
    )
    exp = {
        "name": "spot-recovery",
        "provider": "aws",
        "region": "us-east-1",
        "ssh_cidr": "127.0.0.1/32",
        "budget": {"max_usd": 5, "max_hours": 1},
        "recovery": {"capacity": "spot", "retries": 2, "checkpoint_every_minutes": every_min},
        "machines": {"cpu": {"instance_type": "c6i.xlarge", "ami": "ubuntu24-cpu", "spot": True}},
        "workdir": "project",
        "jobs": [{"name": "train", "run": "python train.py"}],
    }
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(exp))


def _epochs_streamed(tmp_path: Path) -> int:
    logs = list((tmp_path / "runs").glob("*/train-cpu/task.log"))
    text = logs[0].read_text(errors="replace") if logs else ""
    return sum(1 for ln in text.splitlines() if ln.startswith("epoch "))


def _first_instance(emulator: InstanceEmulator) -> str:
    booted = [e.instance_id for e in emulator.events if e.what == "booted"]
    return booted[0]


def _result(proc: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(proc.stdout.splitlines()[-1])
    (task,) = summary["tasks"]
    result = json.loads((Path(summary["run_dir"]) / task["task_id"] / "result.json").read_text())
    return summary, result


def _nothing_left(env: dict[str, str]) -> None:
    ec2 = ec2_client(env)
    states = [
        i["State"]["Name"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
    ]
    assert states and set(states) <= {"terminated", "shutting-down"}, states


def test_a_spot_notice_moves_the_task_to_a_new_instance_from_its_checkpoint(
    tmp_path: Path, aws_env: dict[str, str], instance_emulator: InstanceEmulator
) -> None:
    instance_emulator.register_public_images()
    instance_emulator.register_baked("ubuntu24-cpu")
    _experiment(tmp_path, epoch_s=1.0, every_min=5)
    with FakeImds() as imds:
        env = {**aws_env, "ORCHESTRATE_IMDS_URL": imds.url, "ORCHESTRATE_IMDS_POLL_S": "0.3"}

        def notice_then_clear() -> None:
            deadline = time.monotonic() + 400
            while _epochs_streamed(tmp_path) < 3 and time.monotonic() < deadline:
                time.sleep(0.2)
            imds.notice_spot(action="terminate", in_s=120)
            while time.monotonic() < deadline:  # the notice is for the first instance only
                if list((tmp_path / "runs").glob("*/train-cpu/attempt-1.preempted.json")):
                    imds.clear()
                    return
                time.sleep(0.1)

        threading.Thread(target=notice_then_clear, daemon=True).start()
        proc = orchestrate(["run", "exp.yaml", "--json"], env, tmp_path, timeout=600)
    summary, result = _result(proc)
    assert summary["counts"] == {"done": 1}, summary
    attempts = summary["tasks"][0]["attempts"]
    assert [a["status"] for a in attempts] == ["preempted", "done"], attempts
    assert "spot interruption notice (terminate at" in attempts[0]["detail"]
    assert attempts[0]["instance_id"] != attempts[1]["instance_id"]
    booted = [e.instance_id for e in instance_emulator.events if e.what == "booted"]
    assert len(booted) == 2, booted
    first, second = booted
    hosts = result["hosts"]
    assert len(hosts) == EPOCHS  # each epoch once in the final history ...
    moved = hosts.index(second)
    assert moved >= 3 and set(hosts[:moved]) == {first} and set(hosts[moved:]) == {second}
    # ... and the first instance ran at most one epoch past the checkpoint that came back.
    streamed = (Path(summary["run_dir"]) / "train-cpu" / "task.log").read_text()
    assert streamed.count("epoch ") <= EPOCHS + 1
    _nothing_left(env)


def test_an_instance_lost_without_notice_redoes_at_most_one_interval(
    tmp_path: Path, aws_env: dict[str, str], instance_emulator: InstanceEmulator
) -> None:
    instance_emulator.register_public_images()
    instance_emulator.register_baked("ubuntu24-cpu")
    # Checkpoints come back every 1.2 s; an epoch takes 1 s.
    _experiment(tmp_path, epoch_s=1.0, every_min=0.02)

    def kill_first() -> None:
        deadline = time.monotonic() + 400
        while _epochs_streamed(tmp_path) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        container = instance_emulator.containers[_first_instance(instance_emulator)]
        assert container.proc is not None
        # Power cut: the container's PID 1 killed takes every process of the machine with it
        # (its sshd and the trainer), with no notice and no shutdown.
        children = Path(f"/proc/{container.proc.pid}/task/{container.proc.pid}/children")
        os.kill(int(children.read_text().split()[0]), signal.SIGKILL)

    threading.Thread(target=kill_first, daemon=True).start()
    proc = orchestrate(["run", "exp.yaml", "--json"], aws_env, tmp_path, timeout=600)
    summary, result = _result(proc)
    assert summary["counts"] == {"done": 1}, summary
    attempts = summary["tasks"][0]["attempts"]
    assert [a["status"] for a in attempts] == ["lost", "done"], attempts
    assert "stopped answering" in attempts[0]["detail"]
    hosts = result["hosts"]
    first = hosts[0]
    done_first = hosts.count(first)
    # 4 or more epochs ran there; the checkpoint that came back held at least 4 - 2 of them.
    assert done_first >= 2 and len(hosts) == EPOCHS
    _nothing_left(aws_env)
