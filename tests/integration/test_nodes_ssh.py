"""``nodes: 2`` over two real sshd hosts on 127.0.0.1 (gang placement, issue 19): the built-in
trainer as two TensorFlow workers, and an own ``run:`` script that is given the same cluster
variables (what torchrun, Horovod or JAX distributed would read)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.cli import orchestrate
from tests.mnist_data import MNIST_DIR, needs_mnist
from tests.sshd import SshdServer

pytestmark = pytest.mark.sshd


def _hosts(servers: list[SshdServer], tmp_path: Path) -> list[dict[str, object]]:
    return [
        {
            "name": f"box{i}",
            "host": s.host,
            "port": s.port,
            "user": s.user,
            "key": s.key_path,
            "host_key": s.host_key,
            "python": sys.executable,
            "workspace_root": str(tmp_path / f"remote{i}"),
        }
        for i, s in enumerate(servers)
    ]


def _run(tmp_path: Path, exp: dict[str, object]) -> dict[str, object]:
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(exp))
    env = dict(os.environ, ORCHESTRATE_STATE_DIR=str(tmp_path / "state"))
    env.pop("ORCHESTRATE_TRAINERS_SRC", None)
    proc = orchestrate(["run", "exp.yaml", "--json"], env, tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary: dict[str, object] = json.loads(proc.stdout.splitlines()[-1])
    return summary


@pytest.mark.slow
@needs_mnist
def test_two_ssh_hosts_train_one_task_as_two_workers(
    tmp_path: Path, sshd_fleet: Callable[[int], list[SshdServer]]
) -> None:
    job = {"trainer": "mnist", "optimizer": "momentum", "epochs": 1, "hidden": 32,
           "batch_size": 100, "subset": 2000, "nodes": 2}  # fmt: skip
    exp = {"name": "gang-ssh", "provider": "ssh", "data_dir": str(MNIST_DIR), "jobs": [job]}
    summary = _run(tmp_path, {**exp, "hosts": _hosts(sshd_fleet(2), tmp_path)})
    assert summary["counts"] == {"done": 1}
    task = Path(str(summary["run_dir"])) / "mnist-tensorflow-momentum-cpu"
    manifest = json.loads((task / "manifest.json").read_text())
    assert manifest["workers"] == 2 and manifest["worker_index"] == 0
    other = json.loads((task / "workers" / "1" / "manifest.json").read_text())
    assert other["worker_index"] == 1
    # One worker per host: each host's workspace holds exactly one of them.
    remote = [list((tmp_path / f"remote{i}").rglob("manifest.json")) for i in range(2)]
    assert sorted(len(found) for found in remote) == [1, 1], remote


def test_an_own_script_gang_gets_the_cluster_variables(
    tmp_path: Path, sshd_fleet: Callable[[int], list[SshdServer]]
) -> None:
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "README").write_text("nothing to ship but this\n")
    names = "^(TF_CONFIG|ORCHESTRATE_NODE_|ORCHESTRATE_NUM_NODES)"
    dump = f'env | grep -E "{names}" > "$ORCHESTRATE_OUT/env.txt"'
    exp = {
        "name": "gang-script",
        "provider": "ssh",
        "workdir": "project",
        "hosts": _hosts(sshd_fleet(2), tmp_path),
        "jobs": [{"name": "dump", "run": dump, "nodes": 2}],
    }
    summary = _run(tmp_path, exp)
    assert summary["counts"] == {"done": 1}, summary
    tasks = summary["tasks"]
    assert isinstance(tasks, list)
    task = Path(str(summary["run_dir"])) / tasks[0]["task_id"]
    envs = []
    for where in (task, task / "workers" / "1"):
        lines = (where / "env.txt").read_text().splitlines()
        envs.append(dict(line.split("=", 1) for line in lines))
    addrs = envs[0]["ORCHESTRATE_NODE_ADDRS"].split(",")
    assert len(addrs) == 2 and len(set(addrs)) == 2  # two workers, two ports
    for rank, env in enumerate(envs):
        assert env["ORCHESTRATE_NODE_RANK"] == str(rank)
        assert env["ORCHESTRATE_NUM_NODES"] == "2"
        assert env["ORCHESTRATE_NODE_ADDRS"] == ",".join(addrs)
        tf_config = json.loads(env["TF_CONFIG"])
        assert tf_config == {
            "cluster": {"worker": addrs},
            "task": {"type": "worker", "index": rank},
        }
