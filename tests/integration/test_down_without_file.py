"""``down`` and ``gc`` from the journal alone: the experiment file deleted after a crash
(issue 15, point 3). The run's row keeps its provider config (``infra.registry``), so the
provider is rebuilt without the file: local and ssh through the CLI with a real trainer and a
real sshd, aws in process on moto in a region that is not the default."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.state import Journal
from tests.cli import orchestrate, start_and_wait
from tests.fakes import FAKE_TRAINERS
from tests.procs import live_group_members
from tests.sshd import SshdServer

RUNNING = "SELECT run_id, job FROM tasks WHERE status='running' AND job IS NOT NULL"


def _crash_then_delete(tmp_path: Path, env: dict[str, str], exp: dict[str, Any]) -> tuple[str, int]:
    """Start ``exp``, kill the orchestrator once a task runs, delete the file; (run, pid)."""
    spec = tmp_path / "exp.yaml"
    spec.write_text(yaml.safe_dump(exp))
    proc, row = start_and_wait(
        "exp.yaml",
        env,
        tmp_path,
        journal_query=RUNNING,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    proc.kill()  # no finally, no teardown
    proc.wait(timeout=10)
    spec.unlink()  # deleted (a moved file reads the same: the path no longer holds it)
    return str(row[0]), int(json.loads(row[1])["pid"])


def _down_and_gc(tmp_path: Path, env: dict[str, str], run_id: str, pid: int) -> dict[str, Any]:
    assert live_group_members(pid), "the trainer outlives the orchestrator"
    down = orchestrate(["down", run_id, "--json"], env, tmp_path)
    assert down.returncode == 0, down.stderr
    receipt: dict[str, Any] = json.loads(down.stdout)
    assert live_group_members(pid) == []
    journal = Journal.in_dir(tmp_path / "state")
    assert journal.run(run_id).status == "down"  # type: ignore[union-attr]
    assert {m.status for m in journal.machines(run_id)} == {"released"}
    # No AWS run in the journal: gc has no region to sweep and says so, asking nothing of AWS.
    gc = orchestrate(["gc"], env, tmp_path)
    assert gc.returncode == 0, gc.stderr
    assert "no AWS run in the journal" in gc.stdout
    return receipt


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    yield dict(
        clean,
        ORCHESTRATE_STATE_DIR=str(tmp_path / "state"),
        ORCHESTRATE_TRAINERS_SRC=str(FAKE_TRAINERS),
        ORCHESTRATE_LOCAL_GPUS="0",
        FAKE_EPOCH_S="30",
    )


def test_local_run_is_downed_with_its_file_deleted(tmp_path: Path, env: dict[str, str]) -> None:
    exp = {"name": "gone", "jobs": [{"trainer": "mnist", "optimizer": ["sgd"], "epochs": 3}]}
    run_id, pid = _crash_then_delete(tmp_path, env, exp)
    try:
        # `ssh` too reaches the run's machine from the journal alone: here, its workspace.
        shell = orchestrate(["ssh", run_id, "local", "--", "pwd"], env, tmp_path)
        assert shell.returncode == 0, shell.stderr
        assert shell.stdout.strip() == str((tmp_path / "state" / "workspaces" / run_id).resolve())
        receipt = _down_and_gc(tmp_path, env, run_id, pid)
        assert any("stopped task" in a for a in receipt["actions"])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


@pytest.mark.sshd
def test_ssh_run_is_downed_with_its_file_deleted(
    tmp_path: Path, env: dict[str, str], sshd_fleet: Callable[[int], list[SshdServer]]
) -> None:
    (server,) = sshd_fleet(1)
    (tmp_path / "project").mkdir()
    exp = {
        "name": "gone",
        "provider": "ssh",
        "hosts": [
            {
                "name": "box0",
                "host": server.host,
                "port": server.port,
                "user": server.user,
                "key": server.key_path,
                "host_key": server.host_key,
                "python": sys.executable,
                "workspace_root": str(tmp_path / "remote0"),
            }
        ],
        "workdir": "project",
        "jobs": [{"name": "sleepy", "run": "sleep 120"}],
    }
    run_id, pid = _crash_then_delete(tmp_path, env, exp)
    try:
        receipt = _down_and_gc(tmp_path, env, run_id, pid)
        assert any("stopped task sleepy-cpu on box0" in a for a in receipt["actions"])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


REGION = "eu-west-1"  # not the default region: gc must learn it from the journal


OWNER = "team-gone"  # gc sweeps only this owner's resources


def _tagged(run_id: str) -> list[dict[str, Any]]:
    return [
        {"Key": "orchestrate:run", "Value": run_id},
        {"Key": "orchestrate:owner", "Value": OWNER},
    ]


def _launch(ec2: Any, run_id: str) -> str:
    image = ec2.describe_images(Owners=["099720109477"])["Images"][0]["ImageId"]
    spec = [{"ResourceType": "instance", "Tags": _tagged(run_id)}]
    out = ec2.run_instances(
        ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.medium", TagSpecifications=spec
    )
    return str(out["Instances"][0]["InstanceId"])


def _live(ec2: Any) -> list[str]:
    states = ["pending", "running", "stopping", "stopped"]
    pages = ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": states}])[
        "Reservations"
    ]
    return [i["InstanceId"] for r in pages for i in r["Instances"]]


def test_aws_run_is_downed_and_swept_from_the_journal_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    from infra.registry import AwsConfig, config_to_json
    from orchestrator.cli import main

    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # the run's region must win
    monkeypatch.setenv("ORCHESTRATE_OWNER", OWNER)
    state = tmp_path / "state"
    with moto.mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        run_id = "gone-aws-1"
        instance = _launch(ec2, run_id)
        group = ec2.create_security_group(
            GroupName=f"orchestrate-{run_id}",
            Description="test",
            TagSpecifications=[{"ResourceType": "security-group", "Tags": _tagged(run_id)}],
        )["GroupId"]
        ec2.create_key_pair(
            KeyName=f"orchestrate-{run_id}",
            TagSpecifications=[{"ResourceType": "key-pair", "Tags": _tagged(run_id)}],
        )
        orphan = _launch(ec2, "crashed-elsewhere-1")  # no journal row: gc's to remove
        journal = Journal.in_dir(state)
        config = AwsConfig(state_dir=str(state / "aws"), region=REGION, ssh_cidr="10.0.0.1/32")
        journal.create_run(
            run_id,
            name="gone-aws",
            spec_path=str(tmp_path / "deleted.yaml"),  # never written: the file is gone
            provider="aws",
            runs_dir=str(tmp_path / "runs"),
            provider_config=config_to_json(config),
        )
        token = journal.machine_requested(run_id, "cpu", "aws")
        journal.machine_acquired(token, instance, instance_type="t3.medium", hourly_usd=0.04)

        assert main(["down", run_id, "--state-dir", str(state)]) == 0
        assert instance not in _live(ec2)
        assert (
            ec2.describe_key_pairs(Filters=[{"Name": "tag:orchestrate:run", "Values": [run_id]}])[
                "KeyPairs"
            ]
            == []
        )
        groups = ec2.describe_security_groups()["SecurityGroups"]
        assert group not in {g["GroupId"] for g in groups}
        assert orphan in _live(ec2)

        assert main(["gc", "--state-dir", str(state)]) == 0  # no --region: the journal's
        assert _live(ec2) == []
