"""``attach RUN``: adopt a run whose orchestrator died while its machines and trainers live on.

Why: a laptop that sleeps, a closed terminal or a ``kill -9`` ends the orchestrator, not the
run: its trainers run detached and the journal names every machine and job. ``attach``
finishes such a run as if nothing had happened (``orchestrator.reattach``): the same machines
(same tokens, pinned keys), running trainers followed, finished ones fetched, the rest run,
then the report and teardown. It is ``run FILE --resume RUN`` with the file the run was
started from, refused where there is nothing to adopt: a run that ended, or one whose
orchestrator is alive.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from infra.registry import LocalConfig
from orchestrator.cli.run import cmd_run, run_args
from orchestrator.errors import RunBusy, UnknownRun, UsageError
from orchestrator.lease import holder
from orchestrator.specfile import load_experiment
from orchestrator.state import RUN_ACTIVE, Journal


def cmd_attach(args: argparse.Namespace) -> int:
    """``attach RUN``: checks that there is something to adopt (a run not ended, its lease
    lapsed, its file still there), then resumes it with the file it was started from."""
    journal = Journal.in_dir(args.state_dir)
    row = journal.run(args.run)
    if row is None:
        raise UnknownRun(f"no run {args.run!r} in {journal.path}; see `orchestrate status`")
    current = holder(journal, args.run)
    if current is not None and current.live(time.time()):
        raise RunBusy(
            f"run {args.run} is live: its orchestrator ({current.describe()}) is running it, "
            f"so there is nothing to attach to; follow it with: orchestrate logs {args.run} -f"
        )
    if row.status not in RUN_ACTIVE:
        raise UsageError(
            f"run {args.run} has ended ({row.status}), so there is nothing to attach to; its "
            f"results are in {Path(row.runs_dir) / args.run}. To run what did not finish: "
            f"orchestrate run {row.spec_path} --resume {args.run}"
        )
    spec = Path(row.spec_path)
    if not spec.is_file():
        raise UsageError(
            f"run {args.run} was started from {spec}, which is gone; attach needs it to know "
            f"the run's tasks. Put it back, or stop the run with: orchestrate down {args.run}"
        )
    exp = load_experiment(spec)
    resumed = run_args(
        str(spec),
        state_dir=args.state_dir,
        runs_dir=Path(row.runs_dir),
        resume=args.run,
        json=args.json,
        local=row.provider == LocalConfig.name and exp.provider != LocalConfig.name,  # --local
        data_dir=args.data_dir,
    )
    return cmd_run(resumed)


def add_attach_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``attach`` (kept beside its command, like the other verb groups)."""
    p = sub.add_parser(
        "attach",
        parents=[common],
        help="finish a run whose orchestrator died (its machines and trainers live on)",
    )
    p.add_argument("run", help="a run id (see `orchestrate status`)")
    p.add_argument("--data-dir", help="MNIST directory passed to the trainers it starts")
    p.set_defaults(func=cmd_attach)
