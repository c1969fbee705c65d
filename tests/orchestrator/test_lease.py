"""The run lease: one live orchestrator per run; a dead or silent one is taken over."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from orchestrator import lease as lease_mod
from orchestrator.errors import RunBusy
from orchestrator.lease import RunLease, holder, stop_live_run
from orchestrator.state import Journal


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal.in_dir(tmp_path / "state")


def test_a_live_lease_refuses_a_second_taker_naming_the_pid(journal: Journal) -> None:
    first = RunLease.take(journal, "r1")
    with pytest.raises(RunBusy, match=f"pid {os.getpid()} on "):
        RunLease.take(journal, "r1")
    RunLease.take(journal, "other").release()  # other runs are free
    first.release()
    RunLease.take(journal, "r1").release()  # and once released, r1 too
    assert holder(journal, "r1") is None


def test_a_dead_holder_is_taken_over_at_once(journal: Journal) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    taken = RunLease.take(journal, "r1")
    with journal._tx() as db:  # pretend the lease was the dead process's (kill -9)
        db.execute("UPDATE leases SET pid=? WHERE run_id='r1'", (dead.pid,))
    RunLease.take(journal, "r1").release()
    taken.release()


def test_a_silent_holder_lapses_after_the_ttl(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    RunLease.take(journal, "r1")  # never beats, never released
    h = holder(journal, "r1")
    assert h is not None and h.live(time.time())
    assert not h.live(time.time() + lease_mod.LEASE_TTL_S + 1)


def test_a_recycled_pid_is_not_the_holder(journal: Journal) -> None:
    RunLease.take(journal, "r1")
    with journal._tx() as db:
        db.execute("UPDATE leases SET proc_start='1' WHERE run_id='r1'")
    RunLease.take(journal, "r1").release()


def test_down_asks_the_holder_to_stop_and_waits_for_it(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lease_mod, "BEAT_S", 0.05)
    held = RunLease.take(journal, "r1")
    asked: list[str] = []

    def on_stop(why: str) -> None:  # the orchestrator cleans up, then lets go
        asked.append(why)
        threading.Timer(0.2, held.release).start()

    held.watch(on_stop)
    note = stop_live_run(journal, "r1", timeout_s=10)
    assert asked == ["stopped by `orchestrate down`"]
    assert note and f"pid {os.getpid()}" in note
    assert holder(journal, "r1") is None
    assert stop_live_run(journal, "r1", timeout_s=1) is None  # nobody holds it now


def test_down_gives_up_on_a_holder_that_never_lets_go(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lease_mod, "BEAT_S", 0.05)
    held = RunLease.take(journal, "r1")
    held.watch(lambda why: None)
    with pytest.raises(RunBusy, match="still held by pid"):
        stop_live_run(journal, "r1", timeout_s=0.3)
    held.release()
