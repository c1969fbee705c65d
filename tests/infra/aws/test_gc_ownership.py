"""gc destroys nobody else's runs (issue 13, point 2): one owner value on every resource of a
run, a sweep that looks only at this owner's resources, in the configured region, with
``--all-owners`` explicit and confirmed, and a ``running`` run whose orchestrator is gone
counted as orphaned only after a grace period. moto's EC2, the real CLI entry point."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.aws.gc import collect_garbage
from infra.aws.provider import AwsProvider
from infra.registry import AwsConfig, config_to_json
from infra.tags import TAG_OWNER, current_owner, machine_tags
from orchestrator.cli import main
from orchestrator.lease import RunLease, holder
from orchestrator.state import Journal
from tests.infra.aws.conftest import START, machine_request


def _owners(ec2: Any) -> dict[str, set[str]]:
    """The owner values on each kind of resource of ours."""

    def owner(tags: list[dict[str, str]] | None) -> str:
        return {t["Key"]: t["Value"] for t in tags or []}.get(TAG_OWNER, "<none>")

    insts = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    return {
        "instance": {owner(i.get("Tags")) for i in insts},
        "volume": {owner(v.get("Tags")) for v in ec2.describe_volumes()["Volumes"]},
        "key-pair": {owner(k.get("Tags")) for k in ec2.describe_key_pairs()["KeyPairs"]},
        "security-group": {
            owner(g.get("Tags"))
            for g in ec2.describe_security_groups()["SecurityGroups"]
            if g["GroupName"] != "default"
        },
    }


def test_every_resource_of_a_run_carries_the_one_owner_value(
    make_provider: Callable[..., AwsProvider], ec2: Any
) -> None:
    provider = make_provider(owner=None)
    assert provider.owner == current_owner()
    # The plan's tags, as infra.tags builds them for every provider.
    tagged = replace(machine_request(), tags=machine_tags("run-1", "cpu", START))
    provider.acquire(provider.prepare(tagged), token="tok-owner")
    owners = _owners(ec2)
    assert owners == {k: {current_owner()} for k in owners}, owners
    assert "@" in current_owner()


def test_the_owner_can_be_named_for_a_shared_account(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATE_OWNER", "team-vision")
    assert machine_tags("r", "m", START)[TAG_OWNER] == "team-vision" == current_owner()


def _key_pair(ec2: Any, name: str, *, run: str, owner: str) -> None:
    tags = [{"Key": "orchestrate:run", "Value": run}, {"Key": TAG_OWNER, "Value": owner}]
    ec2.create_key_pair(
        KeyName=name, TagSpecifications=[{"ResourceType": "key-pair", "Tags": tags}]
    )


def _key_names(ec2: Any) -> set[str]:
    return {k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]}


def test_gc_sweeps_only_this_owners_orphans(provider: AwsProvider, ec2: Any) -> None:
    _key_pair(ec2, "mine", run="run-a", owner="tester@example")
    _key_pair(ec2, "bobs", run="run-b", owner="bob@elsewhere")
    receipt = collect_garbage(
        ec2, owner=provider.owner, region="us-east-1", live_runs=set(), now=START
    )
    assert [i.id for i in receipt.items] == ["mine"]
    assert _key_names(ec2) == {"bobs"}


# ---------------------------------------------------------------- the CLI: `orchestrate gc`


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mocked_aws: None) -> Path:
    monkeypatch.setenv("ORCHESTRATE_OWNER", "me@here")
    monkeypatch.delenv("AWS_REGION", raising=False)
    return tmp_path / "state"


def test_gc_all_owners_asks_first_and_is_refused_without_a_yes(
    state: Path, ec2: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _key_pair(ec2, "mine", run="run-a", owner="me@here")
    _key_pair(ec2, "bobs", run="run-b", owner="bob@elsewhere")
    monkeypatch.setattr(sys, "stdin", io.StringIO("yes\n"))  # not a terminal: nobody to ask
    assert main(["gc", "--all-owners", "--state-dir", str(state)]) == 2
    assert _key_names(ec2) == {"mine", "bobs"}
    assert main(["gc", "--state-dir", str(state)]) == 0
    assert _key_names(ec2) == {"bobs"}
    assert main(["gc", "--all-owners", "--yes", "--state-dir", str(state)]) == 0
    assert _key_names(ec2) == set()


def test_gc_sweeps_the_configured_region_not_a_hard_coded_one(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    eu = boto3.client("ec2", region_name="eu-west-1")
    _key_pair(eu, "mine-in-eu", run="run-eu", owner="me@here")
    assert main(["gc", "--state-dir", str(state)]) == 0
    assert _key_names(eu) == set()


def _run(journal: Journal, run_id: str) -> None:
    config = AwsConfig(state_dir="/nonexistent", region="us-east-1")
    journal.create_run(
        run_id,
        name=run_id,
        spec_path="gone.yaml",
        provider="aws",
        runs_dir="runs",
        provider_config=config_to_json(config),
    )


def test_a_running_run_whose_orchestrator_is_gone_is_orphaned_after_the_grace(
    state: Path, ec2: Any
) -> None:
    journal = Journal.in_dir(state)
    for run_id in ("run-dead", "run-held", "run-young"):
        _run(journal, run_id)
        _key_pair(ec2, f"key-{run_id}", run=run_id, owner="me@here")
    # run-dead: its orchestrator took the lease, then died (kill -9) an hour ago.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    RunLease.take(journal, "run-dead")
    hour_ago = time.time() - 3600
    with journal._tx() as db:
        db.execute(
            "UPDATE leases SET pid=?, beat=? WHERE run_id=?", (dead.pid, hour_ago, "run-dead")
        )
        db.execute("UPDATE runs SET created_at=? WHERE id=?", (hour_ago, "run-dead"))
    held = RunLease.take(journal, "run-held")  # this process: alive, beating
    # run-young: running, no lease yet, started a moment ago (inside the grace period).
    try:
        assert holder(journal, "run-dead") is not None
        assert main(["gc", "--region", "us-east-1", "--state-dir", str(state)]) == 0
        assert _key_names(ec2) == {"key-run-held", "key-run-young"}
    finally:
        held.release()
