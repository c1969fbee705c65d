"""The run service: an experiment file in, a plan or a finished run out.

The CLI (``plan``, ``run``, ``attach``) and the scheduler both go through here, with typed
``RunOptions`` instead of an ``argparse.Namespace``. Nothing here prints: notes for the user come
back in ``PlannedRun.notes``, progress goes to the caller's ``Reporter``, and a run that did not
end ``done`` raises the error whose exit code says how it ended, after ``on_finished`` has seen
its summary. That mapping (``raise_for_status``) is the one status -> exit code table.

Rules:
  1. ``plan_experiment`` has no side effects: without credentials it plans from the file and
     the price catalog (``OfflinePlanning``); with ``for_run`` it builds the real provider.
  2. ``run_experiment`` holds the run's lease for the whole run, journals the provider config
     (so ``down`` needs no file), writes the report, and always releases the lease.
  3. It raises ``TaskFailed`` (exit 1), ``RunCapped`` (3), ``RunInterrupted`` (130) or
     ``MachinesUnavailable`` (4, no task ever started for want of machines); a ``done`` run
     returns its summary.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from infra.errors import OrchestrateError
from infra.prices import load_catalog
from infra.provider import Provider
from infra.registry import AwsConfig, LocalConfig, SshConfig, config_to_json
from orchestrator.checkpoint_store import checkpoint_store_for
from orchestrator.cost import CostGuard
from orchestrator.engine import Engine, EngineConfig
from orchestrator.errors import (
    MachinesUnavailable,
    RunCapped,
    RunInterrupted,
    TaskFailed,
    UnknownRun,
)
from orchestrator.events import Reporter, TeeReporter
from orchestrator.lease import RunLease
from orchestrator.offers import OfflinePlanning, ProviderSetup, build_provider
from orchestrator.paths import RunPaths, usable_dir
from orchestrator.plan import Plan, make_plan
from orchestrator.resources import TypeChoice, image_mismatches, resolve_machines, unpriced
from orchestrator.specfile import load_experiment, located
from orchestrator.state import Journal, MachineStatus, RunStatus, TaskStatus
from orchestrator.summary import RunSummary
from orchestrator.ui import FileReporter
from orchestrator.workdir import WorkdirSelection, select_workdir

TRAINERS_SRC_ENV = "ORCHESTRATE_TRAINERS_SRC"  # ships another trainers tree (tests, a branch)


@dataclass(frozen=True)
class RunOptions:
    """How to plan and run, the same for the CLI and the scheduler."""

    state_dir: Path
    runs_dir: Path = Path("runs")
    local: bool = False  # run any experiment on this machine (``--local``)
    data_dir: str | None = None  # MNIST directory passed to the trainers
    schedule: str | None = None  # the schedule that fired this run (its period budget)
    resume: str | None = None  # a journalled run id to resume


@dataclass(frozen=True)
class PlannedRun:
    """A plan with the provider that will carry it out, and what the user should be told."""

    plan: Plan
    setup: ProviderSetup
    runs_dir: Path
    notes: tuple[str, ...] = ()  # "warning: ..." / "note: ..." lines, for the caller to show


def new_run_id(name: str, now: datetime) -> str:
    """A run id that sorts by time and never repeats: ``<name>-<YYYYmmdd-HHMMSS>-<4 hex>``."""
    return f"{name}-{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"


def plan_experiment(path: Path, options: RunOptions, *, for_run: bool = False) -> PlannedRun:
    """Plan the experiment at ``path``: tasks placed, launches prepared, cost forecast.

    With ``for_run`` the plan gets a run id (``options.resume``'s, or a new one) and the real
    provider; without, it is ``plan``/``--dry-run``'s, and a provider without credentials
    plans offline.

    Raises:
        SpecError: the file is invalid, a price or an image does not fit, a host is unpinned.
        BudgetError: the forecast is over the cap.
        UnknownRun: ``options.resume`` names no journalled run.
    """
    journal = Journal.in_dir(options.state_dir)
    runs_dir, run_id = options.runs_dir, "(plan)"
    if options.resume:
        row = journal.run(options.resume)
        if row is None:
            raise UnknownRun(
                f"no run {options.resume!r} in {journal.path}; see `orchestrate status`"
            )
        run_id, runs_dir = options.resume, Path(row.runs_dir)
    elif for_run:
        run_id = new_run_id(load_experiment(path).name, datetime.now(UTC))
    return _plan(path, options, journal, run_id, runs_dir, for_run=for_run)


def _plan(
    path: Path, options: RunOptions, journal: Journal, run_id: str, runs_dir: Path, *, for_run: bool
) -> PlannedRun:
    exp = load_experiment(path)
    now = datetime.now(UTC)
    catalog = load_catalog(options.state_dir)
    notes: list[str] = []
    choices: tuple[TypeChoice, ...] = ()
    here = options.local or exp.provider == LocalConfig.name
    if exp.provider == AwsConfig.name and not here:
        if exp.region is None:  # the region the launch goes to: the chain's, priced as such
            from infra.aws.session import configured_region

            exp = exp.model_copy(update={"region": configured_region(exp.profile)})
        exp, choices = resolve_machines(exp, catalog, spec_path=str(path))
        # No launch without a price (the cap would be off), nor on hardware its image cannot use.
        if found := unpriced(exp, catalog) + image_mismatches(exp):
            raise located(path, found)
    setup = build_provider(
        exp,
        run_id=run_id,
        state_dir=options.state_dir,
        local=options.local,
        now=now,
        prices=catalog,
    )
    if exp.provider == AwsConfig.name and (warning := catalog.staleness_warning(now.date())):
        notes.append(f"warning: {warning}")
    if exp.provider == SshConfig.name and not options.local:
        from orchestrator.ssh_inventory import host_specs, unpinned_hosts

        if found := unpinned_hosts(exp, host_specs(exp)):  # refused at connect: say it now
            raise located(path, found)
    provider: Provider = setup.provider if for_run else OfflinePlanning(setup.provider)
    plan = make_plan(
        exp,
        spec_path=str(path),
        run_id=run_id,
        provider=provider,
        offers=setup.offers,
        history=journal.past_wall_s,
        prices=None if here else catalog,
    )
    plan = replace(plan, type_choices=choices)
    if isinstance(provider, OfflinePlanning) and provider.note:
        notes.append(f"note: {provider.note}")
    if any(pt.task.is_script for pt in plan.tasks):
        root = path.resolve().parent / (exp.workdir or ".")
        selection = select_workdir(root, ship_secrets=exp.ship_secrets, spec_file=str(path))
        plan = replace(plan, workdir=_without_runs(selection, runs_dir))
    return PlannedRun(plan, setup, runs_dir, tuple(notes))


def _without_runs(selection: WorkdirSelection, runs_dir: Path) -> WorkdirSelection:
    """Results never travel back out: the runs folder (``--runs-dir``, made when the run
    starts, so after the workdir was listed) is excluded when it lies inside the workdir."""
    runs = runs_dir.resolve()
    if not runs.is_relative_to(selection.root) or runs == selection.root:
        return selection
    rel = runs.relative_to(selection.root).as_posix()
    files = tuple(f for f in selection.files if not f.startswith(rel + "/"))
    return replace(selection, files=files, exclude=(*selection.exclude, rel, rel + "/*"))


def run_experiment(
    planned: PlannedRun,
    options: RunOptions,
    *,
    reporter: Reporter,
    on_signal: Callable[[str], None] | None = None,
    on_finished: Callable[[RunSummary, list[str]], None] | None = None,
) -> RunSummary:
    """Run a plan from ``plan_experiment(..., for_run=True)`` to its end (rules 2 and 3).

    Args:
        reporter: where the engine's events go (``run.log`` gets them too).
        on_signal: with it, SIGINT/SIGTERM/SIGHUP stop the run cleanly, and it is told what
            happens next (one line); from the main thread only.
        on_finished: sees the summary and the report's files before any exception is raised.
    """
    plan = planned.plan
    journal = Journal.in_dir(options.state_dir)
    paths = RunPaths(usable_dir(planned.runs_dir / plan.run_id, "runs directory"))
    lease = RunLease.take(journal, plan.run_id)  # RunBusy while another orchestrator runs it
    file_reporter = FileReporter(paths.run_log)
    engine = Engine(
        provider=planned.setup.provider,
        journal=journal,
        reporter=TeeReporter(file_reporter, reporter),
        config=EngineConfig(
            runs_root=planned.runs_dir,
            trainers_src=trainers_src(),
            code_env=git_revision_env(trainers_src()),
            provider_config=config_to_json(planned.setup.config),
            data_dir=options.data_dir or plan.experiment.data_dir,
            schedule=options.schedule,
            workdir=plan.workdir,
            recovery_capacity=plan.experiment.recovery.capacity,
            retries=plan.experiment.recovery.retries,
            checkpoint_every_s=plan.experiment.recovery.checkpoint_every_minutes * 60,
            # A metadata service for every machine (a fake one in tests, or ssh hosts that
            # are EC2 instances); else each machine's own (METADATA_TAG), if it has one.
            imds_url=os.environ.get("ORCHESTRATE_IMDS_URL") or None,
            checkpoint_store=checkpoint_store_for(plan.experiment, plan.run_id),
        ),
        guard=CostGuard(journal, plan.run_id, cap_usd=plan.experiment.budget.max_usd),
    )
    # Held for the whole run: a second `--resume` is refused, `down` asks us to stop.
    lease.watch(on_stop=lambda why: engine.request_stop(f"interrupted: {why}"))
    previous = _install_signal_handlers(engine, on_signal) if on_signal else {}
    try:
        summary = engine.run(plan, resume=bool(options.resume))
    finally:
        _restore_signal_handlers(previous)
        file_reporter.close()
        lease.release()
    report_files = write_report(paths.root, journal)
    if on_finished is not None:
        on_finished(summary, report_files)
    raise_for_status(summary, journal, spec_path=plan.spec_path, stop_reason=engine.stop_reason)
    return summary


def raise_for_status(
    summary: RunSummary, journal: Journal, *, spec_path: str, stop_reason: str | None = None
) -> None:
    """The one status -> exit code table: nothing for ``done``, else the error to raise."""
    if summary.status == RunStatus.DONE:
        return
    if summary.status == RunStatus.INTERRUPTED:
        raise RunInterrupted(summary.run_id, spec_path)
    if summary.status == RunStatus.CAPPED:
        raise RunCapped(summary.run_id, stop_reason or "the cost guard")
    failed = [t for t in journal.tasks(summary.run_id) if t.status == TaskStatus.FAILED]
    lost = any(m.status == MachineStatus.FAILED for m in journal.machines(summary.run_id))
    if lost and failed and all(t.job is None for t in failed):
        raise MachinesUnavailable(summary.run_id)  # as documented: exit 4
    raise TaskFailed(summary.run_id, [t.task_id for t in failed])


def trainers_src() -> Path:
    """Where the trainers package lives, to ship it; found by name, never imported here.

    ``ORCHESTRATE_TRAINERS_SRC`` points elsewhere (tests ship a stand-in; developers a branch).
    """
    import importlib.util

    if os.environ.get(TRAINERS_SRC_ENV):
        return Path(os.environ[TRAINERS_SRC_ENV])
    spec = importlib.util.find_spec("trainers")
    if spec is None or not spec.submodule_search_locations:
        raise OrchestrateError("the trainers package is not installed next to orchestrate")
    return Path(list(spec.submodule_search_locations)[0])


def git_revision_env(src: Path) -> dict[str, str]:
    """The commit of the code about to be shipped, for its manifest.json: the copy on a
    machine has no .git of its own (tasks get ``$ORCHESTRATE_GIT_COMMIT``/``_DIRTY``)."""

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


def write_report(run_dir: Path, journal: Journal) -> list[str]:
    """The report's files for a finished run; a failure here never fails the run."""
    from orchestrator.report import build_report
    from orchestrator.report.render import write_outputs

    try:
        report = build_report(run_dir, journal=journal, plots_dir=run_dir / "report")
        return [str(p) for p in write_outputs(report, run_dir / "report", html=True)]
    except Exception as exc:  # noqa: BLE001 - the results are safe; say why the report is not
        (run_dir / "report-error.txt").write_text(f"{type(exc).__name__}: {exc}\n")
        return []


def _install_signal_handlers(engine: Engine, tell: Callable[[str], None]) -> dict[int, object]:
    def handler(signum: int, frame: FrameType | None) -> None:
        # Never exit from here: cleanup (stop, fetch, release) must finish even on a second
        # Ctrl-C, or machines would keep billing. Say so, once per signal.
        first = not engine.stopping
        engine.request_stop(f"interrupted by {signal.Signals(signum).name}")
        grace = engine.config.stop_grace_s
        tell(
            f"stopping: trainers get {grace:.0f}s to save, results are fetched, machines released"
            if first
            else "still cleaning up so nothing is left running or billing; please wait"
        )

    previous: dict[int, object] = {}
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        previous[sig] = signal.signal(sig, handler)
    return previous


def _restore_signal_handlers(previous: dict[int, object]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)  # type: ignore[arg-type]
