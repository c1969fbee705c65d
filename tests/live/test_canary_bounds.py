"""The canary's promises checked offline, in every run of the suite: its experiment plans to a
forecast under the README's bound (the instance deadlines make that the worst case), and the
script refuses to spend money unless ``ORCHESTRATE_LIVE_AWS=1``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.cli import orchestrate
from tests.live.test_aws_canary import CANARY, COST_BOUND_USD, ROOT


def _offline(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        ORCHESTRATE_STATE_DIR=str(tmp_path / "state"),
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
    )
    return env


def test_the_canary_forecast_is_under_the_stated_bound(tmp_path: Path) -> None:
    import json

    proc = orchestrate(["plan", str(CANARY), "--json"], _offline(tmp_path), tmp_path)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["forecast_usd"] <= COST_BOUND_USD
    assert {m["name"]: m["gpus"] for m in plan["machines"]} == {"gpu": 1, "cpu": 0}
    readme = (ROOT / "README.md").read_text()
    assert "scripts/aws_canary.sh" in readme and f"${COST_BOUND_USD:.2f}" in readme


def test_the_canary_script_refuses_without_the_switch(tmp_path: Path) -> None:
    env = _offline(tmp_path) | {"ORCHESTRATE_LIVE_AWS": "0"}
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "aws_canary.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "ORCHESTRATE_LIVE_AWS=1" in proc.stderr
