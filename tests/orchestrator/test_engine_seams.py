"""The engine in process against the shared fake, with its fault hooks and a clock that jumps
(issue 15, point 7): an acquire, connect or bootstrap failure fails that machine's tasks and
still releases what was acquired (``finally``); the cost guard caps a run on its clock."""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from infra.clock import SystemClock
from infra.errors import CapacityError, ConnectError, ProviderError
from infra.provider import Machine, MachineRequest
from infra.transport.local import LocalTransport
from orchestrator.cost import CostGuard
from orchestrator.engine import Engine, EngineConfig
from orchestrator.errors import MachinesUnavailable, RunCapped
from orchestrator.events import RecordingReporter
from orchestrator.plan import MachineOffer, make_plan
from orchestrator.runner import raise_for_status
from orchestrator.specfile import parse_experiment
from orchestrator.state import Journal, MachineStatus, RunStatus, TaskStatus
from orchestrator.summary import RunSummary
from tests.fakes import FAKE_TRAINERS, FakeProvider

EXP = "name: seams\njobs:\n  - trainer: mnist\n    optimizer: [sgd]\n    epochs: {epochs}\n"


class NoConnect(FakeProvider):
    def connect(self, machine: Machine) -> LocalTransport:
        raise ConnectError("host key refused (injected)")


class NoBootstrap(FakeProvider):
    def bootstrap(
        self, machine: Machine, transport: object, *, first: str | None = None
    ) -> Machine:
        raise ProviderError("setup failed (injected)")


class SlowSetup(FakeProvider):
    """A cloud machine's setup: it takes as long as the code takes to arrive, and fails if
    the code is not shipped while it runs (the engine must not wait for it to sync)."""

    def bootstrap(
        self, machine: Machine, transport: object, *, first: str | None = None
    ) -> Machine:
        code = Path(machine.workspace_root) / "r1" / "code" / "trainers" / "measure.py"
        deadline = time.monotonic() + 30
        while not code.exists():
            if time.monotonic() > deadline:
                raise ProviderError("the code was not shipped during the setup")
            time.sleep(0.01)
        return replace(machine, python=sys.executable)


class JumpingClock(SystemClock):
    """Real time until the task's trainer has started (its timing file exists in the
    machine's workspace), then ten hours on: the guard sees a machine held far past its budget.
    Jumping from the start raced the task's start on a loaded machine (capped while queued)."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace

    def now(self) -> datetime:
        started = any(self.workspace.glob("**/timing.jsonl"))
        return super().now() + (timedelta(hours=10) if started else timedelta(0))


def _run(
    tmp_path: Path,
    provider: FakeProvider,
    *,
    epochs: int = 1,
    cap: float | None = None,
    clock: SystemClock | None = None,
) -> tuple[RunSummary, Journal]:
    exp = parse_experiment(EXP.format(epochs=epochs), "seams.yaml")
    offer = MachineOffer(MachineRequest(run_id="r1", name="cpu"), slots=1, gpus=0)
    plan = make_plan(exp, spec_path="seams.yaml", run_id="r1", provider=provider, offers=[offer])
    journal = Journal.in_dir(tmp_path / "state")
    guard = CostGuard(journal, "r1", cap_usd=cap, clock=clock) if cap is not None else None
    engine = Engine(
        provider=provider,
        journal=journal,
        reporter=RecordingReporter(),
        config=EngineConfig(
            runs_root=tmp_path / "runs", trainers_src=FAKE_TRAINERS, stop_grace_s=1.0
        ),
        guard=guard,
    )
    return engine.run(plan), journal


def test_an_acquire_failure_fails_the_tasks_and_is_a_machines_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_EPOCH_S", "0")
    provider = FakeProvider(workspace_root=str(tmp_path / "ws"))
    provider.fail_next_acquire(CapacityError("no capacity (injected)"))
    summary, journal = _run(tmp_path, provider)
    assert summary.status == RunStatus.FAILED
    assert [t.status for t in summary.tasks] == [TaskStatus.FAILED]
    assert "no capacity" in (summary.tasks[0].detail or "")
    assert [m.status for m in journal.machines("r1")] == [MachineStatus.FAILED]
    with pytest.raises(MachinesUnavailable):  # exit 4: no task ever started
        raise_for_status(summary, journal, spec_path="seams.yaml")


@pytest.mark.parametrize("provider_class", [NoConnect, NoBootstrap])
def test_a_failure_after_acquire_still_releases_the_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provider_class: type[FakeProvider]
) -> None:
    monkeypatch.setenv("FAKE_EPOCH_S", "0")
    provider = provider_class(workspace_root=str(tmp_path / "ws"))
    summary, journal = _run(tmp_path, provider)
    assert [t.status for t in summary.tasks] == [TaskStatus.FAILED]
    assert "injected" in (summary.tasks[0].detail or "")
    acquired = [arg for call, arg in provider.calls if call == "acquire"]
    released = [arg for call, arg in provider.calls if call == "release"]
    assert len(acquired) == 1 and released == ["fake-1"]  # released in finally
    assert provider.owned() == []
    assert [m.status for m in journal.machines("r1")] == [MachineStatus.RELEASED]


def test_the_guard_caps_the_run_on_its_clock_and_everything_is_released(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_EPOCH_S", "2")  # long enough for the guard to look
    provider = FakeProvider(workspace_root=str(tmp_path / "ws"), hourly_usd=1.0)
    summary, journal = _run(
        tmp_path, provider, epochs=30, cap=5.0, clock=JumpingClock(tmp_path / "ws")
    )
    assert summary.status == RunStatus.CAPPED
    assert [t.status for t in summary.tasks] == [TaskStatus.STOPPED]
    assert provider.owned() == [] and ("release", "fake-1") in provider.calls
    assert [m.status for m in journal.machines("r1")] == [MachineStatus.RELEASED]
    with pytest.raises(RunCapped):  # exit 3
        raise_for_status(summary, journal, spec_path="seams.yaml", stop_reason="capped")


def test_the_code_is_shipped_while_the_machine_is_set_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_EPOCH_S", "0")
    provider = SlowSetup(workspace_root=str(tmp_path / "ws"))
    summary, _ = _run(tmp_path, provider)
    assert [t.status for t in summary.tasks] == [TaskStatus.DONE], summary.tasks
    code = tmp_path / "ws" / "r1" / "code" / "trainers"
    assert (code / "__pycache__").is_dir()  # the wrapper was byte-compiled once shipped
