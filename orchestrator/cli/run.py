"""``plan`` and ``run``: the command line over ``orchestrator.runner``.

This module turns arguments into ``RunOptions``, shows notes, the live view and the summary;
planning, running and how a run's end maps to an exit code live in the runner.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console

from orchestrator.events import Reporter
from orchestrator.runner import (
    PlannedRun,
    RunOptions,
    git_revision_env,
    plan_experiment,
    run_experiment,
)
from orchestrator.summary import RunSummary
from orchestrator.ui import JsonReporter, RichReporter, render_plan, render_summary
from orchestrator.ui_lines import LineReporter
from orchestrator.ui_tables import print_path

__all__ = ["cmd_plan", "cmd_run", "console", "execute_run", "git_revision_env", "run_args"]


def console() -> Console:
    """The one rich console setup the CLI prints with (no syntax highlighting of output)."""
    return Console(highlight=False)


def options_from(args: argparse.Namespace) -> RunOptions:
    """The runner's options from ``plan``/``run``/``attach`` arguments."""
    return RunOptions(
        state_dir=Path(args.state_dir),
        runs_dir=Path(getattr(args, "runs_dir", None) or "runs"),
        local=bool(getattr(args, "local", False)),
        data_dir=getattr(args, "data_dir", None),
        schedule=getattr(args, "schedule_name", None),
        resume=getattr(args, "resume", None),
    )


def _show_notes(planned: PlannedRun) -> None:
    for line in planned.notes:
        print(line, file=sys.stderr)


def cmd_plan(args: argparse.Namespace) -> int:
    """``plan FILE``: what would run, where, for how much (``--check-aws`` also asks AWS)."""
    planned = plan_experiment(Path(args.file), options_from(args))
    _show_notes(planned)
    if getattr(args, "check_aws", False):
        from orchestrator.cli.cloud import cmd_check_aws

        render_plan(planned.plan, console())
        return cmd_check_aws(args)
    if args.json:
        print(json.dumps(planned.plan.to_json(), indent=2, default=str))
    else:
        render_plan(planned.plan, console())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """``run FILE``: the run's end is an exit code through the runner's errors (0 = done)."""
    execute_run(args)
    return 0


def execute_run(args: argparse.Namespace) -> RunSummary | None:
    """Plan and run ``args.file`` (or resume ``args.resume``); None for ``--dry-run``.

    Raises the runner's ``TaskFailed``/``RunCapped``/``RunInterrupted``/``MachinesUnavailable``
    once the summary has been shown.
    """
    options = options_from(args)
    planned = plan_experiment(Path(args.file), options, for_run=not args.dry_run)
    _show_notes(planned)
    out = console()
    if args.dry_run:
        if args.json:
            print(json.dumps(planned.plan.to_json(), indent=2, default=str))
        else:
            render_plan(planned.plan, out)
        return None
    screen: Reporter = JsonReporter() if args.json else RichReporter(out)
    if not args.json and not out.is_terminal:
        screen = LineReporter(sys.stdout)  # piped: timestamped lines, not live widgets

    def show(summary: RunSummary, report_files: list[str]) -> None:
        if args.json:
            print(json.dumps({"event": "summary", **summary.to_json(), "report": report_files}))
            return
        render_summary(summary, out)
        if report_files:
            print_path(out, "report (and .html, .csv, .json beside it):", report_files[0])

    def tell(note: str) -> None:
        print(f"\n{note}", file=sys.stderr, flush=True)

    return run_experiment(planned, options, reporter=screen, on_signal=tell, on_finished=show)


def run_args(
    file: str, *, state_dir: Path, runs_dir: Path, **overrides: object
) -> argparse.Namespace:
    """The Namespace ``execute_run`` expects, for CLI verbs that run a file (``attach``)."""
    values: dict[str, object] = {
        "file": file,
        "state_dir": state_dir,
        "runs_dir": runs_dir,
        "local": False,
        "dry_run": False,
        "resume": None,
        "json": False,
        "data_dir": None,
        "schedule_name": None,
    }
    values.update(overrides)
    return argparse.Namespace(**values)
