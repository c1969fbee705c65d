"""The ``orchestrate`` command: parse -> call -> render; exceptions -> exit codes.

Exit codes: 0 ok · 1 a task failed · 2 bad input (nothing launched) · 3 capped by the budget ·
4 a provider/transport fault · 70 a bug (traceback) · 130 interrupted (after cleanup).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import traceback
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from rich.console import Console

from infra.errors import OrchestrateError
from infra.provider import Provider
from orchestrator.engine import Engine, EngineConfig
from orchestrator.errors import RunInterrupted, UnknownRun
from orchestrator.events import TeeReporter
from orchestrator.paths import RunPaths, default_state_dir
from orchestrator.plan import Plan, make_plan
from orchestrator.providers import build_provider
from orchestrator.specfile import load_experiment
from orchestrator.state import Journal
from orchestrator.summary import summarize
from orchestrator.ui import FileReporter, JsonReporter, RichReporter, render_plan, render_summary

EXIT_BUG = 70


def _console() -> Console:
    return Console(stderr=False, highlight=False)


def new_run_id(name: str, now: datetime) -> str:
    return f"{name}-{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"


def _trainers_src() -> Path:
    """Where the trainers package lives, to ship it; found by name, never imported here.

    ``ORCHESTRATE_TRAINERS_SRC`` points elsewhere (tests ship a stand-in; developers a branch).
    """
    import importlib.util
    import os

    if os.environ.get("ORCHESTRATE_TRAINERS_SRC"):
        return Path(os.environ["ORCHESTRATE_TRAINERS_SRC"])

    spec = importlib.util.find_spec("trainers")
    if spec is None or not spec.submodule_search_locations:
        raise OrchestrateError("the trainers package is not installed next to orchestrate")
    return Path(list(spec.submodule_search_locations)[0])


def _build_plan(args: argparse.Namespace, journal: Journal, run_id: str) -> tuple[Plan, Provider]:
    exp = load_experiment(Path(args.file))
    now = datetime.now(UTC)
    setup = build_provider(
        exp, run_id=run_id, state_dir=args.state_dir, local=getattr(args, "local", False), now=now
    )
    plan = make_plan(
        exp,
        spec_path=args.file,
        run_id=run_id,
        provider=setup.provider,
        offers=setup.offers,
        history=journal.past_wall_s,
        now=now,
    )
    return plan, setup.provider


# ---------------------------------------------------------------------- verbs
def cmd_plan(args: argparse.Namespace) -> int:
    journal = Journal.in_dir(args.state_dir)
    plan, _ = _build_plan(args, journal, run_id="(plan)")
    if args.json:
        print(json.dumps(plan.to_json(), indent=2, default=str))
    else:
        render_plan(plan, _console())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    journal = Journal.in_dir(args.state_dir)
    if args.resume:
        row = journal.run(args.resume)
        if row is None:
            raise UnknownRun(f"no run {args.resume!r} in {journal.path}; see `orchestrate status`")
        run_id = args.resume
        args.runs_dir = Path(row.runs_dir)
    else:
        run_id = new_run_id(load_experiment(Path(args.file)).name, datetime.now(UTC))
    plan, provider = _build_plan(args, journal, run_id)
    console = _console()
    if args.dry_run:
        if args.json:
            print(json.dumps(plan.to_json(), indent=2, default=str))
        else:
            render_plan(plan, console)
        return 0
    paths = RunPaths(Path(args.runs_dir) / run_id)
    file_reporter = FileReporter(paths.run_log)
    screen = JsonReporter() if args.json else RichReporter(console)
    engine = Engine(
        provider=provider,
        journal=journal,
        reporter=TeeReporter(file_reporter, screen),
        config=EngineConfig(
            runs_root=Path(args.runs_dir),
            trainers_src=_trainers_src(),
            data_dir=args.data_dir or plan.experiment.data_dir,
        ),
    )
    previous = _install_signal_handlers(engine)
    try:
        summary = engine.run(plan, resume=bool(args.resume))
    finally:
        _restore_signal_handlers(previous)
        file_reporter.close()
    if args.json:
        print(json.dumps({"event": "summary", **summary.to_json()}))
    else:
        render_summary(summary, console)
    if summary.status == "interrupted":
        raise RunInterrupted(run_id, args.file)
    return {"done": 0, "failed": 1, "capped": 3}.get(summary.status, 1)


def _install_signal_handlers(engine: Engine) -> dict[int, object]:
    def handler(signum: int, frame: FrameType | None) -> None:
        engine.request_stop(f"interrupted by {signal.Signals(signum).name}")

    previous: dict[int, object] = {}
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        previous[sig] = signal.signal(sig, handler)
    return previous


def _restore_signal_handlers(previous: dict[int, object]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)  # type: ignore[arg-type]


def cmd_status(args: argparse.Namespace) -> int:
    journal = Journal.in_dir(args.state_dir)
    console = _console()
    if args.run:
        if journal.run(args.run) is None:
            raise UnknownRun(f"no run {args.run!r}; see `orchestrate status`")
        summary = summarize(journal, args.run)
        if args.json:
            print(json.dumps(summary.to_json(), indent=2))
        else:
            render_summary(summary, console)
        return 0
    runs = journal.runs(limit=args.limit)
    if args.json:
        print(json.dumps([r.__dict__ for r in runs], indent=2))
        return 0
    from rich.table import Table

    table = Table(title=f"runs ({journal.path})")
    for col in ("run", "status", "provider", "started", "tasks", "machines held"):
        table.add_column(col)
    for r in runs:
        tasks = journal.tasks(r.id)
        done = sum(1 for t in tasks if t.status == "done")
        held = sum(1 for m in journal.machines(r.id) if m.status in ("requested", "running"))
        started = datetime.fromtimestamp(r.created_at, UTC).strftime("%Y-%m-%d %H:%M")
        table.add_row(r.id, r.status, r.provider, started, f"{done}/{len(tasks)}", str(held))
    console.print(table)
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    journal = Journal.in_dir(args.state_dir)
    row = journal.run(args.run)
    if row is None:
        raise UnknownRun(f"no run {args.run!r}; see `orchestrate status`")
    paths = RunPaths(Path(row.runs_dir) / args.run)
    task_ids = [args.task] if args.task else [t.task_id for t in journal.tasks(args.run)]
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
        if not args.follow or run is None or run.status not in ("running",):
            return 0
        time.sleep(0.5)


def cmd_down(args: argparse.Namespace) -> int:
    """Stop a run's trainers and release its machines, from the journal alone."""
    from orchestrator.teardown import down_run

    journal = Journal.in_dir(args.state_dir)
    if journal.run(args.run) is None:
        raise UnknownRun(f"no run {args.run!r}; see `orchestrate status`")
    receipt = down_run(journal, args.run, state_dir=args.state_dir)
    if args.json:
        print(json.dumps(receipt, indent=2))
    else:
        for line in receipt["actions"]:
            print(line)
        print(f"run {args.run}: {receipt['status']}")
    return 0


# ---------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="journal and workspaces (default: $ORCHESTRATE_STATE_DIR, else "
        "~/.local/state/orchestrate)",
    )
    common.add_argument("--json", action="store_true", help="machine-readable output")
    common.add_argument("--debug", action="store_true", help="tracebacks for every error")

    parser = argparse.ArgumentParser(
        prog="orchestrate",
        description="Run ML experiments on local, SSH or EC2 machines without surprises.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("plan", parents=[common], help="what would run, where, for how much")
    p.add_argument("file")
    p.add_argument("--local", action="store_true", help="plan for this machine instead")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("run", parents=[common], help="run an experiment")
    p.add_argument("file")
    p.add_argument(
        "--local", action="store_true", help="run on this machine, whatever the file says"
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan; launch nothing")
    p.add_argument("--resume", metavar="RUN", help="continue RUN, skipping finished tasks")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where results land")
    p.add_argument("--data-dir", help="MNIST directory passed to the trainers")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("status", parents=[common], help="runs in the journal, or one run")
    p.add_argument("run", nargs="?")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("logs", parents=[common], help="a run's task logs")
    p.add_argument("run")
    p.add_argument("task", nargs="?")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing while it runs")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("down", parents=[common], help="stop a run and release its machines")
    p.add_argument("run")
    p.set_defaults(func=cmd_down)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.state_dir is None:
        args.state_dir = default_state_dir()
    try:
        code: int = args.func(args)
        return code
    except OrchestrateError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}" if exc.exit_code != 130 else str(exc), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print(
            "orchestrate hit a bug (exit 70); the traceback above helps a report.", file=sys.stderr
        )
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
