"""The spend guard and the budget arithmetic of the three-layer cap.

Layer 1 is the plan (``plan.make_plan`` refuses a forecast over ``budget.max_usd``); layer 2 is
``CostGuard``, which the engine asks between polls; layer 3 is each instance's own deadline,
``instance_deadline``, rendered into its user-data as a shutdown timer so spend stays bounded if
this process dies. AWS has no API a test can call for prices (moto has no Pricing API), so
prices come through the small ``infra.prices.PriceSource`` seam.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from infra.clock import Clock, SystemClock
from orchestrator.state import Journal


class CostGuard:
    """Layer 2: spend so far = sum over machines of price x time held; stop at the cap.

    The guard reads the journal (acquired/released times, hourly price), so it counts every
    machine the run holds, including ones still booting. It records each machine's spend as it
    goes, which is the ledger ``orchestrate cost`` reads.
    """

    def __init__(
        self, journal: Journal, run_id: str, *, cap_usd: float | None, clock: Clock | None = None
    ) -> None:
        self.journal = journal
        self.run_id = run_id
        self.cap_usd = cap_usd
        self.clock = clock or SystemClock()

    def spend(self) -> float:
        """Spend so far, recording each machine's share in the ledger as it goes."""
        now = self.clock.now().timestamp()
        total = 0.0
        for m in self.journal.machines(self.run_id):
            if m.acquired_at is None:
                continue
            end = m.released_at if m.released_at is not None else now
            usd = max(end - m.acquired_at, 0.0) / 3600 * m.hourly_usd
            self.journal.machine_spend(m.token, usd)
            total += usd
        return total

    def check(self) -> str | None:
        """None while under the cap; else the reason to stop (the engine marks the run capped)."""
        spent = self.spend()
        if self.cap_usd is not None and spent >= self.cap_usd:
            return f"spend ${spent:.4f} reached the cap ${self.cap_usd:.2f}"
        return None


def instance_deadline(
    *, now: datetime, max_hours: float, cap_usd: float | None, spent_usd: float, hourly_usd: float
) -> datetime:
    """Layer 3: when a machine must be gone, from the hour cap and the budget left.

    A machine alone may burn the whole remaining budget, so its own timer is the sooner of
    ``max_hours`` and ``remaining / its hourly price``. The guard (layer 2) handles the sum.
    """
    hours = max_hours
    if cap_usd is not None and hourly_usd > 0:
        hours = min(hours, max(cap_usd - spent_usd, 0.0) / hourly_usd)
    return now + timedelta(hours=hours)


def attempt_costs(journal: Journal, run_id: str) -> dict[tuple[str, int], float]:
    """What each try of each task cost, keyed ``(task_id, n)``: its machine's hourly price for
    the attempt's wall time (start to end where the engine measured none), so the report and
    the ledger can price the work that interruptions threw away. Attempts still running are
    left out: their cost is not known yet."""
    price = {m.token: m.hourly_usd or 0.0 for m in journal.machines(run_id)}
    out: dict[tuple[str, int], float] = {}
    for a in journal.attempts(run_id):
        seconds = a.wall_s
        if seconds is None and a.ended_at is not None:
            seconds = max(a.ended_at - a.started_at, 0.0)
        if seconds is not None:
            out[(a.task_id, a.n)] = seconds / 3600 * price.get(a.machine_token, 0.0)
    return out


def ledger(
    journal: Journal, *, run_id: str | None = None, since: datetime | None = None
) -> list[dict[str, Any]]:
    """Forecast vs actual spend per run (and per machine), newest first, with the run's task
    attempts and what the interrupted ones (preempted, lost) cost: the price of retries."""
    rows = []
    for run in journal.runs(limit=10_000):
        if run_id and run.id != run_id:
            continue
        if since and datetime.fromtimestamp(run.created_at, UTC) < since:
            continue
        machines = journal.machines(run.id)
        attempts = journal.attempts(run.id)
        costs = attempt_costs(journal, run.id)
        retries = sum(costs.get((a.task_id, a.n), 0.0) for a in attempts if a.interrupted)
        rows.append(
            {
                "run": run.id,
                "status": run.status,
                "forecast_usd": journal.run_forecast(run.id),
                "actual_usd": round(sum(m.spend_usd or 0.0 for m in machines), 6),
                "attempts": len(attempts),
                "retries_usd": round(retries, 6),  # attempts whose machine went away
                "machines": [
                    {
                        "name": m.name,
                        "instance_type": m.instance_type,
                        "hourly_usd": m.hourly_usd,
                        "spend_usd": round(m.spend_usd or 0.0, 6),
                    }
                    for m in machines
                ],
            }
        )
    return rows
