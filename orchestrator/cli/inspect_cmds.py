"""``status``, ``logs`` and ``down``: looking at runs, and finishing them, from the journal."""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import time
from pathlib import Path

from orchestrator.cli.run import console
from orchestrator.errors import UnknownRun, UsageError
from orchestrator.lease import RunLease, holder, stop_live_run
from orchestrator.paths import RunPaths
from orchestrator.state import MACHINE_HELD, RUN_ACTIVE, Journal, RunStatus, TaskStatus
from orchestrator.summary import summarize
from orchestrator.ui_tables import RunLine, render_runs, render_summary


def cmd_status(args: argparse.Namespace) -> int:
    """Runs in the journal (or one run's tasks), newest first."""
    journal = Journal.in_dir(args.state_dir)
    out = console()
    if args.run:
        if journal.run(args.run) is None:
            raise UnknownRun(f"no run {args.run!r}; see `orchestrate status`")
        summary = summarize(journal, args.run)
        if args.json:
            print(json.dumps(summary.to_json(), indent=2))
        else:
            render_summary(summary, out)
        return 0
    runs = journal.runs(limit=args.limit)
    alive = {r.id: _orchestrator_alive(journal, r.id) for r in runs if r.status in RUN_ACTIVE}
    if args.json:
        rows_json = [{**r.__dict__, "orchestrator_alive": alive.get(r.id)} for r in runs]
        print(json.dumps(rows_json, indent=2))
        return 0
    rows = []
    for r in runs:
        tasks = journal.tasks(r.id)
        skipped = sum(1 for t in tasks if t.status == TaskStatus.SKIPPED)
        rows.append(
            RunLine(
                run_id=r.id,
                status=r.status if alive.get(r.id, True) else f"{r.status}, orchestrator gone",
                provider=r.provider,
                created_at=r.created_at,
                done=sum(1 for t in tasks if t.status == TaskStatus.DONE),
                to_run=len(tasks) - skipped,
                skipped=skipped,
                held=sum(1 for m in journal.machines(r.id) if m.status in MACHINE_HELD),
            )
        )
    render_runs(rows, out, journal=str(journal.path))
    if not all(alive.values()):
        out.print("orchestrator gone: `orchestrate attach RUN` finishes the run", style="dim")
    return 0


def _orchestrator_alive(journal: Journal, run_id: str) -> bool:
    """Whether a live orchestrator holds the run (its lease): a running run without one was
    orphaned by a crash, and ``attach`` can finish it."""
    current = holder(journal, run_id)
    return current is not None and current.live(time.time())


def cmd_logs(args: argparse.Namespace) -> int:
    """A run's task logs, prefixed by task; ``-f`` follows until the run ends."""
    journal = Journal.in_dir(args.state_dir)
    row = journal.run(args.run)
    if row is None:
        raise UnknownRun(f"no run {args.run!r}; see `orchestrate status`")
    paths = RunPaths(Path(row.runs_dir) / args.run)
    known = [t.task_id for t in journal.tasks(args.run)]
    if args.task and args.task not in known:
        close = difflib.get_close_matches(args.task, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UsageError(
            f"run {args.run} has no task {args.task!r}{hint} (see `status {args.run}`)"
        )
    task_ids = [args.task] if args.task else known
    offsets = dict.fromkeys(task_ids, 0)
    while True:
        for tid in task_ids:
            log = paths.task_log(tid)
            if not log.exists():
                continue
            with open(log, encoding="utf-8", errors="replace") as fh:
                fh.seek(offsets[tid])
                text = fh.read()
                offsets[tid] = fh.tell()
            for line in text.splitlines():
                sys.stdout.write(f"{tid} | {line}\n" if len(task_ids) > 1 else line + "\n")
        sys.stdout.flush()
        run = journal.run(args.run)
        if not args.follow or run is None or run.status != RunStatus.RUNNING:
            return 0
        time.sleep(0.5)


def cmd_down(args: argparse.Namespace) -> int:
    """Stop a run's trainers and release its machines, from the journal alone."""
    from orchestrator.offers import provider_for_run
    from orchestrator.teardown import down_run

    journal = Journal.in_dir(args.state_dir)
    if journal.run(args.run) is None:
        raise UnknownRun(f"no run {args.run!r}; see `orchestrate status`")
    stopped_live = stop_live_run(journal, args.run, timeout_s=getattr(args, "wait", 300.0))
    lease = RunLease.take(journal, args.run)  # no --resume may start while we tear down
    try:
        receipt = down_run(
            journal,
            args.run,
            provider_for=lambda run: provider_for_run(run, state_dir=args.state_dir),
        )
    finally:
        lease.release()
    if stopped_live:
        receipt["actions"].insert(0, stopped_live)
    if args.json:
        print(json.dumps(receipt, indent=2))
    else:
        for line in receipt["actions"]:
            print(line)
        print(f"run {args.run}: {receipt['status']}")
    return 0
