"""The engine's machine worker: acquire -> bootstrap beside the code sync -> run its slots ->
release, and, when the machine went away under a task (``orchestrator.recovery``), a
replacement.

Split from ``orchestrator.engine`` (which keeps the run as a whole: queue, threads, the end)
to keep each module under the 400-line house rule.
"""

from __future__ import annotations

import shlex
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime

from infra.errors import OrchestrateError
from infra.provider import Bootstraps, LaunchRequest, Machine, Provider
from infra.transport.base import Transport
from orchestrator.cost import CostGuard
from orchestrator.engine_gang import GangSteps
from orchestrator.events import MachineEvent
from orchestrator.paths import RunPaths, Workspace
from orchestrator.plan import MachineSlot, Plan, PlannedTask
from orchestrator.reattach import Adopted, held_machine, stop_stale_setups
from orchestrator.recovery import recovery_refusal, replacement_launch
from orchestrator.state import MachineRow, MachineStatus
from orchestrator.task_run import bug_line, traceback_text

BOOT_ALLOWANCE_H = 5 / 60  # what a replacement costs before its first task starts, forecast


class MachineSteps(GangSteps):
    """Machine steps over the engine's state (declared here, set by ``Engine.__init__``)."""

    provider: Provider
    guard: CostGuard | None
    _dead: dict[str, str]
    _lost: dict[str, str]
    _tokens: dict[str, int]
    _free_gpus: dict[str, list[int]]
    _resuming: bool
    _adopted: dict[str, list[tuple[PlannedTask, Adopted]]]

    def request_stop(self, reason: str) -> None:
        """Stop at the next poll (the engine's)."""
        raise NotImplementedError

    def _slot_loop(
        self,
        plan: Plan,
        slot: MachineSlot,
        machine: Machine,
        transport: Transport,
        ws: Workspace,
        paths: RunPaths,
    ) -> None:
        raise NotImplementedError

    def _machine_worker(self, plan: Plan, slot: MachineSlot, paths: RunPaths) -> None:
        """Hold the slot's machine until its tasks are done; replace it while it is lost
        under queued work and the recovery policy and the budget allow (recovery rules)."""
        launch = slot.launch
        # Resuming: the machine the journal still holds, found again by its token.
        held = held_machine(self.journal, plan.run_id, slot.name) if self._resuming else None
        while True:
            self._hold_machine(plan, slot, launch, paths, held)
            held = None
            with self._lock:
                lost = self._lost.pop(slot.name, None)
                queued = [p for p in self._queue if slot.name in p.machines]
            if lost is None or not queued or self.stopping:
                return
            next_launch = self._replacement(plan, slot, launch, lost, queued)
            if next_launch is None:
                return
            launch = next_launch
            self.reporter.event(MachineEvent(slot.name, "replacing", lost))

    def _replacement(
        self,
        plan: Plan,
        slot: MachineSlot,
        launch: LaunchRequest,
        lost: str,
        queued: list[PlannedTask],
    ) -> LaunchRequest | None:
        """The launch of the machine that replaces a lost one, or None (and why, recorded)
        when the policy says ``fail`` or the budget cannot carry it (the run is capped)."""
        if self.config.recovery_capacity == "fail":
            with self._lock:
                self._dead[slot.name] = f"{lost}; recovery.capacity is fail"
            return None
        spent = self.guard.spend() if self.guard is not None else 0.0
        cap = self.guard.cap_usd if self.guard is not None else None
        try:
            nxt = replacement_launch(
                self.provider,
                launch,
                capacity=self.config.recovery_capacity,
                now=self.guard.clock.now() if self.guard is not None else datetime.now(UTC),
                cap_usd=cap,
                spent_usd=spent,
            )
        except OrchestrateError as exc:
            with self._lock:
                self._dead[slot.name] = f"{lost}; no replacement: {exc}"
            return None
        estimate_s = sum(p.estimate_s or 0.0 for p in queued)
        hours = estimate_s / 3600 / max(slot.slots, 1) + BOOT_ALLOWANCE_H
        refusal = recovery_refusal(
            cap_usd=cap, spent_usd=spent, hourly_usd=nxt.hourly_usd, hours=hours, name=slot.name
        )
        if refusal is not None:
            with self._lock:
                self._dead[slot.name] = refusal
            self.request_stop(f"capped: {refusal}")
            return None
        return nxt

    def _hold_machine(
        self,
        plan: Plan,
        slot: MachineSlot,
        launch: LaunchRequest,
        paths: RunPaths,
        held: MachineRow | None,
    ) -> None:
        """One machine for the slot, from acquire to release (released whatever happened)."""
        run_id = plan.run_id
        token = (
            held.token
            if held is not None
            else self.journal.machine_requested(run_id, slot.name, self.provider.name)
        )
        self.reporter.event(MachineEvent(slot.name, MachineStatus.REQUESTED, launch.summary))
        machine: Machine | None = None
        transport: Transport | None = None
        try:
            if self.stopping:
                return
            machine = self.provider.acquire(launch, token=f"{run_id}-{token}")
            if held is None or held.machine_id != machine.id:  # else spend counts on
                self.journal.machine_acquired(
                    token,
                    machine.id,
                    instance_type=machine.instance_type,
                    # The plan's price when the provider does not know one (ssh hosts, fakes).
                    hourly_usd=machine.hourly_usd or launch.hourly_usd,
                )
            with self._lock:
                self._tokens[slot.name] = token
            self.reporter.event(MachineEvent(slot.name, "acquired", machine.id))
            transport = self.provider.connect(machine)
            machine = self._absolute_workspace(machine, transport)
            ws = Workspace(f"{machine.workspace_root}/{run_id}")
            transport.run(["mkdir", "-p", ws.code, f"{ws.root}/out", f"{ws.root}/logs"])
            if self._resuming:
                stop_stale_setups(self.journal, run_id, machine.name, transport)
            ship = slot.name not in self._adopted  # else its code is there (reattach rule 5)
            machine = self._bootstrap_while_shipping(
                machine, transport, ws, ship=ship, first=self._first_framework(slot.name)
            )
            self.reporter.event(MachineEvent(slot.name, "bootstrapped", ws.root))
            self._free_gpus[slot.name] = list(range(max(slot.gpus, 0)))
            slots = [
                threading.Thread(
                    target=self._slot_loop,
                    args=(plan, slot, machine, transport, ws, paths),
                    name=f"{slot.name}-slot{i}",
                )
                for i in range(max(slot.slots, 1))
            ]
            for s in slots:
                s.start()
            for s in slots:
                s.join()
        except Exception as exc:  # an OrchestrateError, or a bug: its tasks fail either way
            text = str(exc) if isinstance(exc, OrchestrateError) else bug_line(exc)
            with self._lock:
                self._dead[slot.name] = text.splitlines()[0]
                self._lost.pop(slot.name, None)  # never replace a machine that could not start
            self.journal.machine_status(token, MachineStatus.FAILED, text)
            trace = "" if isinstance(exc, OrchestrateError) else traceback_text(exc)
            self.reporter.event(MachineEvent(slot.name, MachineStatus.FAILED, text, trace))
        finally:
            if transport is not None:
                transport.close()
            if machine is not None:
                self.provider.release(machine.id)
                with self._lock:
                    why = self._lost.get(slot.name)
                self.journal.machine_status(token, MachineStatus.RELEASED, why)
                self.reporter.event(MachineEvent(slot.name, MachineStatus.RELEASED, machine.id))
            elif slot.name not in self._dead:
                self.journal.machine_status(token, MachineStatus.RELEASED, "never acquired")

    def _first_framework(self, name: str) -> str | None:
        """The framework of the first task machine ``name`` will run (its setup installs that
        one first); None when that task is a script, or none is queued for it."""
        with self._lock:
            adopted = self._adopted.get(name)
            first = next((pt for pt in self._queue if name in pt.machines), None)
            if adopted:
                first = adopted[0][0]
        return (first.task.framework or None) if first is not None else None

    def _bootstrap_while_shipping(
        self,
        machine: Machine,
        transport: Transport,
        ws: Workspace,
        *,
        ship: bool,
        first: str | None = None,
    ) -> Machine:
        """The provider's bootstrap (a fresh cloud machine's setup: minutes of package
        installs) with the code sync beside it, not after it (issue 18, time to first task);
        returns the bootstrapped machine once both are done, raising the first failure. A
        staged setup returns once ``first``'s framework is in (``Bootstraps``)."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ship") as pool:
            shipped = pool.submit(self._sync, transport, ws) if ship else None
            if isinstance(self.provider, Bootstraps):
                machine = self.provider.bootstrap(machine, transport, first=first)
            if shipped is not None:
                shipped.result()
        if ship:
            self._compile_wrapper(transport, ws, machine.python)
        return machine

    def _sync(self, transport: Transport, ws: Workspace) -> None:
        """Ship the trainers and the workdir (only what changed)."""
        transport.put_tree(
            self.config.trainers_src, f"{ws.code}/trainers", exclude=("__pycache__", "*.pyc")
        )
        if self.config.workdir is not None:
            wd = self.config.workdir
            transport.run(["mkdir", "-p", ws.work])  # exists even when nothing is shipped
            transport.put_tree(wd.root, ws.work, exclude=wd.exclude)

    def _compile_wrapper(self, transport: Transport, ws: Workspace, python: str) -> None:
        """Byte-compile the per-task wrapper once on the machine, so no task compiles it again
        where the environment says ``PYTHONDONTWRITEBYTECODE`` (~4 ms of each task's start,
        issue 18). A failure costs only that time."""
        if (self.config.trainers_src / "measure.py").exists():
            wrapper = [f"{ws.code}/trainers/{name}" for name in ("__init__.py", "measure.py")]
            transport.run([python, "-S", "-m", "py_compile", *wrapper], check=False)

    @staticmethod
    def _absolute_workspace(machine: Machine, transport: Transport) -> Machine:
        """Resolve a home-relative workspace root once: trainers ``cd`` into the code dir,
        so every path handed to them must be absolute."""
        if machine.workspace_root.startswith("/"):
            return machine
        root = shlex.quote(machine.workspace_root)
        result = transport.run(["sh", "-c", f"mkdir -p {root} && cd {root} && pwd"])
        return replace(machine, workspace_root=result.stdout.strip())
