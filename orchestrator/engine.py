"""Execute a Plan: acquire -> bootstrap -> sync -> start/poll -> fetch -> release.

Machines are worked in parallel (a thread each), tasks on one machine in its slots, at most
one GPU task per GPU. Every machine acquired is released in ``finally``, whatever happened;
every external act is journalled first. Cancellation (Ctrl-C, SIGTERM, the cost guard) is an
``Event`` the workers check between polls: running trainers are stopped, what they wrote is
fetched, then machines are released.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

from infra.errors import OrchestrateError
from infra.provider import Machine, Provider
from infra.transport.base import Transport
from orchestrator.cost import CostGuard
from orchestrator.engine_config import EngineConfig
from orchestrator.engine_machines import MachineSteps
from orchestrator.events import MachineEvent, Reporter, RunEnded, RunStarted, TaskEvent
from orchestrator.gang import Gang
from orchestrator.paths import RunPaths, Workspace
from orchestrator.plan import MachineSlot, Plan, PlannedTask
from orchestrator.reattach import Adopted, adoptable
from orchestrator.state import TASK_DONE, Journal, RunStatus, TaskStatus
from orchestrator.summary import RunSummary, summarize
from orchestrator.task_run import (
    SetupGate,
    bug_line,
    traceback_text,
)

__all__ = ["Engine", "EngineConfig"]


class Engine(MachineSteps):
    """Runs one plan to the end; ``request_stop`` may be called from a signal handler."""

    def __init__(
        self,
        *,
        provider: Provider,
        journal: Journal,
        reporter: Reporter,
        config: EngineConfig,
        guard: CostGuard | None = None,
    ) -> None:
        self.provider = provider
        self.journal = journal
        self.reporter = reporter
        self.config = config
        self.guard = guard
        self._cancel = threading.Event()
        self.stop_reason: str | None = None
        self._lock = threading.Lock()
        self._queue: list[PlannedTask] = []
        self._free_gpus: dict[str, list[int]] = {}
        self._setup = SetupGate()
        self._dead: dict[str, str] = {}
        self._failed = False
        self._resuming = False
        self._adopted: dict[str, list[tuple[PlannedTask, Adopted]]] = {}  # by machine name
        self._gangs: dict[str, Gang] = {}  # by task id (orchestrator.gang)
        # Recovery (orchestrator.recovery): machines lost under a task, by slot name, with why;
        # each slot's current journal token; attempts that ended without finishing, by task.
        self._lost: dict[str, str] = {}
        self._tokens: dict[str, int] = {}
        self._interrupted: dict[str, int] = {}

    # ------------------------------------------------------------------ control
    def request_stop(self, reason: str) -> None:
        """Stop at the next poll: trainers stopped, results fetched, machines released."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self._cancel.set()

    @property
    def stopping(self) -> bool:
        """Whether a stop was asked for (the signal handler says so only once)."""
        return self._cancel.is_set()

    # ------------------------------------------------------------------ run
    def run(self, plan: Plan, *, resume: bool = False) -> RunSummary:
        """Run the plan to the end (see the module's rules); its summary, also on a stop."""
        run_id = plan.run_id
        paths = RunPaths(self.config.runs_root / run_id)
        paths.root.mkdir(parents=True, exist_ok=True)
        if Path(plan.spec_path).is_file():
            shutil.copyfile(plan.spec_path, paths.experiment_copy)
        (paths.root / "plan.json").write_text(json.dumps(plan.to_json(), indent=2, default=str))
        if resume and self.journal.run(run_id) is not None:
            self.journal.set_run_status(run_id, RunStatus.RUNNING)
            if self.config.provider_config is not None:
                self.journal.set_provider_config(run_id, self.config.provider_config)
        else:
            self.journal.create_run(
                run_id,
                name=plan.experiment.name,
                spec_path=str(Path(plan.spec_path).resolve()),
                provider=plan.provider,
                runs_dir=str(self.config.runs_root.resolve()),
                forecast_usd=plan.forecast_usd,
                schedule=self.config.schedule,
                provider_config=self.config.provider_config,
            )
        done = {t.task_id for t in self.journal.tasks(run_id) if t.status == TASK_DONE}
        # Resuming, trainers a dead orchestrator started are adopted, not restarted
        # (orchestrator.reattach).
        self._resuming = resume
        adopt = adoptable(self.journal, run_id) if resume else {}
        initial: list[tuple[str, str, str]] = []
        for pt in plan.tasks:
            task = pt.task
            machine = pt.machines[0] if pt.machines else "-"
            status = (
                TaskStatus.DONE
                if task.id in done
                else (TaskStatus.SKIPPED if pt.skip_reason else TaskStatus.PENDING)
            )
            held = adopt.get(task.id)
            adopted = (
                status == TaskStatus.PENDING and held is not None and held.machine in pt.machines
            ) and pt.task.nodes == 1  # half a gang cannot be followed: it runs again (gang.py)
            if adopted and held is not None:
                machine = held.machine
                self._adopted.setdefault(machine, []).append((pt, held))
            self.journal.add_task(
                run_id,
                task.id,
                machine=machine,
                trainer=task.trainer,
                device=task.device,
                params=task.params,
                status=TaskStatus.RUNNING if adopted else status,
                detail=pt.skip_reason,
            )
            initial.append((task.id, machine, status))
            if status == TaskStatus.PENDING and not adopted:
                self._queue.append(pt)
        seats = {s.name: max(s.slots, 1) for s in plan.machines}
        for pt in [p for p in self._queue if p.task.nodes > 1]:
            have = sum(seats.get(m, 0) for m in pt.machines)
            if have < pt.task.nodes:  # a gang that could never be whole fails now, not later
                self._queue.remove(pt)
                self._fail(run_id, pt.task.id, f"nodes: {pt.task.nodes} but {have} slots fit it")
        self.reporter.event(RunStarted(run_id, str(paths.root), tuple(initial)))
        for tid, _, first in initial:
            if first != TaskStatus.PENDING:
                detail = "finished in an earlier attempt" if first == TaskStatus.DONE else ""
                pt_reason = next((p.skip_reason for p in plan.tasks if p.task.id == tid), None)
                self.reporter.event(TaskEvent(tid, first, pt_reason or detail))

        workers = [
            threading.Thread(
                target=self._machine_worker, args=(plan, slot, paths), name=f"machine-{slot.name}"
            )
            for slot in plan.machines
            if any(slot.name in pt.machines for pt in self._queue) or slot.name in self._adopted
        ]
        for w in workers:
            w.start()
        try:
            while any(w.is_alive() for w in workers):
                for w in workers:
                    w.join(timeout=0.1)
                if self.guard is not None and not self.stopping:
                    reason = self.guard.check()
                    if reason:
                        self.request_stop(f"capped: {reason}")
        finally:
            # An exception here (a second Ctrl-C) must still let every worker clean up.
            if any(w.is_alive() for w in workers):
                self.request_stop(self.stop_reason or "interrupted")
            for w in workers:
                while w.is_alive():
                    w.join(timeout=0.5)

        for pt in self._queue:  # tasks no machine could take
            reason = "; ".join(f"{m}: {self._dead[m]}" for m in pt.machines if m in self._dead)
            if self.stopping:
                continue
            self._fail(run_id, pt.task.id, reason or "no machine could run it")
        for name, left in self._adopted.items():  # adopted, but their machine never came back
            for pt, _ in left:
                if not self.stopping:  # else they stay running with their job: down settles them
                    why = self._dead.get(name, "its machine was not reached")
                    self._fail(run_id, pt.task.id, f"{name}: {why}; its trainer was not followed")
        # Any machine asked for, not only those with a recorded id: a launch whose answer was
        # lost left an instance only its tags can find, and teardown sweeps by the run's tags.
        if self.journal.machines(run_id):
            self._teardown(run_id, paths)
        if self.guard is not None:
            self.guard.spend()  # the ledger's final figure, now that every machine is released
        ended = self._final_status()
        self.journal.set_run_status(run_id, ended, self.stop_reason)
        self.reporter.event(RunEnded(run_id, ended))
        summary = summarize(self.journal, run_id)
        paths.summary_json.write_text(json.dumps(summary.to_json(), indent=2))
        return summary

    def _teardown(self, run_id: str, paths: RunPaths) -> None:
        """Wait for the run's machines to be gone and remove its key pair and security group;
        the receipt (each resource and its final state) is kept in the run directory."""
        try:
            receipt = self.provider.teardown_run(run_id)
        except OrchestrateError as exc:
            self.reporter.event(MachineEvent("*", "teardown failed", str(exc)))
            (paths.root / "teardown.txt").write_text(f"teardown failed: {exc}\n")
            return
        if receipt is None:  # the run made nothing besides machines (local, ssh)
            return
        text = receipt.render()
        (paths.root / "teardown.txt").write_text(text + "\n")
        self.reporter.event(MachineEvent("*", "torn down", text.splitlines()[0]))

    def _final_status(self) -> RunStatus:
        if self.stop_reason and self.stop_reason.startswith("capped"):
            return RunStatus.CAPPED
        if self.stop_reason:
            return RunStatus.INTERRUPTED
        return RunStatus.FAILED if self._failed else RunStatus.DONE

    def _fail(self, run_id: str, task_id: str, reason: str, trace: str = "") -> None:
        self._failed = True
        self.journal.task_ended(
            run_id, task_id, status=TaskStatus.FAILED, exit_code=None, wall_s=None, detail=reason
        )
        self.reporter.event(TaskEvent(task_id, TaskStatus.FAILED, reason, trace))

    def _gang_for(self, pt: PlannedTask) -> Gang | None:
        """The gang a slot may join for ``pt`` (under the lock): its forming one, or a new one
        when no other gang is forming (gang rule 1); None when it has no seat to give."""
        gang = self._gangs.get(pt.task.id)
        if gang is None:
            if any(not g.full and g.abandoned is None for g in self._gangs.values()):
                return None
            deadline = time.monotonic() + self.config.gang_timeout_s
            gang = self._gangs[pt.task.id] = Gang(pt.task.id, pt.task.nodes, deadline)
        return None if gang.full or gang.abandoned is not None else gang

    # ------------------------------------------------------------------ machines
    def _next_task(
        self, slot: MachineSlot
    ) -> tuple[PlannedTask, int | None, tuple[Gang, int] | None] | None:
        """The next queued task this machine may run now, with the GPU index it gets and, for
        a gang task, its seat; None when no task is left for this machine."""
        while not self.stopping:
            with self._lock:
                if slot.name in self._lost:  # going away: its work waits for the replacement
                    return None
                waiting = False
                for i, pt in enumerate(self._queue):
                    if slot.name not in pt.machines:
                        continue
                    gang = self._gang_for(pt) if pt.task.nodes > 1 else None
                    if pt.task.nodes > 1 and gang is None:
                        continue
                    gpu: int | None = None
                    if pt.task.device == "gpu":
                        if not self._free_gpus[slot.name]:
                            waiting = True  # one GPU task per GPU: wait for one to free up
                            continue
                        gpu = self._free_gpus[slot.name].pop(0)
                    if gang is None:
                        return self._queue.pop(i), gpu, None
                    rank = gang.take_seat()
                    if gang.full:
                        self._queue.pop(i)
                    return pt, gpu, (gang, rank)
                if not waiting:
                    return None
            time.sleep(0.05)
        return None

    def _slot_loop(
        self,
        plan: Plan,
        slot: MachineSlot,
        machine: Machine,
        transport: Transport,
        ws: Workspace,
        paths: RunPaths,
    ) -> None:
        while True:
            with self._lock:
                mine = self._adopted.get(slot.name)
                adopted = mine.pop(0) if mine else None
            gpu: int | None = None
            seat: tuple[Gang, int] | None = None
            if adopted is None:
                picked = self._next_task(slot)
                if picked is None:
                    return
                pt, gpu, seat = picked
            else:
                pt = adopted[0]
            try:
                if seat is not None:
                    self._run_gang_worker(plan, pt, seat, machine, transport, ws, paths, gpu)
                elif adopted is None:
                    self._run_task(plan, pt, machine, transport, ws, paths, gpu)
                else:
                    self._adopt_task(plan, pt, adopted[1], machine, transport, ws, paths)
            except OrchestrateError as exc:
                self._fail(plan.run_id, pt.task.id, str(exc).splitlines()[0])
            except Exception as exc:  # a bug: the task fails, the traceback goes to run.log
                self._fail(plan.run_id, pt.task.id, bug_line(exc), traceback_text(exc))
            finally:
                if gpu is not None:
                    with self._lock:
                        self._free_gpus[slot.name].append(gpu)
