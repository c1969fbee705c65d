"""The AWS example end to end through the CLI: every AWS call against moto's server on
127.0.0.1, every instance a really booted machine (the instance emulator, tests/instances/)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from infra.tags import current_owner
from tests.cli import orchestrate, start_and_wait
from tests.instances.emulator import InstanceEmulator
from tests.instances.fixtures import ec2_client

pytestmark = [pytest.mark.moto_server, pytest.mark.instance, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"


def _ours(ec2) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    tag = [{"Name": "tag-key", "Values": ["orchestrate:run"]}]
    live = [
        i["InstanceId"]
        for r in ec2.describe_instances(Filters=tag)["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] not in ("terminated", "shutting-down")
    ]
    keys = [k["KeyName"] for k in ec2.describe_key_pairs(Filters=tag)["KeyPairs"]]
    groups = [g["GroupId"] for g in ec2.describe_security_groups(Filters=tag)["SecurityGroups"]]
    return {"instances": live, "key_pairs": keys, "security_groups": groups}


def _experiment(tmp_path: Path, emulator: InstanceEmulator) -> Path:
    """The AWS example with tiny epochs, its specs already baked (setup is another test's)."""
    emulator.register_public_images()
    for spec in ("ubuntu24-cpu", "dl-gpu-ubuntu24"):
        emulator.register_baked(spec)
    exp = yaml.safe_load((ROOT / "examples" / "aws-cpu-vs-gpu.yaml").read_text())
    exp["ssh_cidr"] = "127.0.0.1/32"
    for job in exp["jobs"]:
        if job["trainer"] == "mnist":
            job["epochs"] = 1  # tiny epochs
            job["optimizer"] = ["sgd", "adam"]
    path = tmp_path / "aws.yaml"
    path.write_text(yaml.safe_dump(exp))
    return path


def test_aws_example_launches_runs_fetches_and_leaves_nothing(
    tmp_path: Path, aws_env: dict[str, str], instance_emulator: InstanceEmulator
) -> None:
    spec = _experiment(tmp_path, instance_emulator)
    plan = orchestrate(["plan", str(spec), "--json"], aws_env, tmp_path)
    assert plan.returncode == 0, plan.stderr
    planned = json.loads(plan.stdout)
    assert {m["name"] for m in planned["machines"]} == {"cpu", "gpu"}
    assert 0 < planned["forecast_usd"] <= 5.0

    proc = orchestrate(["run", str(spec), "--json"], aws_env, tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["counts"] == {"done": 12}
    by_id = {t["task_id"]: t for t in summary["tasks"]}
    assert by_id["mnist-tensorflow-adam-gpu"]["machine"] == "gpu"
    assert by_id["mnist-theano-sgd-cpu"]["machine"] == "cpu"
    run = Path(summary["run_dir"])
    assert (run / "mnist-tensorflow-adam-gpu" / "timing.jsonl").is_file()
    receipt = (run / "teardown.txt").read_text()
    assert "terminated" in receipt and "deleted" in receipt
    assert _ours(ec2_client(aws_env)) == {"instances": [], "key_pairs": [], "security_groups": []}
    booted = {e.instance_id for e in instance_emulator.events if e.what == "booted"}
    assert len(booted) == 2  # both machines really booted, and both are gone
    assert all(not c.running for c in instance_emulator.containers.values())
    assert not instance_emulator.errors
    cost = json.loads(orchestrate(["cost", summary["run_id"], "--json"], aws_env, tmp_path).stdout)
    assert cost[0]["actual_usd"] > 0 and cost[0]["forecast_usd"] > 0


def test_gc_removes_an_instance_orphaned_by_a_crash(
    tmp_path: Path, aws_env: dict[str, str]
) -> None:
    ec2 = ec2_client(aws_env)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    tags = [
        {"Key": "orchestrate:run", "Value": "crashed-run-1"},
        {"Key": "orchestrate:owner", "Value": current_owner()},  # gc sweeps only its owner's
        {"Key": "orchestrate:expires", "Value": "2099-01-01T00:00:00+00:00"},
    ]
    orphan = ec2.run_instances(
        ImageId=image,
        MinCount=1,
        MaxCount=1,
        InstanceType="t3.micro",
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
    )["Instances"][0]["InstanceId"]
    dry = orchestrate(["gc", "--dry-run", "--region", REGION], aws_env, tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert orphan in dry.stdout and "would" in dry.stdout
    assert _ours(ec2)["instances"] == [orphan]
    real = orchestrate(["gc", "--region", REGION], aws_env, tmp_path)
    assert real.returncode == 0, real.stderr
    assert orphan in real.stdout and "terminated" in real.stdout
    assert _ours(ec2)["instances"] == []


def test_check_aws_names_what_it_checked(
    tmp_path: Path, aws_env: dict[str, str], instance_emulator: InstanceEmulator
) -> None:
    spec = _experiment(tmp_path, instance_emulator)
    proc = orchestrate(["plan", str(spec), "--check-aws"], aws_env, tmp_path)
    assert "ec2:RunInstances" in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_down_after_a_crash_terminates_instances_and_deletes_the_rest(
    tmp_path: Path, aws_env: dict[str, str], instance_emulator: InstanceEmulator
) -> None:
    spec = _experiment(tmp_path, instance_emulator)
    exp = yaml.safe_load(spec.read_text())
    (tmp_path / "project").mkdir()
    exp["workdir"] = "project"
    exp["jobs"] = [{"name": "sleepy", "run": "sleep 120", "device": ["cpu", "gpu"]}]
    spec.write_text(yaml.safe_dump(exp))
    proc, (run_id,) = start_and_wait(
        str(spec),
        aws_env,
        tmp_path,
        journal_query="SELECT run_id FROM tasks WHERE status='running' GROUP BY run_id "
        "HAVING COUNT(*) = 2",  # both trainers are running on their machines
        timeout=180,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert run_id is not None, "both tasks never started"
    proc.kill()  # the orchestrator dies: no finally, no teardown
    proc.wait(timeout=10)
    live = _ours(ec2_client(aws_env))["instances"]
    assert len(live) == 2  # left running by the crash
    for iid in live:  # the detached trainer lives on in the machine
        assert "sleep 120" in instance_emulator.run(iid, "ps -eo args").stdout
    _down_after_crash(run_id, aws_env, tmp_path)
    for iid in live:  # terminate in moto powered the machine itself off
        instance_emulator.wait_for(iid, "powered off", timeout_s=60)


def _down_after_crash(run_id: str, aws_env: dict[str, str], tmp_path: Path) -> None:
    ec2 = ec2_client(aws_env)
    assert len(_ours(ec2)["instances"]) == 2  # left running by the crash
    down = orchestrate(["down", run_id], aws_env, tmp_path)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "terminated" in down.stdout and "deleted" in down.stdout
    assert _ours(ec2) == {"instances": [], "key_pairs": [], "security_groups": []}
