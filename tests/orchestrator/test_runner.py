"""The run service (``orchestrator.runner``): typed options in, and the one table from how a
run ended to the error (and so the exit code) the CLI and the scheduler see."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import (
    MachinesUnavailable,
    RunCapped,
    RunInterrupted,
    TaskFailed,
)
from orchestrator.runner import RunOptions, plan_experiment, raise_for_status
from orchestrator.state import JobRef, Journal, MachineStatus, RunStatus, TaskStatus
from orchestrator.summary import RunSummary


def _journal(tmp_path: Path, *, task_started: bool, machine_lost: bool) -> Journal:
    journal = Journal.in_dir(tmp_path / "state")
    journal.create_run("r1", name="r", spec_path="x.yaml", provider="local", runs_dir="runs")
    journal.add_task("r1", "t1", machine="m", trainer="pca", device="cpu", params={})
    if task_started:
        journal.task_started("r1", "t1", JobRef(1, "j", "l", "m-1", "m"), machine="m")
    journal.task_ended("r1", "t1", status=TaskStatus.FAILED, exit_code=1, wall_s=None)
    token = journal.machine_requested("r1", "m", "local")
    journal.machine_status(token, MachineStatus.FAILED if machine_lost else MachineStatus.RELEASED)
    return journal


@pytest.mark.parametrize(
    ("status", "started", "lost", "error", "code"),
    [
        (RunStatus.FAILED, True, False, TaskFailed, 1),
        (RunStatus.FAILED, True, True, TaskFailed, 1),  # a task ran: not for want of machines
        (RunStatus.FAILED, False, True, MachinesUnavailable, 4),
        (RunStatus.CAPPED, True, False, RunCapped, 3),
        (RunStatus.INTERRUPTED, True, False, RunInterrupted, 130),
    ],
)
def test_how_a_run_ended_is_one_error_and_its_exit_code(
    tmp_path: Path,
    status: RunStatus,
    started: bool,
    lost: bool,
    error: type[Exception],
    code: int,
) -> None:
    journal = _journal(tmp_path, task_started=started, machine_lost=lost)
    summary = RunSummary("r1", status, str(tmp_path), ())
    with pytest.raises(error) as info:
        raise_for_status(summary, journal, spec_path="x.yaml", stop_reason="capped: $1")
    assert getattr(info.value, "exit_code", None) == code
    assert getattr(info.value, "run_id", None) == "r1"


def test_a_done_run_raises_nothing(tmp_path: Path) -> None:
    journal = _journal(tmp_path, task_started=True, machine_lost=False)
    raise_for_status(RunSummary("r1", RunStatus.DONE, str(tmp_path), ()), journal, spec_path="x")


def test_planning_takes_typed_options_and_makes_nothing(tmp_path: Path) -> None:
    spec = tmp_path / "exp.yaml"
    spec.write_text("name: typed\njobs:\n  - trainer: pca\n    device: [cpu]\n")
    options = RunOptions(state_dir=tmp_path / "state", runs_dir=tmp_path / "runs")
    planned = plan_experiment(spec, options)
    assert planned.plan.run_id == "(plan)" and len(planned.plan.tasks) >= 1
    for_run = plan_experiment(spec, options, for_run=True)
    assert for_run.plan.run_id.startswith("typed-")
    assert not (tmp_path / "runs").exists()
