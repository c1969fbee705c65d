"""This machine's slots and each task's thread share: tasks use the cores without fighting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from infra.local import MAX_LOCAL_SLOTS, SLOTS_ENV, THREAD_VARS, LocalProvider, local_layout
from infra.provider import MachineRequest


def test_slots_follow_the_cores_and_threads_share_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SLOTS_ENV, raising=False)
    assert local_layout(2) == (2, 1)
    assert local_layout(1) == (1, 1)
    assert local_layout(64) == (MAX_LOCAL_SLOTS, 64 // MAX_LOCAL_SLOTS)
    assert local_layout(8, slots=1) == (1, 8)
    monkeypatch.setenv(SLOTS_ENV, "3")
    assert local_layout(12) == (3, 4)


def test_the_local_machine_carries_its_thread_share(tmp_path: object) -> None:
    lp = LocalProvider(workspace_root="/tmp/ws", gpus=0, slots=1)
    now = datetime.now(UTC)
    req = MachineRequest(run_id="r", name="local", gpus=0, deadline=now + timedelta(hours=1))
    machine = lp.acquire(lp.prepare(req), token="t")
    assert machine.tags["orchestrate:threads"] == str(machine.cpus)  # one slot: every core
    assert "1 tasks at once" in lp.prepare(req).summary
    assert "OMP_NUM_THREADS" in THREAD_VARS and "TF_NUM_INTRAOP_THREADS" in THREAD_VARS
