"""One seat of a gang task, for the engine: find this worker's address, wait for the gang, run
its worker, and (worker 0) record the task once every worker has ended (``orchestrator.gang``).

Its own module so the engine's queue and machines (``orchestrator.engine``) and a single task's
steps (``orchestrator.engine_tasks``) stay under the 400-line house rule.
"""

from __future__ import annotations

import shlex
from dataclasses import replace

from infra.provider import Machine
from infra.transport.base import Transport
from orchestrator.engine_tasks import TaskSteps
from orchestrator.gang import WHERE, Gang, Quiet, gang_env
from orchestrator.paths import RunPaths, Workspace
from orchestrator.plan import Plan, PlannedTask
from orchestrator.state import JobRef, TaskStatus
from orchestrator.task_run import follow, ready_wait, task_command


class GangSteps(TaskSteps):
    """The gang worker's steps over the engine's state (see ``TaskSteps``)."""

    def _fail(self, run_id: str, task_id: str, reason: str, trace: str = "") -> None:
        raise NotImplementedError

    def _run_gang_worker(
        self,
        plan: Plan,
        pt: PlannedTask,
        seat: tuple[Gang, int],
        machine: Machine,
        transport: Transport,
        ws: Workspace,
        paths: RunPaths,
        gpu: int | None,
    ) -> None:
        """Gang rules 2-4 for the worker in ``seat`` (gang, seat number) on ``machine``."""
        gang, seat_no = seat
        run_id, task = plan.run_id, pt.task
        # The address the other workers dial (gang rule 2); this machine's workers: loopback.
        host, port = transport.run([machine.python, "-c", WHERE]).stdout.split()[-2:]
        if machine.address is None:
            host = "127.0.0.1"
        whole = gang.wait_whole(
            seat_no, f"{host}:{port}", lambda: self.stopping, place=machine.name
        )
        if whole is None:
            if seat_no == 0:  # the first seat speaks for an abandoned gang
                with self._lock:
                    if pt in self._queue:
                        self._queue.remove(pt)
                self._fail(run_id, task.id, f"gang of {task.nodes}: {gang.abandoned}")
            return
        rank, addrs = whole
        env = gang_env(addrs, rank)
        if rank == 0:
            try:
                status = self._run_task(plan, pt, machine, transport, ws, paths, gpu, (gang, env))
            except BaseException:
                gang.worker_ended(0, False, "could not be started or followed")
                raise
            stopped_by_run = self.stopping and status != TaskStatus.FAILED
            gang.worker_ended(0, status == TaskStatus.DONE or stopped_by_run, f"ended {status}")
            gang.wait_ended()
            if gang.failure is not None and status != TaskStatus.FAILED:
                self._fail(run_id, task.id, f"gang of {task.nodes}: {gang.failure}")
            elif status == TaskStatus.FAILED and (others := gang.bad_endings(but=0)):
                mine = next(
                    (r.detail for r in self.journal.tasks(run_id) if r.task_id == task.id), None
                )
                why = "; ".join(others) + (f"; worker 0: {mine}" if mine else "")
                self._fail(run_id, task.id, f"gang of {task.nodes}: {why}")
            return
        try:
            ok, how = self._other_worker(
                plan, pt, (gang, rank), env, machine, transport, ws, paths, gpu
            )
        except BaseException:
            gang.worker_ended(rank, False, "could not be started or followed")
            raise
        gang.worker_ended(rank, ok, how)

    def _other_worker(
        self,
        plan: Plan,
        pt: PlannedTask,
        seat: tuple[Gang, int],
        env: dict[str, str],
        machine: Machine,
        transport: Transport,
        ws: Workspace,
        paths: RunPaths,
        gpu: int | None,
    ) -> tuple[bool, str]:
        """Worker rank > 0: run, follow quietly, keep its files under ``workers/<rank>``."""
        task, (gang, rank) = pt.task, seat
        mine = replace(task, id=f"{task.id}.worker{rank}")  # its own out, log and checkpoints
        command = task_command(
            mine,
            machine,
            ws,
            run_id=plan.run_id,
            data_dir=self.config.data_dir,
            gpu=gpu,
            measured=(self.config.trainers_src / "measure.py").exists(),
        )
        command.env.update(self.config.code_env)
        command.env.update(env)
        command.env["ORCHESTRATE_TASK"] = task.id
        out = ws.out(mine.id)
        transport.run(["mkdir", "-p", out])
        if task.setup:
            self._setup.run_once(
                machine,
                transport,
                ws,
                task.setup,
                should_stop=lambda: self.stopping,
                on_start=lambda job: self.journal.setup_started(
                    plan.run_id, JobRef.of(job, machine)
                ),
                grace_s=self.config.stop_grace_s,
            )
        local = paths.task_dir(task.id) / "workers" / str(rank)
        local.mkdir(parents=True, exist_ok=True)
        job = transport.start(
            command.argv,
            env=command.env,
            log=ws.log(mine.id),
            cwd=command.cwd,
            prelude=ready_wait(machine, task.framework or None),
        )
        self.journal.worker_started(plan.run_id, JobRef.of(job, machine))  # `down` stops it
        exit_code, stopped, timed_out = follow(
            transport,
            job,
            local / "log.txt",
            task.id,
            Quiet(),
            should_stop=lambda: self.stopping or gang.failed,
            timeout_s=task.timeout_s or self.config.task_timeout_s,
            grace_s=self.config.stop_grace_s,
            poll_max_s=self.config.poll_max_s,
        )
        transport.get_tree(out, local)
        if timed_out:
            return False, "timed out"
        if stopped:
            return True, "stopped"  # by the run, or by the gang after another worker failed
        tail = (local / "log.txt").read_text(errors="replace").strip().splitlines()[-1:]
        return exit_code == 0, f"exited {exit_code} on {machine.name}" + (
            f": {shlex.quote(tail[0])[:200]}" if tail and exit_code != 0 else ""
        )
