"""Shared, stateful test doubles (one place, so they cannot drift apart)."""

from __future__ import annotations

import atexit
import itertools
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from infra.errors import OrchestrateError
from infra.provider import LaunchRequest, Machine, MachineRequest
from infra.transport.local import LocalTransport

_FAKE_SOURCES = Path(__file__).resolve().parent / "data" / "fake_trainers" / "trainers"
_REAL_TRAINERS = Path(__file__).resolve().parents[1] / "trainers"
_REAL_FILES = ("measure.py", "spot_notice.py", "timing.py")  # stdlib-only: shipped as they are


def _assemble_fake_trainers() -> Path:
    """The stand-in trainers with the real ``measure.py`` (and the ``spot_notice.py`` it imports
    where ``$ORCHESTRATE_IMDS_URL`` is set) and ``timing.py`` beside them, built
    once per test process, so the fakes write exactly what the real wrapper and timing log
    write (issue 15, point 7); removed when the process ends."""
    root = Path(tempfile.mkdtemp(prefix="orchestrate-fake-trainers-")) / "trainers"
    shutil.copytree(_FAKE_SOURCES, root, ignore=shutil.ignore_patterns("__pycache__"))
    for name in _REAL_FILES:
        shutil.copy2(_REAL_TRAINERS / name, root / name)
    atexit.register(shutil.rmtree, root.parent, True)
    return root


FAKE_TRAINERS = _assemble_fake_trainers()


class FakeProvider:
    """Machines in memory, priced, reached through a real LocalTransport; with fault hooks."""

    name = "fake"

    def __init__(self, *, workspace_root: str, hourly_usd: float = 1.0, gpus: int = 0) -> None:
        self.workspace_root = workspace_root
        self.hourly_usd = hourly_usd
        self.gpus = gpus
        self.machines: dict[str, Machine] = {}
        self.by_token: dict[str, str] = {}
        self.calls: list[tuple[str, str]] = []
        self._fail_next_acquire: OrchestrateError | None = None
        self._ids = itertools.count(1)

    def fail_next_acquire(self, exc: OrchestrateError) -> None:
        self._fail_next_acquire = exc

    def prepare(self, req: MachineRequest) -> LaunchRequest:
        return LaunchRequest(self.name, req, (), self.hourly_usd, f"fake {req.name}")

    def acquire(self, launch: LaunchRequest, *, token: str) -> Machine:
        self.calls.append(("acquire", token))
        if self._fail_next_acquire is not None:
            exc, self._fail_next_acquire = self._fail_next_acquire, None
            raise exc
        if token in self.by_token:
            return self.machines[self.by_token[token]]
        mid = f"fake-{next(self._ids)}"
        m = Machine(
            id=mid,
            provider=self.name,
            name=launch.request.name,
            address=None,
            gpus=self.gpus,
            cpus=2,
            hourly_usd=self.hourly_usd,
            started_at=datetime.now(UTC),
            tags=dict(launch.request.tags),
            workspace_root=self.workspace_root,
            python=sys.executable,  # the fake machine is this one
        )
        self.machines[mid] = m
        self.by_token[token] = mid
        return m

    def release(self, machine_id: str) -> None:
        self.calls.append(("release", machine_id))
        self.machines.pop(machine_id, None)

    def owned(self, *, run_id: str | None = None) -> list[Machine]:
        return [
            m for m in self.machines.values() if run_id in (None, m.tags.get("orchestrate:run"))
        ]

    def connect(self, machine: Machine) -> LocalTransport:
        return LocalTransport()

    def reconnect(self, run_id: str, name: str) -> LocalTransport:
        self.calls.append(("reconnect", name))
        return LocalTransport()

    def teardown_run(self, run_id: str) -> None:
        self.calls.append(("teardown_run", run_id))

    def locate(self, run_id: str, name: str) -> Machine | None:
        return next((m for m in self.owned(run_id=run_id) if m.name == name), None)
