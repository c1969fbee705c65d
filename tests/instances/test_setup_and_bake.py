"""The real setup on a booted machine, then a bake, then runs from the baked image (one of
them a two-instance data-parallel task).

One test on purpose: the first run installs the trainers' frameworks for real (``cpu.sh``: uv,
TensorFlow, PyTensor and numba inside the container, tens of seconds even with the shared
download cache), and the bake and the later runs reuse that. Marked ``instance`` and ``slow``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.cli import orchestrate
from tests.instances.emulator import InstanceEmulator
from tests.instances.timeline import first_task_s

pytestmark = [pytest.mark.moto_server, pytest.mark.instance, pytest.mark.slow]

REGION = "us-east-1"
VENV_DIR = "opt/orchestrate/venv"
OWN = 'python -c \'import six, sys; print("six", six.__version__, "in", sys.prefix)\''


def tiny_experiment(tmp_path: Path, name: str) -> Path:
    """MNIST and PCA in both frameworks (1 epoch, 2000 samples) and an own script with setup."""
    (tmp_path / "project").mkdir(exist_ok=True)
    exp = {
        "name": name,
        "provider": "aws",
        "region": REGION,
        "ssh_cidr": "127.0.0.1/32",
        "budget": {"max_usd": 5, "max_hours": 1},
        "machines": {"cpu": {"instance_type": "c6i.xlarge", "ami": "ubuntu24-cpu"}},
        "workdir": "project",
        "jobs": [
            {
                "trainer": "mnist",
                "framework": ["tensorflow", "theano"],
                "optimizer": "adam",
                "epochs": 1,
                "subset": 2000,
            },
            {"trainer": "pca", "framework": ["tensorflow", "theano"], "components": 3},
            {"name": "own", "run": OWN, "setup": "pip install -q six"},
        ],
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(exp))
    return path


def run_ok(spec: Path, env: dict[str, str], cwd: Path) -> dict[str, object]:
    proc = orchestrate(["run", str(spec), "--json"], env, cwd, timeout=1200)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    summary: dict[str, object] = json.loads(proc.stdout.splitlines()[-1])
    assert summary["counts"] == {"done": 5}, summary
    run = Path(str(summary["run_dir"]))
    for task in ("mnist-tensorflow-adam-cpu", "mnist-theano-adam-cpu", "pca-tensorflow-cpu"):
        assert (run / task / "timing.jsonl").stat().st_size > 0, task
    assert "six" in next(run.glob("own*/task.log")).read_text()
    return summary


def test_real_setup_then_bake_then_a_run_from_the_image_without_setup(
    tmp_path: Path, aws_env: dict[str, str], instance_emulator: InstanceEmulator
) -> None:
    instance_emulator.register_public_images()
    env = {k: v for k, v in aws_env.items() if k != "ORCHESTRATE_TRAINERS_SRC"}  # real trainers

    # 1. A launch from the public image: bootstrap runs the real cpu.sh over SSH.
    cold = run_ok(tiny_experiment(tmp_path, "cold"), env, tmp_path)
    (cold_iid,) = [e.instance_id for e in instance_emulator.events if e.what == "booted"]
    assert _setup_ran(instance_emulator, cold_iid)
    # Staged (ami.stages): the first task's framework (the matrix starts with TensorFlow) went
    # in first, the machine was handed over then, and PyTensor's stage followed.
    assert _stages_in_order(instance_emulator, cold_iid) == ["tensorflow", "theano"]
    cold_s = first_task_s(Path(env["ORCHESTRATE_STATE_DIR"]), str(cold["run_id"]))

    # 2. Bake the spec: a machine set up the same way, saved as an image tagged with its hash.
    bake = orchestrate(
        ["ami", "bake", "ubuntu24-cpu", "--region", REGION, "--ssh-cidr", "127.0.0.1/32"],
        env,
        tmp_path,
        timeout=1200,
    )
    assert bake.returncode == 0, (bake.stdout + bake.stderr)[-4000:]
    assert "baked ubuntu24-cpu" in bake.stdout
    listed = orchestrate(["ami", "list", "--region", REGION], env, tmp_path)
    assert "ubuntu24-cpu" in listed.stdout, listed.stdout + listed.stderr
    bake_iid = [
        e.instance_id
        for e in instance_emulator.events
        if e.what == "booted" and e.instance_id != cold_iid
    ][0]
    saved = instance_emulator.wait_for(bake_iid, "saved as ami-", timeout_s=5)
    layer = instance_emulator.images[saved.what.split()[-1]][-1]
    units = layer / "etc" / "systemd" / "system"
    assert not list(units.glob("**/orchestrate-deadline.*")), "a stale deadline in the image"
    keys = [p for p in (layer / "etc" / "ssh").glob("ssh_host_*") if p.is_file()]
    assert not keys  # no host identity shared by every machine of the image

    # 3. Run again: the baked image is chosen and setup does not run again.
    booted_before = {e.instance_id for e in instance_emulator.events if e.what == "booted"}
    warm = run_ok(tiny_experiment(tmp_path, "warm"), env, tmp_path)
    (warm_iid,) = {
        e.instance_id for e in instance_emulator.events if e.what == "booted"
    } - booted_before
    assert "orchestrate:setup=baked" in _tags(instance_emulator, warm_iid)
    assert not _setup_ran(instance_emulator, warm_iid)
    venv = instance_emulator.images[_image_of(instance_emulator, warm_iid)][-1] / VENV_DIR
    assert venv.stat().st_uid == 1000  # the login user's, so a job's pip install works
    warm_s = first_task_s(Path(env["ORCHESTRATE_STATE_DIR"]), str(warm["run_id"]))
    assert warm_s < cold_s, (warm_s, cold_s)
    print(f"time to first task: cold setup {cold_s:.1f} s, baked image {warm_s:.1f} s")

    # 4. From the same image, one MNIST task trained data-parallel on two instances (issue 19):
    # TensorFlow's MultiWorkerMirroredStrategy between the two booted machines.
    booted_before = {e.instance_id for e in instance_emulator.events if e.what == "booted"}
    gang = {
        **yaml.safe_load(tiny_experiment(tmp_path, "gang").read_text()),
        "jobs": [
            {
                "trainer": "mnist",
                "framework": "tensorflow",
                "optimizer": "adam",
                "epochs": 1,
                "subset": 2000,
                "nodes": 2,
            }
        ],
    }
    (tmp_path / "gang.yaml").write_text(yaml.safe_dump(gang))
    proc = orchestrate(["run", str(tmp_path / "gang.yaml"), "--json"], env, tmp_path, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["counts"] == {"done": 1}, summary
    task_dir = Path(str(summary["run_dir"])) / "mnist-tensorflow-adam-cpu"
    metrics = json.loads((task_dir / "metrics.json").read_text())
    assert metrics["workers"] == 2
    assert (task_dir / "workers" / "1" / "timing.jsonl").stat().st_size > 0
    booted = {e.instance_id for e in instance_emulator.events if e.what == "booted"}
    assert len(booted - booted_before) == 2  # one instance per worker
    assert not instance_emulator.errors


def _setup_ran(emulator: InstanceEmulator, iid: str) -> bool:
    """Whether a setup wrote to its log on this machine's own disk layer (a log inherited from
    the image it booted from is in a lower layer, and does not count)."""
    return (emulator.containers[iid].upper / "var" / "log" / "orchestrate-setup.log").exists()


def _stages_in_order(emulator: InstanceEmulator, iid: str) -> list[str]:
    """The frameworks a staged setup reported ready on this machine, in the order it did."""
    log = emulator.containers[iid].upper / "var" / "log" / "orchestrate-setup.log"
    found = re.findall(r"^orchestrate setup: (\w+) ready ", log.read_text(), flags=re.M)
    return [str(f) for f in found]


def _image_of(emulator: InstanceEmulator, iid: str) -> str:
    found = emulator.ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"]
    return str(found[0]["ImageId"])


def _tags(emulator: InstanceEmulator, iid: str) -> str:
    tags = emulator.ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [iid]}])["Tags"]
    return " ".join(f"{t['Key']}={t['Value']}" for t in tags)
