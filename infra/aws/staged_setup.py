"""A fresh instance's setup, handed back to the engine as soon as the framework its first task
needs is installed; the other stages go on installing as a detached job (``ami.stages``).

The whole setup used to run as one blocking command: a machine whose first task was a PyTensor
one waited for TensorFlow's wheels too (issue 18, item 4). Now the staged script is started
like a task's job (``Transport.start``: detached, its log kept, stopped with the machine), and
this waits only for the first stage's marker. A failure before that raises here as before; a
later stage's failure leaves ``failed`` among the markers, and the tasks waiting for that
stage fail with it (``orchestrator.task_run.ready_wait``).
"""

from __future__ import annotations

import os
import secrets
import shlex
import time
from collections.abc import Callable

from ami.spec import ImageSpec
from ami.stages import FAILED, READY_DIR, staged_setup_commands, stages
from ami.userdata import setup_commands
from infra.errors import ProviderError
from infra.transport.base import Transport

# "0": one blocking setup before any task, as before (the benchmark's reference).
STAGES_ENV = "ORCHESTRATE_SETUP_STAGES"
SETUP_TIMEOUT_S = 3600.0
POLL_S = 0.5


def run_setup(
    transport: Transport,
    spec: ImageSpec,
    first: str | None,
    *,
    timeout_s: float = SETUP_TIMEOUT_S,
    clock: Callable[[], float] = time.monotonic,
) -> str | None:
    """Set the machine up for ``spec``; returns the ready folder while later stages still
    install, or None when the setup is wholly done (a spec that is not staged)."""
    ready_dir = f"{READY_DIR}-{secrets.token_hex(4)}"  # this setup's own (ami.stages)
    staged = os.environ.get(STAGES_ENV, "1") != "0"
    script = staged_setup_commands(spec, first, ready_dir) if staged else None
    if script is None:
        transport.run(["bash", "-c", setup_commands(spec)], timeout_s=timeout_s)
        return None
    stage = stages(spec, first)[0][0]
    ready, failed = (shlex.quote(f"{ready_dir}/{name}") for name in (stage, FAILED))
    look = f"if [ -e {ready} ]; then echo ready; elif [ -e {failed} ]; then echo failed; fi"
    job_log = f"{ready_dir}.log"  # the job's own output (the script also tees to its log)
    job = transport.start(["bash", "-c", script], env={}, log=job_log)
    deadline = clock() + timeout_s
    while True:
        status = transport.poll(job)
        seen = transport.run(["sh", "-c", look]).stdout.strip()
        if seen == "ready":
            return ready_dir
        if seen == "failed" or status.finished:
            tail = transport.run(["tail", "-n", "15", job_log], check=False).stdout.strip()
            raise ProviderError(
                f"setup of {spec.name} failed before {stage} was installed"
                f" (exit {status.exit_code}); the end of its log:\n{tail}"
            )
        if clock() > deadline:
            transport.stop(job, grace_s=5.0)
            raise ProviderError(f"setup of {spec.name} took over {timeout_s:g}s")
        time.sleep(POLL_S)
