"""Machines that cannot be reached: exit 4 as documented; a trainer orphaned by a long outage
is stopped by ``down`` once its host is back (issue #14)."""

from __future__ import annotations

import json
import os
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
from tests.sshd import SshdServer, free_port, keygen

pytestmark = pytest.mark.sshd


def host(server: SshdServer, tmp_path: Path, **over: Any) -> dict[str, Any]:
    entry = {
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "key": server.key_path,
        "host_key": server.host_key,
        "python": sys.executable,
        "workspace_root": str(tmp_path / "remote"),
    }
    return {**entry, **over}


def run_exp(tmp_path: Path, hosts: list[dict[str, Any]], **extra: Any) -> dict[str, str]:
    exp = {
        "name": "reach",
        "provider": "ssh",
        "connect_deadline_s": 1,
        "hosts": hosts,
        "jobs": [{"trainer": "mnist", "epochs": 1}],
        **extra,
    }
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(exp))
    return dict(
        os.environ,
        ORCHESTRATE_TRAINERS_SRC=str(FAKE_TRAINERS),
        ORCHESTRATE_STATE_DIR=str(tmp_path / "state"),
        FAKE_EPOCH_S="0",
    )


def test_an_unreachable_host_is_exit_4(
    tmp_path: Path, sshd_fleet: Callable[[int], list[SshdServer]]
) -> None:
    server = sshd_fleet(1)[0]
    env = run_exp(tmp_path, [host(server, tmp_path, port=free_port())])
    t0 = time.monotonic()
    proc = orchestrate(["run", "exp.yaml", "--json"], env, tmp_path, timeout=120)
    assert proc.returncode == 4, proc.stderr
    assert time.monotonic() - t0 < 60
    summary = last_json(proc)
    assert summary["status"] == "failed"
    assert "could not connect" in json.dumps(summary)


def test_a_refused_host_key_is_exit_4(
    tmp_path: Path, sshd_fleet: Callable[[int], list[SshdServer]]
) -> None:
    server = sshd_fleet(1)[0]
    wrong = keygen(tmp_path / "other_host_key", comment="impostor")
    env = run_exp(tmp_path, [host(server, tmp_path, host_key=wrong)])
    proc = orchestrate(["run", "exp.yaml", "--json"], env, tmp_path, timeout=120)
    assert proc.returncode == 4, proc.stderr
    assert "not the pinned one" in json.dumps(last_json(proc))


@pytest.mark.slow
def test_a_trainer_orphaned_by_an_outage_is_stopped_by_down(
    tmp_path: Path, sshd_fleet: Callable[[int], list[SshdServer]]
) -> None:
    server = sshd_fleet(1)[0]
    env = run_exp(tmp_path, [host(server, tmp_path)])
    exp = yaml.safe_load((tmp_path / "exp.yaml").read_text())
    # The remote trainer's environment is the ssh session's: a plain long command, not FAKE_*.
    exp.update(workdir="work", jobs=[{"name": "long", "run": "sleep 120"}])
    (tmp_path / "work").mkdir()
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(exp))
    proc, (run_id, job) = start_and_wait(
        "exp.yaml",
        env,
        tmp_path,
        journal_query="SELECT run_id, job FROM tasks WHERE status='running' AND job IS NOT NULL",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pid = json.loads(job)["pid"]
    try:
        server.stop()  # an outage longer than connect_deadline_s
        assert proc.wait(timeout=90) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert live_group_members(pid), "the trainer runs on, detached, through the outage"
    server.start()
    down = orchestrate(["down", str(run_id), "--json"], env, tmp_path, timeout=120)
    assert down.returncode == 0, down.stderr
    deadline = time.monotonic() + 10
    while live_group_members(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert live_group_members(pid) == [], down.stdout
