"""The AWS example end to end through the CLI: every AWS call against moto's server on
127.0.0.1, every instance played by a real sshd (the one part of EC2 that cannot run here)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
import yaml

from tests.cli import orchestrate, start_and_wait
from tests.fakes import FAKE_TRAINERS
from tests.sshd import SshdServer, free_port

pytestmark = [pytest.mark.moto_server, pytest.mark.sshd, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"


@pytest.fixture
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(moto_server: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=moto_server,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        ORCHESTRATE_STATE_DIR=str(tmp_path / "state"),
        ORCHESTRATE_TRAINERS_SRC=str(FAKE_TRAINERS),
    )
    return env


def _ec2(env: dict[str, str]):  # type: ignore[no-untyped-def]
    return boto3.client(
        "ec2",
        region_name=REGION,
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


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


def _experiment(tmp_path: Path, env: dict[str, str]) -> Path:
    ec2 = _ec2(env)
    image = sorted(
        ec2.describe_images(Owners=["amazon", "099720109477"])["Images"],
        key=lambda im: im["ImageId"],
    )[0]["ImageId"]
    exp = yaml.safe_load((ROOT / "examples" / "aws-cpu-vs-gpu.yaml").read_text())
    for machine in exp["machines"].values():
        machine["ami"] = image  # a literal AMI id that exists in moto's region
    for job in exp["jobs"]:
        if job["trainer"] == "mnist":
            job["epochs"] = 1  # tiny epochs
            job["optimizer"] = ["sgd", "adam"]
    path = tmp_path / "aws.yaml"
    path.write_text(yaml.safe_dump(exp))
    return path


def _stand_in(host: SshdServer) -> str:
    """The seam's value: this sshd plays every instance, with our interpreter."""
    return json.dumps(
        {
            "host": host.host,
            "port": host.port,
            "user": host.user,
            "key_path": host.key_path,
            "host_key": host.host_key,
            "python": sys.executable,
        }
    )


def test_aws_example_launches_runs_fetches_and_leaves_nothing(
    tmp_path: Path, aws_env: dict[str, str], sshd_fleet: Callable[[int], list[SshdServer]]
) -> None:
    (host,) = sshd_fleet(1)
    aws_env["ORCHESTRATE_TEST_INSTANCE"] = _stand_in(host)
    spec = _experiment(tmp_path, aws_env)
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
    assert _ours(_ec2(aws_env)) == {"instances": [], "key_pairs": [], "security_groups": []}
    cost = json.loads(orchestrate(["cost", summary["run_id"], "--json"], aws_env, tmp_path).stdout)
    assert cost[0]["actual_usd"] > 0 and cost[0]["forecast_usd"] > 0


def test_gc_removes_an_instance_orphaned_by_a_crash(
    tmp_path: Path, aws_env: dict[str, str]
) -> None:
    ec2 = _ec2(aws_env)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    tags = [
        {"Key": "orchestrate:run", "Value": "crashed-run-1"},
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


def test_check_aws_names_what_it_checked(tmp_path: Path, aws_env: dict[str, str]) -> None:
    spec = _experiment(tmp_path, aws_env)
    proc = orchestrate(["plan", str(spec), "--check-aws"], aws_env, tmp_path)
    assert "ec2:RunInstances" in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_down_after_a_crash_terminates_instances_and_deletes_the_rest(
    tmp_path: Path, aws_env: dict[str, str], sshd_fleet: Callable[[int], list[SshdServer]]
) -> None:
    (host,) = sshd_fleet(1)
    aws_env["ORCHESTRATE_TEST_INSTANCE"] = _stand_in(host)
    spec = _experiment(tmp_path, aws_env)
    exp = yaml.safe_load(spec.read_text())
    (tmp_path / "project").mkdir()
    exp["workdir"] = "project"
    exp["jobs"] = [{"name": "sleepy", "run": "sleep 120", "device": ["cpu", "gpu"]}]
    spec.write_text(yaml.safe_dump(exp))
    proc, (run_id,) = start_and_wait(
        str(spec),
        aws_env,
        tmp_path,
        journal_query="SELECT run_id FROM machines WHERE status='running' GROUP BY run_id "
        "HAVING COUNT(*) = 2",  # both machines are up
        timeout=120,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    db = tmp_path / "state" / "journal.sqlite"
    assert run_id is not None, "both machines never came up"
    proc.kill()  # the orchestrator dies: no finally, no teardown
    proc.wait(timeout=10)
    try:
        _down_after_crash(run_id, aws_env, tmp_path)
    finally:
        # The stand-in host is this machine: stop the detached `sleep`s a real terminate would.
        rows = sqlite3.connect(db).execute("SELECT job FROM tasks WHERE job IS NOT NULL")
        for (job,) in rows:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(json.loads(job)["pid"], signal.SIGKILL)


def _down_after_crash(run_id: str, aws_env: dict[str, str], tmp_path: Path) -> None:
    ec2 = _ec2(aws_env)
    assert len(_ours(ec2)["instances"]) == 2  # left running by the crash
    down = orchestrate(["down", run_id], aws_env, tmp_path)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "terminated" in down.stdout and "deleted" in down.stdout
    assert _ours(ec2) == {"instances": [], "key_pairs": [], "security_groups": []}


MNIST = ROOT.parent / "shared" / "datasets" / "mnist.npz"


@pytest.mark.skipif(not MNIST.exists(), reason="needs ../shared/datasets/mnist.npz")
def test_aws_example_with_the_real_trainers_on_its_cpu_machine(
    tmp_path: Path, aws_env: dict[str, str], sshd_fleet: Callable[[int], list[SshdServer]]
) -> None:
    """The same path with real TensorFlow/PyTensor training (cpu variants: the stand-in has no
    GPU, and a gpu trainer there would rightly exit 3 rather than run on the CPU)."""
    (host,) = sshd_fleet(1)
    aws_env["ORCHESTRATE_TEST_INSTANCE"] = _stand_in(host)
    aws_env.pop("ORCHESTRATE_TRAINERS_SRC")
    spec = _experiment(tmp_path, aws_env)
    exp = yaml.safe_load(spec.read_text())
    exp["data_dir"] = str(MNIST.parent)
    for job in exp["jobs"]:
        job["device"] = ["cpu"]
        job["subset"] = 5000
        if job["trainer"] == "pca":
            job["components"] = 3
    spec.write_text(yaml.safe_dump(exp))
    proc = orchestrate(["run", str(spec), "--json"], aws_env, tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["counts"] == {"done": 6}
    assert {t["machine"] for t in summary["tasks"]} == {"cpu"}  # the gpu class was not launched
    run = Path(summary["run_dir"])
    manifest = json.loads((run / "mnist-theano-adam-cpu" / "manifest.json").read_text())
    assert manifest["device_used"] == "cpu"
    assert all(t["test_error"] < 0.3 for t in summary["tasks"] if t["task_id"].startswith("mnist"))
    assert _ours(_ec2(aws_env)) == {"instances": [], "key_pairs": [], "security_groups": []}
