"""A ``nodes: 2`` task on two emulated EC2 instances (issue 19): the class is launched twice,
each worker is given the cluster, and worker 1 reaches worker 0 at the address and port the
cluster names, as TensorFlow's or torchrun's rendezvous would. Marked ``instance`` and
``slow``; the workers are a plain socket script (the baked test image has no TensorFlow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.cli import orchestrate
from tests.instances.emulator import InstanceEmulator

pytestmark = [pytest.mark.moto_server, pytest.mark.instance, pytest.mark.slow]

RENDEZVOUS = """
import os, socket, time
rank = int(os.environ["ORCHESTRATE_NODE_RANK"])
host, port = os.environ["ORCHESTRATE_NODE_ADDRS"].split(",")[0].rsplit(":", 1)
out = os.environ["ORCHESTRATE_OUT"]
if rank == 0:
    server = socket.create_server(("", int(port)))
    server.settimeout(120)
    conn, _ = server.accept()
    with open(os.path.join(out, "heard.txt"), "w") as fh:
        fh.write(conn.recv(200).decode())
else:
    for _ in range(200):
        try:
            conn = socket.create_connection((host, int(port)), timeout=2)
            break
        except OSError:
            time.sleep(0.3)
    conn.sendall(f"rank {rank} of {os.environ['ORCHESTRATE_NUM_NODES']}".encode())
"""


def test_a_gang_spans_two_instances_that_reach_each_other(
    tmp_path: Path, aws_env: dict[str, str], instance_emulator: InstanceEmulator
) -> None:
    instance_emulator.register_public_images()
    instance_emulator.register_baked("ubuntu24-cpu")
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "rendezvous.py").write_text(RENDEZVOUS)
    exp = {
        "name": "gang-instances",
        "provider": "aws",
        "region": "us-east-1",
        "ssh_cidr": "127.0.0.1/32",
        "budget": {"max_usd": 5, "max_hours": 1},
        "machines": {"cpu": {"instance_type": "c6i.xlarge", "ami": "ubuntu24-cpu"}},
        "workdir": "project",
        "jobs": [{"name": "meet", "run": "python rendezvous.py", "nodes": 2}],
    }
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(exp))
    proc = orchestrate(["run", "exp.yaml", "--json"], aws_env, tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["counts"] == {"done": 1}, summary
    (task,) = summary["tasks"]
    heard = Path(summary["run_dir"]) / task["task_id"] / "heard.txt"
    assert heard.read_text() == "rank 1 of 2"
    booted = {e.instance_id for e in instance_emulator.events if e.what == "booted"}
    assert len(booted) == 2  # cpu and cpu-2: one instance per worker
