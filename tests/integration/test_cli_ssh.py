"""``provider: ssh`` end to end through the CLI, against real sshd servers on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.cli import orchestrate, start_and_wait
from tests.fakes import FAKE_TRAINERS
from tests.mnist_data import MNIST_DIR, needs_mnist
from tests.sshd import SshdServer

pytestmark = pytest.mark.sshd

ROOT = Path(__file__).resolve().parents[2]


def _hosts(servers: list[SshdServer], tmp_path: Path, *, slots: int = 1) -> list[dict[str, object]]:
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
            "slots": slots,
        }
        for i, s in enumerate(servers)
    ]


def test_tasks_spread_over_two_hosts_and_come_back(
    tmp_path: Path, sshd_fleet: Callable[[int], list[SshdServer]]
) -> None:
    servers = sshd_fleet(2)
    exp = {
        "name": "fleet",
        "provider": "ssh",
        "hosts": _hosts(servers, tmp_path),
        "jobs": [
            {
                "trainer": "mnist",
                "optimizer": ["sgd", "adam", "momentum", "rmsprop"],
                "device": ["cpu", "gpu"],
                "epochs": 2,
            }
        ],
    }
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(exp))
    # The first task waits for a second one to start: with one slot per host that one runs on
    # the other host, however long that host takes to come up (without it, under load, the
    # faster host had run all four). Settings ride with the shipped code: SSH tasks do not
    # get this process's environment.
    trainers = tmp_path / "src" / "trainers"
    shutil.copytree(FAKE_TRAINERS, trainers)
    settings = {"FAKE_EPOCH_S": "0.2", "FAKE_MEET_DIR": str(tmp_path / "meet"), "FAKE_MEET_N": "2"}
    (trainers / "fake_env.json").write_text(json.dumps(settings))
    env = dict(
        os.environ,
        ORCHESTRATE_TRAINERS_SRC=str(trainers),
        ORCHESTRATE_STATE_DIR=str(tmp_path / "state"),
    )
    proc = orchestrate(["run", "exp.yaml", "--json"], env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["counts"] == {"done": 4, "skipped": 4}
    machines = {t["machine"] for t in summary["tasks"] if t["status"] == "done"}
    assert machines == {"box0", "box1"}  # both hosts worked
    assert len(list((tmp_path / "meet").iterdir())) == 4  # every task signed in
    skipped = [t for t in summary["tasks"] if t["status"] == "skipped"]
    assert all("has no GPU" in t["detail"] for t in skipped)
    run = Path(summary["run_dir"])
    for t in summary["tasks"]:
        if t["status"] == "done":
            assert (run / t["task_id"] / "timing.jsonl").is_file()
            assert "epoch 2/2" in (run / t["task_id"] / "task.log").read_text()


def test_a_host_that_never_answers_fails_its_tasks_and_the_other_carries_on(
    tmp_path: Path, sshd_fleet: Callable[[int], list[SshdServer]]
) -> None:
    good, bad = sshd_fleet(2)
    bad.stop()
    hosts = _hosts([good, bad], tmp_path, slots=1)
    exp = {
        "name": "halfdown",
        "provider": "ssh",
        "hosts": hosts,
        "connect_deadline_s": 5,
        "jobs": [{"trainer": "pca", "framework": ["tensorflow", "theano"]}],
    }
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(exp))
    env = dict(
        os.environ,
        ORCHESTRATE_TRAINERS_SRC=str(FAKE_TRAINERS),
        ORCHESTRATE_STATE_DIR=str(tmp_path / "state"),
    )
    proc = orchestrate(["run", "exp.yaml", "--json"], env, tmp_path, timeout=300)
    summary = json.loads(proc.stdout.splitlines()[-1])
    # Work-sharing: the live host takes every task the dead one never could.
    assert summary["counts"] == {"done": 2}, summary
    assert {t["machine"] for t in summary["tasks"]} <= {"box0", "box1"}
    events = [json.loads(line) for line in proc.stdout.splitlines()[:-1]]
    failed = [e for e in events if e.get("kind") == "machine" and e["state"] == "failed"]
    assert failed and failed[0]["machine"] == "box1"


def test_own_script_matrix_over_two_hosts(
    tmp_path: Path, sshd_fleet: Callable[[int], list[SshdServer]]
) -> None:
    servers = sshd_fleet(2)
    project = tmp_path / "project"
    shutil.copytree(
        ROOT / "examples" / "own-script",
        project,
        ignore=shutil.ignore_patterns("checkpoints", "__pycache__"),
    )
    exp = yaml.safe_load((project / "experiment.yaml").read_text())
    exp.update(provider="ssh", hosts=_hosts(servers, tmp_path))
    (project / "experiment.yaml").write_text(yaml.safe_dump(exp))
    env = dict(os.environ, ORCHESTRATE_STATE_DIR=str(tmp_path / "state"))
    env.pop("ORCHESTRATE_TRAINERS_SRC", None)
    proc = orchestrate(["run", str(project / "experiment.yaml"), "--json"], env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["counts"] == {"done": 4}
    run = Path(summary["run_dir"])
    for t in summary["tasks"]:
        assert list((run / t["task_id"] / "outputs" / "checkpoints").glob("*.npz"))
        assert json.loads((run / t["task_id"] / "metrics.json").read_text())["test_error"] < 0.75


@pytest.mark.slow
@needs_mnist
def test_quickstart_over_two_ssh_hosts(
    tmp_path: Path, sshd_fleet: Callable[[int], list[SshdServer]]
) -> None:
    servers = sshd_fleet(2)
    exp = yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text())
    exp.update(provider="ssh", hosts=_hosts(servers, tmp_path), data_dir=str(MNIST_DIR))
    for job in exp["jobs"]:
        job["subset"] = 10000  # keep CI short; the full set runs in the trainers' slow test
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(exp))
    env = dict(os.environ, ORCHESTRATE_STATE_DIR=str(tmp_path / "state"))
    env.pop("ORCHESTRATE_TRAINERS_SRC", None)
    proc = orchestrate(["run", "exp.yaml", "--json"], env, tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.splitlines()[-1])
    done = [t for t in summary["tasks"] if t["status"] == "done"]
    assert {t["machine"] for t in done} == {"box0", "box1"}
    assert len(done) == len([t for t in summary["tasks"] if t["status"] != "skipped"])
    for t in done:
        if t["task_id"].startswith("mnist"):
            assert t["test_error"] is not None and t["test_error"] < 0.2
        manifest = json.loads(
            (Path(summary["run_dir"]) / t["task_id"] / "manifest.json").read_text()
        )
        assert manifest.get("device_used") == "cpu"


def test_down_after_a_crash_stops_the_trainer_left_on_the_host(
    tmp_path: Path, sshd_fleet: Callable[[int], list[SshdServer]]
) -> None:
    import signal

    from tests.procs import live_group_members

    (server,) = sshd_fleet(1)
    (tmp_path / "project").mkdir()
    exp = {
        "name": "crashy",
        "provider": "ssh",
        "hosts": _hosts([server], tmp_path),
        "workdir": "project",
        "jobs": [{"name": "sleepy", "run": "sleep 120"}],
    }
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(exp))
    env = dict(os.environ, ORCHESTRATE_STATE_DIR=str(tmp_path / "state"))
    proc, row = start_and_wait(
        "exp.yaml",
        env,
        tmp_path,
        journal_query="SELECT run_id, job FROM tasks WHERE status='running' AND job IS NOT NULL",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    run_id, pid = row[0], json.loads(row[1])["pid"]
    proc.kill()
    proc.wait(timeout=10)
    try:
        assert live_group_members(pid), "the remote trainer outlives the orchestrator"
        down = orchestrate(["down", run_id, "--json"], env, tmp_path)
        assert down.returncode == 0, down.stderr
        assert any(
            "stopped task sleepy-cpu on box0" in a for a in json.loads(down.stdout)["actions"]
        )
        assert live_group_members(pid) == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
