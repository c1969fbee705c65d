"""``plan`` and ``run``: an experiment file in, a plan or a finished run out."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from rich.console import Console

from infra.errors import OrchestrateError
from infra.prices import load_catalog
from infra.provider import Provider
from infra.registry import config_to_json
from orchestrator.cost import CostGuard
from orchestrator.engine import Engine, EngineConfig
from orchestrator.errors import RunInterrupted, UnknownRun
from orchestrator.events import Reporter, TeeReporter
from orchestrator.lease import RunLease
from orchestrator.offers import OfflinePlanning, ProviderSetup, build_provider
from orchestrator.paths import RunPaths, usable_dir
from orchestrator.plan import Plan, make_plan
from orchestrator.resources import TypeChoice, image_mismatches, resolve_machines, unpriced
from orchestrator.specfile import load_experiment, located
from orchestrator.state import Journal
from orchestrator.summary import RunSummary
from orchestrator.ui import FileReporter, JsonReporter, RichReporter, render_plan, render_summary
from orchestrator.ui_lines import LineReporter
from orchestrator.ui_tables import print_path
from orchestrator.workdir import WorkdirSelection, select_workdir


def console() -> Console:
    return Console(highlight=False)


def new_run_id(name: str, now: datetime) -> str:
    return f"{name}-{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"


def _trainers_src() -> Path:
    """Where the trainers package lives, to ship it; found by name, never imported here.

    ``ORCHESTRATE_TRAINERS_SRC`` points elsewhere (tests ship a stand-in; developers a branch).
    """
    import importlib.util

    if os.environ.get("ORCHESTRATE_TRAINERS_SRC"):
        return Path(os.environ["ORCHESTRATE_TRAINERS_SRC"])

    spec = importlib.util.find_spec("trainers")
    if spec is None or not spec.submodule_search_locations:
        raise OrchestrateError("the trainers package is not installed next to orchestrate")
    return Path(list(spec.submodule_search_locations)[0])


def git_revision_env(src: Path) -> dict[str, str]:
    """The commit of the code about to be shipped, for its manifest.json: the copy on a
    machine has no .git of its own (tasks get ``$ORCHESTRATE_GIT_COMMIT``/``_DIRTY``)."""
    import subprocess

    def git(*argv: str) -> str | None:
        try:
            proc = subprocess.run(
                ["git", "-C", str(src), *argv], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {}
    status = git("status", "--porcelain", "--", ".")
    dirty = {} if status is None else {"ORCHESTRATE_GIT_DIRTY": "1" if status else "0"}
    return {"ORCHESTRATE_GIT_COMMIT": commit, **dirty}


def build_plan(
    args: argparse.Namespace, journal: Journal, run_id: str, *, for_run: bool = False
) -> tuple[Plan, ProviderSetup]:
    exp = load_experiment(Path(args.file))
    now = datetime.now(UTC)
    catalog = load_catalog(args.state_dir)
    choices: tuple[TypeChoice, ...] = ()
    if exp.provider == "aws" and not getattr(args, "local", False):
        if exp.region is None:  # the region the launch goes to: the chain's, priced as such
            from infra.aws.session import configured_region

            exp = exp.model_copy(update={"region": configured_region(exp.profile)})
        exp, choices = resolve_machines(exp, catalog, spec_path=args.file)
        # No launch without a price (the cap would be off), nor on hardware its image cannot use.
        if found := unpriced(exp, catalog) + image_mismatches(exp):
            raise located(Path(args.file), found)
    setup = build_provider(
        exp,
        run_id=run_id,
        state_dir=args.state_dir,
        local=getattr(args, "local", False),
        now=now,
        prices=catalog,
    )
    warning = catalog.staleness_warning(now.date()) if exp.provider == "aws" else None
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    if exp.provider == "ssh" and not getattr(args, "local", False):
        from orchestrator.ssh_inventory import host_specs, unpinned_hosts

        if found := unpinned_hosts(exp, host_specs(exp)):  # refused at connect: say it now
            raise located(Path(args.file), found)
    provider: Provider = setup.provider if for_run else OfflinePlanning(setup.provider)
    plan = make_plan(
        exp,
        spec_path=args.file,
        run_id=run_id,
        provider=provider,
        offers=setup.offers,
        history=journal.past_wall_s,
        now=now,
        prices=None if exp.provider == "local" or getattr(args, "local", False) else catalog,
    )
    plan = replace(plan, type_choices=choices)
    if isinstance(provider, OfflinePlanning) and provider.note:
        print(f"note: {provider.note}", file=sys.stderr)
    if any(pt.task.is_script for pt in plan.tasks):
        root = Path(args.file).resolve().parent / (exp.workdir or ".")
        selection = select_workdir(root, ship_secrets=exp.ship_secrets, spec_file=args.file)
        plan = replace(plan, workdir=_without_runs(selection, getattr(args, "runs_dir", None)))
    return plan, setup


def _without_runs(selection: WorkdirSelection, runs_dir: Path | None) -> WorkdirSelection:
    """Results never travel back out: the runs folder (``--runs-dir``, made when the run
    starts, so after the workdir was listed) is excluded when it lies inside the workdir."""
    runs = Path(runs_dir or "runs").resolve()
    if not runs.is_relative_to(selection.root) or runs == selection.root:
        return selection
    rel = runs.relative_to(selection.root).as_posix()
    files = tuple(f for f in selection.files if not f.startswith(rel + "/"))
    return replace(selection, files=files, exclude=(*selection.exclude, rel, rel + "/*"))


def cmd_plan(args: argparse.Namespace) -> int:
    journal = Journal.in_dir(args.state_dir)
    plan, _ = build_plan(args, journal, run_id="(plan)")
    if getattr(args, "check_aws", False):
        from orchestrator.cli.cloud import cmd_check_aws

        render_plan(plan, console())
        return cmd_check_aws(args)
    if args.json:
        print(json.dumps(plan.to_json(), indent=2, default=str))
    else:
        render_plan(plan, console())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    summary = execute_run(args)
    if summary is None:  # --dry-run
        return 0
    if summary.status == "interrupted":
        raise RunInterrupted(summary.run_id, args.file)
    if summary.status == "failed" and _unreachable_only(Journal.in_dir(args.state_dir), summary):
        return 4  # as documented: a machine could not be acquired or reached
    return {"done": 0, "failed": 1, "capped": 3}.get(summary.status, 1)


def _unreachable_only(journal: Journal, summary: RunSummary) -> bool:
    """Whether the run failed only for want of machines: a machine failed (unreachable, host
    key refused, no capacity) and no failed task ever started."""
    failed = [t for t in journal.tasks(summary.run_id) if t.status == "failed"]
    lost = any(m.status == "failed" for m in journal.machines(summary.run_id))
    return lost and bool(failed) and all(t.job is None for t in failed)


def execute_run(args: argparse.Namespace) -> RunSummary | None:
    """Plan and run ``args.file`` (or resume ``args.resume``); None for ``--dry-run``."""
    journal = Journal.in_dir(args.state_dir)
    if args.resume:
        row = journal.run(args.resume)
        if row is None:
            raise UnknownRun(f"no run {args.resume!r} in {journal.path}; see `orchestrate status`")
        run_id = args.resume
        args.runs_dir = Path(row.runs_dir)
    else:
        run_id = new_run_id(load_experiment(Path(args.file)).name, datetime.now(UTC))
    plan, setup = build_plan(args, journal, run_id, for_run=not args.dry_run)
    out = console()
    if args.dry_run:
        if args.json:
            print(json.dumps(plan.to_json(), indent=2, default=str))
        else:
            render_plan(plan, out)
        return None
    paths = RunPaths(usable_dir(Path(args.runs_dir) / run_id, "runs directory"))
    lease = RunLease.take(journal, run_id)  # RunBusy while another orchestrator runs it
    file_reporter = FileReporter(paths.run_log)
    screen: Reporter = JsonReporter() if args.json else RichReporter(out)
    if not args.json and not out.is_terminal:
        screen = LineReporter(sys.stdout)  # piped: timestamped lines, not live widgets
    engine = Engine(
        provider=setup.provider,
        journal=journal,
        reporter=TeeReporter(file_reporter, screen),
        config=EngineConfig(
            runs_root=Path(args.runs_dir),
            trainers_src=_trainers_src(),
            code_env=git_revision_env(_trainers_src()),
            provider_config=config_to_json(setup.config),
            data_dir=args.data_dir or plan.experiment.data_dir,
            schedule=getattr(args, "schedule_name", None),
            workdir=plan.workdir,
        ),
        guard=CostGuard(journal, run_id, cap_usd=plan.experiment.budget.max_usd),
    )
    # Held for the whole run: a second `--resume` is refused, `down` asks us to stop.
    lease.watch(on_stop=lambda why: engine.request_stop(f"interrupted: {why}"))
    previous = _install_signal_handlers(engine)
    try:
        summary = engine.run(plan, resume=bool(args.resume))
    finally:
        _restore_signal_handlers(previous)
        file_reporter.close()
        lease.release()
    report_files = _write_report(paths.root, journal)
    if args.json:
        print(json.dumps({"event": "summary", **summary.to_json(), "report": report_files}))
    else:
        render_summary(summary, out)
        if report_files:
            print_path(out, "report (and .html, .csv, .json beside it):", report_files[0])
    return summary


def _write_report(run_dir: Path, journal: Journal) -> list[str]:
    """The report's files for a finished run; a failure here never fails the run."""
    from orchestrator.report import build_report
    from orchestrator.report.render import write_outputs

    try:
        report = build_report(run_dir, journal=journal, plots_dir=run_dir / "report")
        return [str(p) for p in write_outputs(report, run_dir / "report", html=True)]
    except Exception as exc:  # noqa: BLE001 - the results are safe; say why the report is not
        (run_dir / "report-error.txt").write_text(f"{type(exc).__name__}: {exc}\n")
        return []


def run_args(
    file: str, *, state_dir: Path, runs_dir: Path, **overrides: object
) -> argparse.Namespace:
    """The Namespace ``execute_run`` expects, for callers that are not the command line."""
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


def _install_signal_handlers(engine: Engine) -> dict[int, object]:
    def handler(signum: int, frame: FrameType | None) -> None:
        # Never exit from here: cleanup (stop, fetch, release) must finish even on a second
        # Ctrl-C, or machines would keep billing. Say so, once per signal.
        first = not engine.stopping
        engine.request_stop(f"interrupted by {signal.Signals(signum).name}")
        grace = engine.config.stop_grace_s
        note = (
            f"stopping: trainers get {grace:.0f}s to save, results are fetched, machines released"
            if first
            else "still cleaning up so nothing is left running or billing; please wait"
        )
        print(f"\n{note}", file=sys.stderr, flush=True)

    previous: dict[int, object] = {}
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        previous[sig] = signal.signal(sig, handler)
    return previous


def _restore_signal_handlers(previous: dict[int, object]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)  # type: ignore[arg-type]
