"""Gang placement: a task with ``nodes: N`` runs as N workers on N slots at once, or not at all.

Why: data-parallel training (TensorFlow's MultiWorkerMirroredStrategy, or the user's own
torchrun/Horovod/JAX under ``run:``) needs every worker up together; a worker started alone
waits forever for the others. The engine's slots pull tasks on their own, so a gang task is
gathered here from the slots that pick it.

Rules:
1. One gang forms at a time (two half-formed gangs would hold each other's slots until both
   time out). A slot that picks a gang task takes the next seat (its rank); the task leaves the
   queue when the last seat is taken. Ranks are given when the gang is whole, in machine-name
   order, so worker 0 (the chief, whose checkpoint a resume reads) keeps its machine.
2. Each seated worker finds its machine's own address (loopback on the local machine) and a
   free port there (``WHERE``), then waits for the others. If the gang is not whole within
   ``timeout_s`` (or the run stops) it is abandoned: every seat is given up, and the task
   fails saying so.
3. Every worker gets ``TF_CONFIG`` (the cluster in rank order, its index) and
   ``ORCHESTRATE_NODE_RANK`` / ``ORCHESTRATE_NUM_NODES`` / ``ORCHESTRATE_NODE_ADDRS``
   (``host:port`` in rank order, comma-separated), built-in trainer or own script alike.
4. The first worker to end badly marks the gang failed; every other worker is then stopped,
   and the task fails naming that worker. Worker 0's log is the task's log; the other
   workers' files are kept under the task's ``workers/<rank>/``.
5. Every worker's job is journalled (``Journal.worker_started``): ``down`` after a crash stops
   them all, and a resumed run stops what is left of the gang and runs it again from the
   chief's checkpoint rather than follow half of it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.events import Event

# Run on a worker's machine: its address on its own network and a free port. The address is
# the one the route to a private address leaves from (nothing is sent: UDP connect only picks
# the route): on AWS the private IP, which the run's security group lets members reach; the SSH
# address may be a public IP, a bastion's forward or a name only the orchestrator knows.
WHERE = """
import socket
s = socket.socket(); s.bind(("", 0)); port = s.getsockname()[1]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    u.connect(("10.255.255.255", 1)); ip = u.getsockname()[0]
except OSError:
    ip = "127.0.0.1"
print(ip, port)
"""


def gang_env(addrs: list[str], rank: int) -> dict[str, str]:
    """The variables worker ``rank`` of the cluster ``addrs`` (``host:port`` each) is given."""
    tf_config = {"cluster": {"worker": addrs}, "task": {"type": "worker", "index": rank}}
    return {
        "TF_CONFIG": json.dumps(tf_config),
        "ORCHESTRATE_NODE_RANK": str(rank),
        "ORCHESTRATE_NUM_NODES": str(len(addrs)),
        "ORCHESTRATE_NODE_ADDRS": ",".join(addrs),
    }


@dataclass
class Gang:
    """One gang task's seats, as they are taken and as its workers end (rules 1, 2 and 4)."""

    task_id: str
    nodes: int
    deadline: float  # time.monotonic() by which the gang must be whole
    taken: int = 0
    addrs: dict[int, str] = field(default_factory=dict)  # by seat
    places: dict[int, str] = field(default_factory=dict)  # by seat: the machine's name
    abandoned: str | None = None  # why the gang never ran
    failure: str | None = None  # the first worker that ended badly, and how
    bad: dict[int, str] = field(default_factory=dict)  # by rank: how each bad ending went
    ended: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition)

    @property
    def full(self) -> bool:
        """Whether every seat is taken (the task then leaves the queue)."""
        return self.taken >= self.nodes

    def take_seat(self) -> int:
        """The seat taken (0, 1, ...); call under the engine's queue lock, while not full."""
        self.taken += 1
        return self.taken - 1

    def wait_whole(
        self, seat: int, addr: str, should_stop: Callable[[], bool], *, place: str = ""
    ) -> tuple[int, list[str]] | None:
        """Give this seat's worker address; once all are in, its rank and the cluster in rank
        order, else None when the gang is abandoned (time out or stop).

        Ranks follow ``place`` (the machine's name), then the seat: the chief (rank 0), whose
        checkpoint a resumed run reads, lands on the same machine every attempt, whichever
        slot happened to pick the task first.
        """
        with self._cond:
            self.addrs[seat] = addr
            self.places[seat] = place
            self._cond.notify_all()
            while self.abandoned is None and len(self.addrs) < self.nodes:
                if should_stop():
                    self.abandoned = "the run stopped before the gang was whole"
                elif time.monotonic() > self.deadline:
                    self.abandoned = (
                        f"only {len(self.addrs)} of {self.nodes} nodes came free in time"
                    )
                else:
                    self._cond.wait(timeout=0.1)
            self._cond.notify_all()
            if self.abandoned is not None:
                return None
            order = sorted(self.addrs, key=lambda s: (self.places[s], s))
            return order.index(seat), [self.addrs[s] for s in order]

    def worker_ended(self, rank: int, ok: bool, how: str) -> None:
        """Rule 4: the first bad ending fails the gang, which stops the others."""
        with self._cond:
            self.ended += 1
            if not ok:
                self.bad.setdefault(rank, how)
                if self.failure is None:
                    self.failure = f"worker {rank} {how}"
            self._cond.notify_all()

    def bad_endings(self, but: int) -> list[str]:
        """The other workers' bad endings, in rank order: worker 0 records the task, and a
        peer's death is often what failed it (its collective op errors out as soon as a peer is
        gone, sometimes before that peer's own end is seen)."""
        with self._cond:
            return [f"worker {r} {how}" for r, how in sorted(self.bad.items()) if r != but]

    def wait_ended(self) -> None:
        """Until every worker has ended (worker 0 records the task only then)."""
        with self._cond:
            while self.ended < len(self.addrs):
                self._cond.wait(timeout=0.1)

    @property
    def failed(self) -> bool:
        """Whether some worker ended badly (the others are to be stopped)."""
        return self.failure is not None


class Quiet:
    """A reporter for workers other than 0: their output is kept in files, not shown."""

    def event(self, e: Event) -> None:
        """Drop the event: worker 0 speaks for the task."""
