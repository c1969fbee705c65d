"""The pieces of recovery (``orchestrator.recovery``) on their own: how a replacement machine
is asked for, when the budget refuses it, how a notice reads, checkpoints that come back and
go out again through a real local transport."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from infra.provider import LaunchRequest, MachineRequest
from infra.tags import TAG_EXPIRES
from infra.transport.local import LocalTransport
from orchestrator.recovery import (
    NOTICE_PREFIX,
    CheckpointPuller,
    notice_text,
    recovery_refusal,
    replacement_launch,
    restore_checkpoint,
    set_aside_markers,
)
from orchestrator.specfile import parse_experiment
from tests.fakes import FakeProvider

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _launch(spot: str = "preferred", hours: float = 2.0, price: float = 1.0) -> LaunchRequest:
    req = MachineRequest(
        run_id="r",
        name="gpu",
        spot=spot,
        deadline=NOW + timedelta(hours=hours),  # type: ignore[arg-type]
    )
    return LaunchRequest("fake", req, (), price, "fake gpu")


class Recorder(FakeProvider):
    def __init__(self) -> None:
        super().__init__(workspace_root="/nowhere", hourly_usd=1.0)
        self.prepared: list[MachineRequest] = []

    def prepare(self, req: MachineRequest) -> LaunchRequest:
        self.prepared.append(req)
        return super().prepare(req)


@pytest.mark.parametrize(("capacity", "market"), [("spot", "preferred"), ("on-demand", "no")])
def test_a_replacement_keeps_or_leaves_the_spot_market(capacity: str, market: str) -> None:
    provider = Recorder()
    nxt = replacement_launch(
        provider, _launch(), capacity=capacity, now=NOW, cap_usd=None, spent_usd=0.0
    )
    assert nxt.request.spot == market


def test_a_replacement_deadline_is_what_the_budget_left_buys() -> None:
    provider = Recorder()
    # $1/h, $0.50 left of the cap: the new machine must be gone within 30 minutes, not 2 h.
    nxt = replacement_launch(
        provider, _launch(), capacity="spot", now=NOW, cap_usd=1.0, spent_usd=0.5
    )
    assert nxt.request.deadline == NOW + timedelta(minutes=30)
    assert nxt.request.tags[TAG_EXPIRES].startswith("2026-12-07T12:30")
    assert provider.prepared, "a changed request is prepared again (its user-data deadline)"


def test_the_budget_refuses_a_replacement_that_would_pass_the_cap() -> None:
    assert recovery_refusal(cap_usd=None, spent_usd=9.0, hourly_usd=9.0, hours=9, name="x") is None
    assert recovery_refusal(cap_usd=5.0, spent_usd=1.0, hourly_usd=2.0, hours=1.0, name="x") is None
    why = recovery_refusal(cap_usd=5.0, spent_usd=4.0, hourly_usd=2.0, hours=1.0, name="gpu")
    assert why is not None and "recovering gpu" in why and "$6.0000" in why and "$5.00" in why


def test_a_notice_reads_as_what_happened(tmp_path: Path) -> None:
    notice = tmp_path / "preempted.json"
    notice.write_text(
        json.dumps(
            {
                "source": "spot/instance-action",
                "notice": {"action": "terminate", "time": "2026-12-07T12:02:00Z"},
            }
        )
    )
    assert notice_text(notice) == "spot interruption notice (terminate at 2026-12-07T12:02:00Z)"
    notice.write_text(json.dumps({"source": "file"}))
    assert notice_text(notice) == "drained (preempt-now)"
    notice.write_text("not json")
    assert notice_text(notice) == "interruption notice"


def test_markers_of_an_attempt_are_kept_under_its_number(tmp_path: Path) -> None:
    (tmp_path / "preempted.json").write_text("{}")
    (tmp_path / "rebalance.json").write_text("{}")
    set_aside_markers(tmp_path, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "attempt-1.preempted.json",
        "attempt-1.rebalance.json",
    ]


class Store:
    def __init__(self) -> None:
        self.pushed: list[str] = []
        self.files: dict[str, bytes] = {}

    def push(self, task_id: str, local_dir: Path) -> int:
        self.pushed.append(task_id)
        self.files = {p.name: p.read_bytes() for p in local_dir.iterdir()}
        return len(self.files)

    def pull(self, task_id: str, local_dir: Path) -> int:
        local_dir.mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            (local_dir / name).write_bytes(data)
        return len(self.files)


def test_checkpoints_come_back_on_the_interval_or_a_notice_and_go_to_the_store(
    tmp_path: Path,
) -> None:
    remote, local = tmp_path / "machine" / "ckpt", tmp_path / "run" / "ckpt"
    remote.mkdir(parents=True)
    (remote / "mlp.npz").write_bytes(b"epoch 1")
    store = Store()
    puller = CheckpointPuller(LocalTransport(), str(remote), local, "t", 3600.0, store)
    puller.tick("epoch 1/5: loss 0.3\n")  # not due, no notice
    assert not local.exists() and puller.pulls == 0
    puller.tick(f"{NOTICE_PREFIX} rebalance recommendation\n")
    assert (local / "mlp.npz").read_bytes() == b"epoch 1" and store.pushed == ["t"]
    puller.pull()  # nothing changed: nothing pushed again
    assert store.pushed == ["t"]
    fast = CheckpointPuller(LocalTransport(), str(remote), local, "t", 0.0, store)
    (remote / "mlp.npz").write_bytes(b"epoch 2")
    os.utime(remote / "mlp.npz", (2e9, 2e9))  # a local copy compares size and whole seconds
    fast.tick("")
    assert (local / "mlp.npz").read_bytes() == b"epoch 2" and store.pushed == ["t", "t"]


def test_a_retry_starts_from_the_checkpoint_that_came_back_or_the_store(tmp_path: Path) -> None:
    local, new_machine = tmp_path / "run" / "ckpt", tmp_path / "new" / "ckpt"
    store = Store()
    assert restore_checkpoint(LocalTransport(), local, str(new_machine), task_id="t") == 0
    store.files = {"mlp.npz": b"epoch 3"}  # this laptop has nothing: the store has it
    restore_checkpoint(LocalTransport(), local, str(new_machine), task_id="t", store=store)
    assert (new_machine / "mlp.npz").read_bytes() == b"epoch 3"


def test_the_recovery_keys_are_checked_and_have_safe_defaults() -> None:
    exp = parse_experiment("name: x\njobs:\n  - trainer: pca\n", "x.yaml")
    assert (exp.recovery.capacity, exp.recovery.retries) == ("spot", 2)
    assert exp.recovery.checkpoint_every_minutes == 5.0
    with pytest.raises(Exception, match=r"recovery\.capacity"):
        parse_experiment(
            "name: x\nrecovery:\n  capacity: spot-please\njobs:\n  - trainer: pca\n", "x.yaml"
        )
