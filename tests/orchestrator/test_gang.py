"""Gang bookkeeping (orchestrator.gang) with real threads: seats, the whole-or-nothing wait,
the variables each worker gets, and the first failure winning (issue 19)."""

from __future__ import annotations

import json
import threading
import time

from orchestrator.gang import Gang, gang_env


def test_each_worker_gets_the_cluster_in_rank_order_and_its_own_index() -> None:
    addrs = ["10.0.0.5:40001", "10.0.0.6:40002", "10.0.0.7:40003"]
    env = gang_env(addrs, 2)
    assert json.loads(env["TF_CONFIG"]) == {
        "cluster": {"worker": addrs},
        "task": {"type": "worker", "index": 2},
    }
    assert env["ORCHESTRATE_NODE_RANK"] == "2" and env["ORCHESTRATE_NUM_NODES"] == "3"
    assert env["ORCHESTRATE_NODE_ADDRS"] == ",".join(addrs)


def _meet(gang: Gang, places: dict[int, str]) -> dict[int, tuple[int, list[str]] | None]:
    """Every seat's worker in its own thread, the later seats arriving first."""
    seen: dict[int, tuple[int, list[str]] | None] = {}

    def worker(seat: int) -> None:
        time.sleep(0.2 * (len(places) - seat))
        seen[seat] = gang.wait_whole(
            seat, f"h{seat}:{100 + seat}", lambda: False, place=places[seat]
        )

    threads = [threading.Thread(target=worker, args=(s,)) for s in places]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    return seen


def test_workers_wait_until_the_gang_is_whole_and_all_see_the_same_cluster() -> None:
    gang = Gang("t", 2, deadline=time.monotonic() + 30)
    seats = [gang.take_seat(), gang.take_seat()]
    assert seats == [0, 1] and gang.full
    seen = _meet(gang, {0: "box0", 1: "box1"})
    assert seen == {0: (0, ["h0:100", "h1:101"]), 1: (1, ["h0:100", "h1:101"])}


def test_ranks_follow_the_machines_not_which_slot_came_first() -> None:
    """The chief must land on the same machine every attempt: its checkpoint lives there."""
    gang = Gang("t", 3, deadline=time.monotonic() + 30)
    for _ in range(3):
        gang.take_seat()
    seen = _meet(gang, {0: "box2", 1: "box0", 2: "box1"})
    cluster = ["h1:101", "h2:102", "h0:100"]
    assert seen == {0: (2, cluster), 1: (0, cluster), 2: (1, cluster)}


def test_a_gang_not_whole_by_its_deadline_is_abandoned() -> None:
    gang = Gang("t", 3, deadline=time.monotonic() + 0.3)
    gang.take_seat()
    t0 = time.monotonic()
    assert gang.wait_whole(0, "h0:1", lambda: False) is None
    assert 0.25 < time.monotonic() - t0 < 5
    assert gang.abandoned == "only 1 of 3 nodes came free in time"


def test_a_stopping_run_abandons_a_forming_gang() -> None:
    gang = Gang("t", 2, deadline=time.monotonic() + 60)
    gang.take_seat()
    assert gang.wait_whole(0, "h0:1", lambda: True) is None
    assert gang.abandoned is not None and "stopped" in gang.abandoned


def test_the_first_bad_ending_is_the_gangs_failure() -> None:
    gang = Gang("t", 3, deadline=time.monotonic() + 60)
    for rank in range(3):
        gang.take_seat()
        gang.addrs[rank] = f"h{rank}:1"
    gang.worker_ended(2, True, "ended done")
    assert not gang.failed
    gang.worker_ended(1, False, "exited -9 on box1")
    gang.worker_ended(0, False, "ended stopped")
    gang.wait_ended()  # all three have ended: returns at once
    assert gang.failure == "worker 1 exited -9 on box1"
    assert gang.bad_endings(but=0) == ["worker 1 exited -9 on box1"]


def test_a_peer_seen_dead_after_the_chief_failed_is_still_named() -> None:
    """The chief's collective op fails as soon as a peer dies, often before the peer's own end
    is polled: worker 0 records the task, and must name the peer (CI saw only its own error)."""
    gang = Gang("t", 2, deadline=time.monotonic() + 60)
    for rank in range(2):
        gang.take_seat()
        gang.addrs[rank] = f"h{rank}:1"
    gang.worker_ended(0, False, "ended failed")
    gang.worker_ended(1, False, "exited -9 on box1")
    assert gang.failure == "worker 0 ended failed"
    assert gang.bad_endings(but=0) == ["worker 1 exited -9 on box1"]
    assert gang.bad_endings(but=1) == ["worker 0 ended failed"]
