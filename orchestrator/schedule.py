"""Recurring runs with a period budget: cron expressions (croniter), fired by APScheduler or by
``orchestrate schedule tick`` from system cron.

Policy, the same for both ways of firing:
  1. Missed firings (the scheduler was down) are coalesced: one run for the latest missed time,
     recorded with how many were missed; never a pile-up.
  2. A schedule never overlaps itself: while its previous run is still ``running``, a firing is
     skipped and recorded with that reason. A previous run that is ``running`` but orphaned
     (its orchestrator died: ``lease.orphaned``) would block the schedule forever, so the
     firing attaches to it instead (``orchestrate attach``: its trainers are followed, the
     rest runs) and is recorded ``attached`` with that run's id; no second run starts.
  3. A firing whose forecast would take the calendar month's spend (UTC) over
     ``budget_month_usd`` is skipped and recorded with the figures.
  4. Every decision (ran, attached, skipped, failed to start) is a row in ``schedule_events``.

The schedule definitions and their last firing live in the journal, so a restarted scheduler
catches up from there; APScheduler (memory job store, rebuilt from the journal at start) only
does the waiting, with ``coalesce=True`` and ``max_instances=1`` as a second guard.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from croniter import croniter

from orchestrator.errors import RunBusy, SpecError, SpecIssue
from orchestrator.lease import orphaned
from orchestrator.schedule_store import ScheduleRow, ScheduleStore

Forecast = Callable[[ScheduleRow], float]
StartRun = Callable[[ScheduleRow], str]
AttachRun = Callable[[str], None]  # finish an orphaned run (``attach RUN``), by its id


@dataclass(frozen=True)
class Decision:
    schedule: str
    fire_time: datetime
    outcome: str  # "ran" | "attached" | "skipped" | "error"
    run_id: str | None = None
    reason: str | None = None
    missed: int = 0


def validate_cron(expr: str, where: str = "--cron") -> None:
    """Refuse a cron expression croniter cannot read, as a located spec error."""
    if not croniter.is_valid(expr):
        raise SpecError(
            [
                SpecIssue(
                    where,
                    0,
                    0,
                    "cron",
                    f"{expr!r} is not a cron expression",
                    "five fields: minute hour day-of-month month day-of-week, e.g. '0 3 * * *'",
                )
            ]
        )


def _month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def due_times(row: ScheduleRow, now: datetime) -> list[datetime]:
    """Every firing time after the last one (or the schedule's creation) up to ``now``."""
    since = datetime.fromtimestamp(row.last_fire or row.created_at, UTC)
    it = croniter(row.cron, since)
    times: list[datetime] = []
    while True:
        nxt = it.get_next(datetime)
        if nxt > now:
            return times
        times.append(nxt)
        if len(times) > 10_000:  # a per-minute schedule down for a week; enough to count
            return times


def tick(
    store: ScheduleStore,
    *,
    now: datetime,
    forecast: Forecast,
    start_run: StartRun,
    attach_run: AttachRun | None = None,
    only: str | None = None,
) -> list[Decision]:
    """Fire every schedule that is due at ``now``, following the module's policy; without
    ``attach_run`` an orphaned previous run is skipped like a live one."""
    decisions: list[Decision] = []
    for row in store.all():
        if only and row.name != only:
            continue
        times = due_times(row, now)
        if not times:
            continue
        fire = times[-1]
        missed = len(times) - 1
        store.fired(row.name, fire.timestamp())
        decision = _decide(store, row, fire, missed, now, forecast, start_run, attach_run)
        store.record(
            row.name,
            fire_time=fire.timestamp(),
            outcome=decision.outcome,
            run_id=decision.run_id,
            reason=decision.reason,
        )
        decisions.append(decision)
    return decisions


def _decide(
    store: ScheduleStore,
    row: ScheduleRow,
    fire: datetime,
    missed: int,
    now: datetime,
    forecast: Forecast,
    start_run: StartRun,
    attach_run: AttachRun | None,
) -> Decision:
    note = f"coalesced {missed} missed firing(s)" if missed else None
    active = store.active_run(row.name)
    if active and attach_run is not None and orphaned(store.journal, active, now=time.time()):
        return _attach(row.name, fire, missed, active, attach_run)
    if active:
        return Decision(row.name, fire, "skipped", None, f"previous run {active} still running")
    if row.budget_month_usd is not None:
        spent = store.month_spend(row.name, _month_start(now).timestamp())
        expected = forecast(row)
        if spent + expected > row.budget_month_usd:
            reason = (
                f"would overrun the month's budget: spent ${spent:.2f} + forecast "
                f"${expected:.2f} > ${row.budget_month_usd:.2f}"
            )
            return Decision(row.name, fire, "skipped", None, reason, missed)
    try:
        run_id = start_run(row)
    except Exception as exc:  # a scheduler must outlive one bad firing; the reason is recorded
        return Decision(row.name, fire, "error", None, f"{type(exc).__name__}: {exc}", missed)
    return Decision(row.name, fire, "ran", run_id, note, missed)


def _attach(name: str, fire: datetime, missed: int, run_id: str, attach_run: AttachRun) -> Decision:
    """Policy 2's orphan: finish the previous run rather than skip behind it forever."""
    try:
        attach_run(run_id)
    except RunBusy:  # another scheduler or a user attached first: it is live again
        reason = f"previous run {run_id} still running (attached by another orchestrator)"
        return Decision(name, fire, "skipped", None, reason, missed)
    except Exception as exc:  # as for a start: the scheduler outlives it, the reason is kept
        reason = f"attaching to orphaned run {run_id}: {type(exc).__name__}: {exc}"
        return Decision(name, fire, "error", run_id, reason, missed)
    reason = f"previous run {run_id} was orphaned (its orchestrator died): attached to finish it"
    return Decision(name, fire, "attached", run_id, reason, missed)


def serve(
    store: ScheduleStore,
    *,
    forecast: Forecast,
    start_run: StartRun,
    attach_run: AttachRun,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """Block forever, firing schedules as they come due (``orchestrate scheduler``)."""
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.cron import CronTrigger

    def fire(name: str) -> None:
        tick(
            store,
            now=clock(),
            forecast=forecast,
            start_run=start_run,
            attach_run=attach_run,
            only=name,
        )

    # Catch up after downtime.
    tick(store, now=clock(), forecast=forecast, start_run=start_run, attach_run=attach_run)
    scheduler = BlockingScheduler(timezone=UTC)
    for row in store.all():
        scheduler.add_job(
            fire,
            CronTrigger.from_crontab(row.cron, timezone=UTC),
            args=[row.name],
            id=row.name,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=3600,
        )
    scheduler.start()
