"""What happens *on* an instance, on really booted machines (the instance emulator).

Each test drives the real CLI against moto's server; the emulator boots a container for every
instance launched, with its real user-data. Marked ``instance`` and ``slow``.
"""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tests.cli import orchestrate, start_and_wait
from tests.instances.emulator import InstanceEmulator
from tests.instances.fixtures import ec2_client

pytestmark = [pytest.mark.moto_server, pytest.mark.instance, pytest.mark.slow]

REGION = "us-east-1"


def _state(env: dict[str, str], iid: str) -> str:
    inst = ec2_client(env).describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    return str(inst["State"]["Name"])


def _experiment(tmp_path: Path, machines: dict[str, object], jobs: list[object], **top: object):
    (tmp_path / "project").mkdir(exist_ok=True)
    exp = {
        "name": "on-instances",
        "provider": "aws",
        "region": REGION,
        "ssh_cidr": "127.0.0.1/32",
        "budget": {"max_usd": 5, "max_hours": 2},
        "machines": machines,
        "workdir": "project",
        "jobs": jobs,
        **top,
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(exp))
    return path


def test_the_deadline_powers_the_instance_off_after_the_orchestrator_dies(
    tmp_path: Path, aws_env: dict[str, str], instance_emulator: InstanceEmulator
) -> None:
    instance_emulator.register_public_images()
    instance_emulator.register_baked("ubuntu24-cpu")
    spec = _experiment(
        tmp_path,
        {"cpu": {"instance_type": "c6i.xlarge", "ami": "ubuntu24-cpu"}},
        [{"name": "long", "run": "sleep 3600"}],
        budget={"max_usd": 5, "max_hours": 0.03},  # 108 s: boot, readiness and the task fit
    )
    proc, (run_id,) = start_and_wait(
        str(spec),
        aws_env,
        tmp_path,
        journal_query="SELECT run_id FROM tasks WHERE status='running'",
        timeout=150,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    proc.kill()  # the laptop dies: nobody will release this machine
    proc.wait(timeout=10)
    (iid,) = [e.instance_id for e in instance_emulator.events if e.what == "booted"]
    timers = instance_emulator.run(iid, "systemctl list-timers --all --no-pager").stdout
    assert "orchestrate-deadline.timer" in timers, timers
    text = instance_emulator.run(iid, "cat /etc/orchestrate/deadline").stdout.strip()
    deadline = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    left = (deadline - datetime.now(UTC)).total_seconds()
    assert 0 < left < 180
    off = instance_emulator.wait_for(iid, "powered off", timeout_s=left + 90)
    off_at = datetime.now(UTC) - timedelta(seconds=time.monotonic() - off.at)
    assert deadline - timedelta(seconds=5) <= off_at <= deadline + timedelta(seconds=90)
    instance_emulator.wait_for(iid, "terminated in moto", timeout_s=10)
    assert _state(aws_env, iid) in ("shutting-down", "terminated")
    down = orchestrate(["down", run_id], aws_env, tmp_path)
    assert down.returncode == 0, down.stdout + down.stderr


def test_an_instance_whose_deadline_is_not_armed_is_released_and_the_launch_fails(
    tmp_path: Path, aws_env: dict[str, str], instance_emulator: InstanceEmulator
) -> None:
    instance_emulator.register_public_images()
    instance_emulator.register_baked("ubuntu24-cpu", mask_deadline=True)  # a broken image
    spec = _experiment(
        tmp_path,
        {"cpu": {"instance_type": "c6i.xlarge", "ami": "ubuntu24-cpu"}},
        [{"name": "never", "run": "true"}],
    )
    proc = orchestrate(["run", str(spec), "--json"], aws_env, tmp_path, timeout=400)
    assert proc.returncode != 0
    assert "deadline timer is not armed" in proc.stdout + proc.stderr
    (iid,) = [e.instance_id for e in instance_emulator.events if e.what == "booted"]
    assert _state(aws_env, iid) in ("shutting-down", "terminated")
    instance_emulator.wait_for(iid, "powered off", timeout_s=60)


def test_a_gpu_image_spec_selects_the_gpu_setup_which_fails_clearly_without_a_driver(
    tmp_path: Path, aws_env: dict[str, str], instance_emulator: InstanceEmulator
) -> None:
    instance_emulator.register_public_images()  # no bake: setup is due at launch
    spec = _experiment(
        tmp_path,
        {"gpu": {"instance_type": "g4dn.xlarge", "ami": "dl-gpu-ubuntu24"}},
        [{"name": "smi", "run": "nvidia-smi", "device": "gpu"}],
    )
    proc = orchestrate(["run", str(spec), "--json"], aws_env, tmp_path, timeout=400)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    run_log = next((tmp_path / "runs").glob("*/run.log")).read_text()
    assert "no working NVIDIA driver" in out + run_log, out[-3000:]
    (iid,) = [e.instance_id for e in instance_emulator.events if e.what == "booted"]
    tags = ec2_client(aws_env).describe_tags(Filters=[{"Name": "resource-id", "Values": [iid]}])[
        "Tags"
    ]
    assert {
        "Key": "orchestrate:spec",
        "ResourceId": iid,
        "ResourceType": "instance",
        "Value": "dl-gpu-ubuntu24",
    } in tags
    assert _state(aws_env, iid) in ("shutting-down", "terminated")
