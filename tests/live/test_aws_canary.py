"""The live AWS canary (issue 13, point 7): real EC2, real money (under $0.25), run only with
``ORCHESTRATE_LIVE_AWS=1`` by ``scripts/aws_canary.sh``, which says how.

One spot g4dn.xlarge (on-demand fallback) and one t3.medium run 1 epoch of MNIST and a PCA in
both frameworks (``examples/canary/canary.yaml``). It asserts what moto and the instance
emulator cannot show: the GPU is seen by both frameworks, each instance's deadline timer is
armed (``systemctl list-timers``), the run's spend stays under its cap, and afterwards nothing
of the run is left: no instance, key pair, security group or volume carrying its tag.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = [
    pytest.mark.live_aws,
    pytest.mark.skipif(
        os.environ.get("ORCHESTRATE_LIVE_AWS") != "1",
        reason="real AWS costs money: set ORCHESTRATE_LIVE_AWS=1 (see scripts/aws_canary.sh)",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
CANARY = ROOT / "examples" / "canary" / "canary.yaml"
COST_BOUND_USD = 0.25


def _my_cidr() -> str:
    """This machine's public address as a /32 (``ORCHESTRATE_CANARY_CIDR`` overrides)."""
    given = os.environ.get("ORCHESTRATE_CANARY_CIDR")
    if given:
        return given
    with urllib.request.urlopen("https://checkip.amazonaws.com", timeout=10) as answer:
        return str(answer.read().decode()).strip() + "/32"


def _ec2(region: str) -> Any:
    import boto3

    return boto3.client("ec2", region_name=region)


def leftovers(ec2: Any, run_id: str) -> dict[str, list[str]]:
    """Everything still carrying the run's tag: must be empty after the run."""
    tag = [{"Name": "tag:orchestrate:run", "Values": [run_id]}]
    instances = [
        i["InstanceId"]
        for r in ec2.describe_instances(Filters=tag)["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] != "terminated"
    ]
    return {
        "instances": instances,
        "key_pairs": [k["KeyName"] for k in ec2.describe_key_pairs(Filters=tag)["KeyPairs"]],
        "security_groups": [
            g["GroupId"] for g in ec2.describe_security_groups(Filters=tag)["SecurityGroups"]
        ],
        "volumes": [v["VolumeId"] for v in ec2.describe_volumes(Filters=tag)["Volumes"]],
    }


def test_canary_on_real_aws(tmp_path: Path) -> None:
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    exp = yaml.safe_load(CANARY.read_text())
    exp["ssh_cidr"], exp["region"] = _my_cidr(), region
    spec = tmp_path / "canary.yaml"
    spec.write_text(yaml.safe_dump(exp, sort_keys=False))
    env = {**os.environ, "ORCHESTRATE_STATE_DIR": str(tmp_path / "state")}

    def orchestrate(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "orchestrator", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=3600,
        )

    plan = orchestrate("plan", str(spec), "--json")
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["forecast_usd"] <= COST_BOUND_USD

    check = orchestrate("plan", str(spec), "--check-aws")
    assert check.returncode == 0, check.stdout + check.stderr

    proc = orchestrate("run", str(spec), "--json", "--runs-dir", str(tmp_path / "runs"))
    summary = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {}
    run_id = summary.get("run_id", "")
    try:
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert summary["counts"] == {"done": 10}
        run_dir = Path(summary["run_dir"])

        # The GPU is seen, by the driver and by both frameworks.
        (gpus,) = list(run_dir.glob("deadline-timer-gpu/**/gpus.txt"))
        assert "GPU 0" in gpus.read_text()
        for task in ("mnist-tensorflow-adam-gpu", "mnist-theano-adam-gpu", "pca-tensorflow-gpu"):
            manifest = json.loads((run_dir / task / "manifest.json").read_text())
            assert str(manifest["device_used"]).startswith("gpu"), (task, manifest)
            assert manifest["gpu"] and manifest["gpu"]["count"] >= 1

        # Each instance's own deadline timer was armed (layer 3 of the cost cap).
        for machine in ("cpu", "gpu"):
            (timers,) = list(run_dir.glob(f"deadline-timer-{machine}/**/timers.txt"))
            assert "orchestrate-deadline.timer" in timers.read_text(), timers.read_text()

        # The ledger's figure (price x time held) stays under the bound the README states.
        cost = orchestrate("cost", run_id, "--json")
        assert cost.returncode == 0, cost.stderr
        (row,) = json.loads(cost.stdout)
        assert 0 < row["actual_usd"] <= COST_BOUND_USD, row
    finally:
        if run_id:
            down = orchestrate("down", run_id)
            assert leftovers(_ec2(region), run_id) == {
                "instances": [],
                "key_pairs": [],
                "security_groups": [],
                "volumes": [],
            }, down.stdout + down.stderr
