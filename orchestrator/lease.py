"""Who is running a run right now: a pid + heartbeat lease in the journal.

Why: two orchestrators on one run start every task twice in the same directories, and
``down`` on a live run races the orchestrator that is still starting tasks. So:

  1. ``run`` (and ``--resume``) takes the run's lease before launching anything; a lease held
     by a live orchestrator refuses with ``RunBusy`` naming its pid and host.
  2. The holder beats every ``BEAT_S``. A lease is live while its beat is younger than
     ``LEASE_TTL_S`` and, on this host, while its pid still runs (a ``kill -9`` frees it at once;
     the process start time guards against pid reuse).
  3. ``down`` on a live run asks the holder to stop (a flag in the lease the heartbeat reads),
     then waits for it to clean up and let go; once the lease lapses, ``down`` takes over.
  4. The lease row is the arbiter: taking it is one INSERT on its primary key, so two takers
     cannot both win.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import RunBusy
from orchestrator.state import Journal, RunStatus

BEAT_S = 2.0  # how often the holder beats (and looks for a stop request)
LEASE_TTL_S = 20.0  # a holder silent this long is gone, wherever it ran

_SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
    run_id TEXT PRIMARY KEY, pid INTEGER NOT NULL, host TEXT NOT NULL, proc_start TEXT NOT NULL,
    taken_at REAL NOT NULL, beat REAL NOT NULL, stop_requested TEXT
)
"""


def proc_start(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' if unknown): with the pid, an
    identity that a recycled pid does not share."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


def _pid_alive(pid: int, start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    now = proc_start(pid)
    return not (start and now and now != start)


@dataclass(frozen=True)
class Holder:
    """The lease as the journal has it."""

    run_id: str
    pid: int
    host: str
    proc_start: str
    taken_at: float
    beat: float
    stop_requested: str | None

    def live(self, now: float) -> bool:
        """Rule 2: fresh beat and, here, a running process."""
        if now - self.beat > LEASE_TTL_S:
            return False
        if self.host == socket.gethostname():
            return _pid_alive(self.pid, self.proc_start)
        return True

    def describe(self) -> str:
        """Who holds the run, for messages: its pid and host."""
        return f"pid {self.pid} on {self.host}"


def _ensure(journal: Journal) -> None:
    with journal._tx() as db:
        db.execute(_SCHEMA)


def holder(journal: Journal, run_id: str) -> Holder | None:
    """The run's lease row, live or not; None if nobody holds it."""
    _ensure(journal)
    with journal._tx() as db:
        row = db.execute("SELECT * FROM leases WHERE run_id=?", (run_id,)).fetchone()
    return Holder(**dict(row)) if row else None


def orphaned(journal: Journal, run_id: str, *, now: float) -> bool:
    """Whether a run is ``running`` in the journal with nobody running it: its lease lapsed
    (rule 2: the pid is gone here, or no beat for ``LEASE_TTL_S``, the grace a busy holder
    gets) or was never taken. Such a run can be attached to and finished (``attach``), which
    is what a schedule's next firing does with it rather than wait behind it forever."""
    run = journal.run(run_id)
    if run is None or run.status != RunStatus.RUNNING:
        return False
    current = holder(journal, run_id)
    return current is None or not current.live(now)


def request_stop(journal: Journal, run_id: str, why: str) -> None:
    """Rule 3: ask the holder to stop; it sees the request at its next beat."""
    _ensure(journal)
    with journal._tx() as db:
        db.execute("UPDATE leases SET stop_requested=? WHERE run_id=?", (why, run_id))


def wait_released(
    journal: Journal, run_id: str, *, timeout_s: float, poll_s: float = 0.2
) -> Holder | None:
    """Wait until the lease is gone or lapsed; returns the holder if it is still live."""
    deadline = time.monotonic() + timeout_s
    while True:
        h = holder(journal, run_id)
        if h is None or not h.live(time.time()):
            return None
        if time.monotonic() > deadline:
            return h
        time.sleep(poll_s)


def stop_live_run(journal: Journal, run_id: str, *, timeout_s: float) -> str | None:
    """Rule 3 for ``down``: if a live orchestrator holds the run, ask it to stop and wait for
    it to clean up (stop, fetch, release) and let go. Returns what was done, or None if nobody
    held the run. Raises ``RunBusy`` if it still holds the run after ``timeout_s``."""
    current = holder(journal, run_id)
    if current is None or not current.live(time.time()):
        return None
    request_stop(journal, run_id, "stopped by `orchestrate down`")
    still = wait_released(journal, run_id, timeout_s=timeout_s)
    if still is not None:
        raise RunBusy(
            f"run {run_id} is still held by {still.describe()} after {timeout_s:.0f}s; "
            f"it was asked to stop. Try again, or give it longer: orchestrate down {run_id} "
            "--wait 900"
        )
    return f"asked the live orchestrator ({current.describe()}) to stop; it cleaned up"


class RunLease:
    """This process's hold on one run; ``take`` it, ``watch`` it, ``release`` it."""

    def __init__(self, journal: Journal, run_id: str) -> None:
        self.journal, self.run_id = journal, run_id
        self.pid = os.getpid()
        self._start = proc_start(self.pid)
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def take(cls, journal: Journal, run_id: str) -> RunLease:
        """Rules 1 and 4. Raises ``RunBusy`` if a live orchestrator holds the run."""
        lease = cls(journal, run_id)
        now = time.time()
        current = holder(journal, run_id)
        if current is not None and current.live(now):
            raise RunBusy(
                f"run {run_id} is still running under {current.describe()} "
                f"(last heartbeat {now - current.beat:.0f}s ago); wait for it, or stop it with: "
                f"orchestrate down {run_id}"
            )
        try:
            with journal._tx() as db:
                if current is not None:  # lapsed: take it over, only if it is still that one
                    db.execute(
                        "DELETE FROM leases WHERE run_id=? AND pid=? AND taken_at=?",
                        (run_id, current.pid, current.taken_at),
                    )
                db.execute(
                    "INSERT INTO leases VALUES (?,?,?,?,?,?,NULL)",
                    (run_id, lease.pid, socket.gethostname(), lease._start, now, now),
                )
        except sqlite3.IntegrityError as exc:
            raise RunBusy(f"run {run_id} was just taken by another orchestrator") from exc
        return lease

    def watch(self, on_stop: Callable[[str], None]) -> None:
        """Beat in a daemon thread; call ``on_stop(reason)`` once if ``down`` asks us to stop."""

        def beat() -> None:
            told = False
            while not self._done.wait(BEAT_S):
                try:
                    with self.journal._tx() as db:
                        db.execute(
                            "UPDATE leases SET beat=? WHERE run_id=? AND pid=?",
                            (time.time(), self.run_id, self.pid),
                        )
                        row = db.execute(
                            "SELECT stop_requested FROM leases WHERE run_id=? AND pid=?",
                            (self.run_id, self.pid),
                        ).fetchone()
                except sqlite3.Error:
                    continue  # a busy journal: beat again next time
                if row is not None and row[0] and not told:
                    told = True
                    on_stop(str(row[0]))

        self._thread = threading.Thread(target=beat, name=f"lease-{self.run_id}", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop beating and let go (only our own row)."""
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=BEAT_S + 1)
        with self.journal._tx() as db:
            db.execute("DELETE FROM leases WHERE run_id=? AND pid=?", (self.run_id, self.pid))
