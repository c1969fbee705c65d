"""Recovery in the engine (issue #16): an attempt whose machine goes away does not fail its
task. The real MNIST trainer runs (small subset) on in-memory machines, each with its own
workspace, so a retry on a new machine finds no checkpoint there but the one that came back.

- A spot notice (from a fake IMDSv2 on loopback, which every machine's task wrapper watches)
  or the wrapper's ``preempt-now`` drain file, mid-training: the attempt ends
  ``preempted``, the machine is released, a new one acquired, training resumes after the
  checkpointed epoch and ends with the same test error as an uninterrupted run.
- A machine that stops answering (its processes killed, every call refused): the attempt ends
  ``lost``, at most one checkpoint interval of work is redone, the task completes elsewhere.
- A replacement the budget cannot carry is refused: the run ends ``capped``, nothing held.
- ``recovery.retries: 0`` and ``recovery.capacity: fail`` fail the task with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
import time
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from moto import mock_aws

from infra.aws.checkpoints import S3Store
from infra.errors import ConnectError
from infra.provider import Machine, MachineRequest
from infra.transport.base import Job, JobStatus, Result, SyncStats
from infra.transport.local import LocalTransport
from orchestrator.checkpoint_store import CheckpointStore
from orchestrator.cost import CostGuard
from orchestrator.engine import Engine, EngineConfig
from orchestrator.events import RecordingReporter
from orchestrator.plan import MachineOffer, make_plan
from orchestrator.specfile import parse_experiment
from orchestrator.state import Journal
from orchestrator.summary import RunSummary
from tests.fakes import FakeProvider
from tests.imds import FakeImds
from tests.mnist_data import MNIST_DIR, needs_mnist

pytestmark = [needs_mnist, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _wrapper_looks_often(monkeypatch: pytest.MonkeyPatch) -> None:
    """The task wrapper checks for a drain file every 0.1 s, not every 5 s."""
    monkeypatch.setenv("ORCHESTRATE_IMDS_POLL_S", "0.1")


TRAINERS = Path(__file__).resolve().parents[2] / "trainers"
TASK = "mnist-tensorflow-sgd-cpu"
EPOCHS = 6


class LosingTransport(LocalTransport):
    """This machine, until the provider says it is lost: then every call fails to connect."""

    def __init__(self, provider: ApartProvider, machine_id: str) -> None:
        super().__init__()
        self.provider, self.machine_id = provider, machine_id

    def _check(self) -> None:
        if self.machine_id in self.provider.lost:
            raise ConnectError(f"{self.machine_id}: connection refused")

    def run(self, argv: Any, **kw: Any) -> Result:  # type: ignore[override]
        self._check()
        return super().run(argv, **kw)

    def start(self, argv: Any, **kw: Any) -> Job:  # type: ignore[override]
        self._check()
        job = super().start(argv, **kw)
        self.provider.jobs.setdefault(self.machine_id, []).append(job)
        return job

    def poll(self, job: Job, *, log_offset: int = 0) -> JobStatus:
        self._check()
        return super().poll(job, log_offset=log_offset)

    def get_tree(self, remote: str, local: Path) -> SyncStats:
        self._check()
        stats = super().get_tree(remote, local)
        # The local copy skips a file of the same size and whole-second mtime; these
        # checkpoints change size-alike several times a second, so copy them regardless.
        if Path(remote).is_dir() and "/ckpt/" in remote:
            # The trainer's temporaries come and go while this copies (it saves atomically).
            with contextlib.suppress(FileNotFoundError, shutil.Error):
                shutil.copytree(
                    remote, local, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".mlp-*")
                )
            return SyncStats(stats.files_total, stats.files_total, 0, 0, 0.0)
        return stats


class ApartProvider(FakeProvider):
    """Each machine has its own workspace folder; ``lose`` kills everything on one."""

    def __init__(self, root: Path, *, hourly_usd: float = 0.0) -> None:
        super().__init__(workspace_root=str(root), hourly_usd=hourly_usd)
        self.root = root
        self.lost: set[str] = set()
        self.jobs: dict[str, list[Job]] = {}

    def acquire(self, launch: Any, *, token: str) -> Machine:
        m = super().acquire(launch, token=token)
        m = replace(m, workspace_root=str(self.root / m.id))
        self.machines[m.id] = m
        return m

    def connect(self, machine: Machine) -> LosingTransport:
        return LosingTransport(self, machine.id)

    def lose(self, machine_id: str) -> None:
        self.lost.add(machine_id)
        for job in self.jobs.get(machine_id, []):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job.pid, signal.SIGKILL)


def _experiment(extra: str = "", epochs: int = EPOCHS) -> str:
    return (
        f"name: keep\ndata_dir: {MNIST_DIR}\n{extra}"
        "jobs:\n  - trainer: mnist\n    framework: tensorflow\n    optimizer: sgd\n"
        f"    epochs: {epochs}\n    batch_size: 100\n    subset: 3000\n    seed: 5\n"
    )


def _run(
    tmp_path: Path,
    provider: ApartProvider,
    *,
    extra: str = "",
    cap_usd: float | None = None,
    checkpoint_every_s: float = 300.0,
    when_epoch: tuple[int, str] | None = None,
    store: CheckpointStore | None = None,
    imds: FakeImds | None = None,
    epochs: int = EPOCHS,
) -> tuple[RunSummary, Journal]:
    """Run the one-task experiment; with ``when_epoch`` (n, "notice"|"imds"|"lose"), interrupt
    the first machine once its trainer logged epoch n: its drain file, a spot notice from
    ``imds`` (every machine watches it; cleared once the first attempt ended), or a loss
    ("lose-pulled": a loss once epoch n's checkpoint came back)."""
    exp = parse_experiment(_experiment(extra, epochs), "keep.yaml")
    offer = MachineOffer(MachineRequest(run_id="run-1", name="cpu"), slots=1, gpus=0)
    plan = make_plan(
        exp,
        spec_path="keep.yaml",
        run_id="run-1",
        provider=provider,
        offers=[offer],
        enforce_budget=False,
    )
    journal = Journal.in_dir(tmp_path / "state")
    engine = Engine(
        provider=provider,
        journal=journal,
        reporter=RecordingReporter(),
        config=EngineConfig(
            runs_root=tmp_path / "runs",
            trainers_src=TRAINERS,
            recovery_capacity=exp.recovery.capacity,
            retries=exp.recovery.retries,
            checkpoint_every_s=checkpoint_every_s,
            checkpoint_store=store,
            imds_url=imds.url if imds is not None else None,
        ),
        guard=CostGuard(journal, "run-1", cap_usd=cap_usd),
    )
    if when_epoch is not None:
        threading.Thread(
            target=_interrupt,
            args=(provider, *when_epoch, imds, tmp_path / "runs" / "run-1" / TASK),
            daemon=True,
            name="interrupter",
        ).start()
    return engine.run(plan), journal


def _interrupt(
    provider: ApartProvider, epoch: int, how: str, imds: FakeImds | None, task_dir: Path
) -> None:
    out = provider.root / "fake-1" / "run-1" / "out" / TASK
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if how == "lose-pulled":  # once a pull-back brought epoch n's checkpoint here
            if _checkpoint_epoch(task_dir / "checkpoints" / "mlp.npz") >= epoch:
                break
        elif _epochs_logged(out / "timing.jsonl") >= epoch:
            break
        time.sleep(0.01)
    if how == "notice":
        (out / "preempt-now").touch()
    elif how == "imds" and imds is not None:
        imds.notice_spot(action="terminate", in_s=120)
        while time.monotonic() < deadline:  # the notice was for the first machine only
            if (task_dir / "attempt-1.preempted.json").exists():
                imds.clear()
                return
            time.sleep(0.02)
    else:
        provider.lose("fake-1")


def _checkpoint_epoch(path: Path) -> int:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return int(json.loads(str(npz["meta"]))["epoch"])
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile):
        return 0  # not there yet, or being copied (an empty file is an EOFError)


def _epochs_logged(timing: Path) -> int:
    try:
        rows = [json.loads(ln) for ln in timing.read_text().splitlines() if ln.strip()]
    except (OSError, ValueError):
        return 0
    return sum(1 for r in rows if r.get("event") == "epoch" and not r.get("restored"))


def _metrics(tmp_path: Path) -> dict[str, Any]:
    return dict(json.loads((tmp_path / "runs" / "run-1" / TASK / "metrics.json").read_text()))


def test_a_preempted_task_resumes_on_a_new_machine_with_the_same_result(tmp_path: Path) -> None:
    straight, _ = _run(tmp_path / "straight", ApartProvider(tmp_path / "straight" / "m"))
    assert straight.status == "done"
    reference = _metrics(tmp_path / "straight")

    provider = ApartProvider(tmp_path / "m")
    with FakeImds() as imds:
        summary, journal = _run(tmp_path, provider, when_epoch=(2, "imds"), imds=imds)

    assert summary.status == "done", summary.tasks
    attempts = journal.attempts("run-1")
    assert [(a.n, a.machine, a.status) for a in attempts] == [
        (1, "cpu", "preempted"),
        (2, "cpu", "done"),
    ]
    assert "spot interruption notice (terminate at" in (attempts[0].detail or "")
    tokens = {a.machine_token for a in attempts}
    assert len(tokens) == 2  # two machines, the first released
    assert [c for c in provider.calls if c[0] == "release"][0] == ("release", "fake-1")
    assert provider.machines == {}
    metrics = _metrics(tmp_path)
    assert metrics["resumed_from_epoch"] >= 2
    assert metrics["epochs_run"] + metrics["resumed_from_epoch"] == EPOCHS
    # The first machine trained at most one epoch past its checkpoint.
    first = provider.root / "fake-1" / "run-1" / "out" / TASK / "timing.jsonl"
    assert _epochs_logged(first) <= metrics["resumed_from_epoch"] + 1
    assert abs(metrics["test_error"] - reference["test_error"]) <= 0.003
    # The notice came back, kept under its attempt's number.
    assert (tmp_path / "runs" / "run-1" / TASK / "attempt-1.preempted.json").exists()


def test_a_machine_lost_without_notice_costs_at_most_one_checkpoint_interval(
    tmp_path: Path,
) -> None:
    provider = ApartProvider(tmp_path / "m")
    # 60 short epochs: the run outlasts the first pull-backs whatever the machine's load.
    summary, journal = _run(
        tmp_path, provider, checkpoint_every_s=0.2, when_epoch=(2, "lose-pulled"), epochs=60
    )

    assert summary.status == "done", summary.tasks
    attempts = journal.attempts("run-1")
    assert [a.status for a in attempts] == ["lost", "done"]
    assert "stopped answering" in (attempts[0].detail or "")
    metrics = _metrics(tmp_path)
    # The machine died after a pull-back (every 0.2 s while it ran) had brought epoch 2's
    # checkpoint here: the retry on the new machine starts from it, not from scratch.
    assert metrics["resumed_from_epoch"] >= 2
    assert metrics["epochs_run"] + metrics["resumed_from_epoch"] == 60
    assert provider.machines == {}


@mock_aws
def test_checkpoints_also_go_to_s3_and_a_retry_can_start_from_there(tmp_path: Path) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="keep-ckpt")
    store = S3Store("s3://keep-ckpt/exp/run-1", "us-east-1", client=s3)
    provider = ApartProvider(tmp_path / "m")
    summary, journal = _run(tmp_path, provider, when_epoch=(2, "notice"), store=store)

    assert summary.status == "done", summary.tasks
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="keep-ckpt")["Contents"]]
    assert f"exp/run-1/{TASK}/mlp.npz" in keys
    # A laptop without the run directory gets the same checkpoint from the bucket.
    elsewhere = tmp_path / "elsewhere"
    assert store.pull(TASK, elsewhere) == 1
    here = tmp_path / "runs" / "run-1" / TASK / "checkpoints" / "mlp.npz"
    assert (elsewhere / "mlp.npz").read_bytes() == here.read_bytes()


def test_a_recovery_the_budget_cannot_carry_is_refused_and_the_run_is_capped(
    tmp_path: Path,
) -> None:
    # $36/h: the replacement's boot allowance alone (5 min) is $3, over what the cap leaves.
    provider = ApartProvider(tmp_path / "m", hourly_usd=36.0)
    summary, journal = _run(tmp_path, provider, cap_usd=2.5, when_epoch=(1, "notice"))

    assert summary.status == "capped"
    run = journal.run("run-1")
    assert run is not None and "recovering cpu would take spend" in (run.detail or "")
    assert [a.status for a in journal.attempts("run-1")] == ["preempted"]
    assert len(journal.machines("run-1")) == 1  # no second machine was asked for
    assert provider.machines == {}


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ("recovery:\n  retries: 0\n", "recovery.retries (0) spent"),
        ("recovery:\n  capacity: fail\n", "recovery.capacity is fail"),
    ],
)
def test_no_retry_when_the_policy_says_so(tmp_path: Path, extra: str, reason: str) -> None:
    provider = ApartProvider(tmp_path / "m")
    summary, journal = _run(tmp_path, provider, extra=extra, when_epoch=(1, "lose"))

    assert summary.status == "failed"
    task = next(t for t in journal.tasks("run-1") if t.task_id == TASK)
    assert task.status == "failed" and reason in (task.detail or "")
    assert len(journal.machines("run-1")) == 1
    assert provider.machines == {}
