"""``python: auto`` on an ssh host: a venv in its workspace, made once, runs the trainers."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from infra.ssh_python import venv_script
from tests.cli import orchestrate
from tests.fakes import FAKE_TRAINERS
from tests.sshd import SshdServer


def test_the_script_installs_once_per_package_list() -> None:
    script = venv_script("/w/venv", ["numpy>=1.26", "pytensor"])
    assert "python3 -m venv --system-site-packages /w/venv" in script
    assert "pip install -q --disable-pip-version-check 'numpy>=1.26' pytensor" in script
    assert script.splitlines()[-1] == "cd /w/venv && pwd"
    assert venv_script("/w/venv", ["numpy"]) != venv_script("/w/venv", ["scipy"])  # marker


@pytest.mark.sshd
def test_python_auto_makes_a_venv_and_runs_there(
    tmp_path: Path, sshd_fleet: Callable[[int], list[SshdServer]]
) -> None:
    if not Path("/usr/bin/python3").exists():
        pytest.skip("the host has no /usr/bin/python3 to make the venv from")
    (server,) = sshd_fleet(1)
    root = tmp_path / "remote"
    exp = {
        "name": "auto",
        "provider": "ssh",
        "hosts": [
            {
                "name": "box",
                "host": server.host,
                "port": server.port,
                "user": server.user,
                "key": server.key_path,
                "host_key": server.host_key,
                "python": "auto",
                "workspace_root": str(root),
            }
        ],
        "jobs": [{"trainer": "pca", "framework": ["tensorflow", "theano"]}],
    }
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(exp))
    env = dict(
        os.environ,
        ORCHESTRATE_TRAINERS_SRC=str(FAKE_TRAINERS),
        ORCHESTRATE_STATE_DIR=str(tmp_path / "state"),
        ORCHESTRATE_AUTO_PACKAGES="",  # nothing to download: the fake trainers need only stdlib
    )
    for _ in range(2):  # the second run finds the venv made
        proc = orchestrate(["run", "exp.yaml", "--json"], env, tmp_path, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        summary = json.loads(proc.stdout.splitlines()[-1])
        assert summary["counts"] == {"done": 2}
    venv_python = root / "venv" / "bin" / "python"
    assert venv_python.exists() and (root / "venv" / ".orchestrate-packages").exists()
    events = [json.loads(line) for line in proc.stdout.splitlines()[:-1]]
    assert not [e for e in events if e.get("kind") == "task" and e["state"] == "failed"]
