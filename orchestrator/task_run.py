"""One task on one machine: its command line and environment, following it, its outputs.

Split from the engine so the engine keeps the *when* (queues, slots, machines, cancellation)
and this module the *how* of a single task.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shlex
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ami.stages import ALL, FAILED
from ami.userdata import SETUP_LOG
from infra.errors import OrchestrateError
from infra.local import THREADS_TAG, thread_env
from infra.provider import METADATA_TAG, Machine
from infra.transport.base import Job, Transport
from orchestrator.events import Reporter, TaskOutput
from orchestrator.matrix import Task, with_python_on_path
from orchestrator.paths import Workspace
from orchestrator.result_files import TimingEvent, TimingKey
from orchestrator.state import TaskStatus

POLL_FIRST_S = 0.005  # start polling fast so short tasks finish without a fixed delay ...
POLL_GROWTH = 1.25  # ... and back off gently ...
SETUP_TIMEOUT_S = 3600.0
# ``python -S -c`` this: ``trainers.measure`` run as with ``-m``, without runpy's imports.
MEASURE_ENTRY = "import sys, trainers.measure as m; sys.exit(m.main())"


class TaskSetupFailed(OrchestrateError):
    """A job's ``setup:`` command failed on a machine; its tasks there fail with the output."""


@dataclass(frozen=True)
class TaskCommand:
    argv: list[str]
    env: dict[str, str]
    cwd: str


def task_command(
    task: Task,
    machine: Machine,
    ws: Workspace,
    *,
    run_id: str,
    data_dir: str | None,
    gpu: int | None,
    measured: bool,
    metadata_url: str | None = None,
) -> TaskCommand:
    """What to start on the machine for ``task``: the trainer contract's command line (or the
    user's command), wrapped by ``trainers.measure``, and the environment it is promised.

    ``metadata_url`` (else the machine's own, ``METADATA_TAG``) is the instance metadata
    service the wrapper watches for spot notices; on one it signals the task to checkpoint and
    stop (USR1 for the bundled trainers, TERM for a user's command, which may not handle USR1).
    """
    out = ws.out(task.id)
    argv = task.argv(python=machine.python, out=out, data_dir=data_dir)
    if task.trainer == "mnist":
        argv += ["--checkpoint-dir", ws.checkpoints(task.id)]
    if measured:
        # Timing without cooperation: wall time, exit code and peak memory for any command.
        # -S: the wrapper is stdlib-only, so skip site-packages scanning (~15 ms a task);
        # -c, not -m: runpy and what it imports cost another ~6 ms a task (issue 18).
        argv = [machine.python, "-S", "-c", MEASURE_ENTRY, "--out", out, "--", *argv]
    env = {
        "PYTHONPATH": ws.code,
        "PYTHONUNBUFFERED": "1",
        "ORCHESTRATE_RUN": run_id,
        "ORCHESTRATE_TASK": task.id,
        "ORCHESTRATE_OUT": out,
        "ORCHESTRATE_PARAMS": json.dumps(dict(task.params)),
        # cpu tasks see no GPU (a cpu variant on a GPU machine); a gpu task sees its own.
        "CUDA_VISIBLE_DEVICES": "" if gpu is None else str(gpu),
        # Files written here come back while the task runs and follow it to a new machine.
        "ORCHESTRATE_CHECKPOINT_DIR": ws.checkpoints(task.id),
    }
    if imds := metadata_url or machine.tags.get(METADATA_TAG):
        env["ORCHESTRATE_IMDS_URL"] = imds
    # Also how a drained machine (``preempt-now`` in the task's out folder) stops its task.
    env["ORCHESTRATE_PREEMPT_SIGNAL"] = "TERM" if task.is_script else "USR1"
    if poll := os.environ.get("ORCHESTRATE_IMDS_POLL_S"):  # how often the wrapper looks (tests)
        env["ORCHESTRATE_IMDS_POLL_S"] = poll
    if not task.is_script:
        # TensorFlow's C++ notices (oneDNN, cuda probing) would become the task's status line.
        env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if threads := machine.tags.get(THREADS_TAG):
        # Tasks share this machine's cores in slots; each keeps to its share (infra.local).
        env.update(thread_env(int(threads)))
    for key in ("ORCHESTRATE_DATA_DIR", "XDG_CACHE_HOME"):
        # This machine's data cache settings mean nothing on another machine; a machine with
        # no address is this one.
        if key in os.environ and machine.address is None:
            env[key] = os.environ[key]
    return TaskCommand(argv, env, ws.work if task.is_script else ws.code)


def ready_wait(machine: Machine, framework: str | None) -> str:
    """Shell text that waits until ``framework`` (every stage, for None) is installed on a
    machine whose staged setup still runs (``ami.stages``), and fails with where to look if the
    setup failed instead; empty where the machine is wholly set up."""
    if machine.setup_ready_dir is None:
        return ""
    q = shlex.quote
    ready = q(f"{machine.setup_ready_dir}/{framework or ALL}")
    failed = q(f"{machine.setup_ready_dir}/{FAILED}")
    why = q(
        f"[orchestrate] this machine's setup failed before {framework or 'every framework'}"
        f" was installed: its log is {SETUP_LOG} there"
    )
    # A subshell: its exit fails the prelude, not the job's wrapper (which records the code).
    return (
        f"( until [ -e {ready} ]; do if [ -e {failed} ]; then echo {why} >&2; exit 1; fi;"
        " sleep 0.2; done )"
    )


def start_prelude(out: str, *, stale: Sequence[str], started: str) -> str:
    """Shell text a task's job runs before its command (``Transport.start``'s ``prelude``):
    its out folder made, ``stale`` files (the last attempt's notices) gone, and ``started``
    created, the mark its outputs must be newer than. Tests first, so when nothing is to be
    done (the common case) no program runs, only shell builtins."""
    q = shlex.quote
    steps = [f"{{ [ -d {q(out)} ] || mkdir -p {q(out)}; }}"]
    steps += [f"{{ [ ! -e {q(f)} ] && [ ! -L {q(f)} ] || rm -f {q(f)}; }}" for f in stale]
    steps.append(f": > {q(started)}")
    return " && ".join(steps)


class SetupGate:
    """Runs a job's ``setup:`` once per machine: a marker named by the text's hash makes it
    idempotent across tasks and runs; a lock keeps two slots from running it at once.

    The setup runs detached like a task (``Transport.start``), so it is a journalled job that
    ``down`` can find and stop after a crash, and a stop request (Ctrl-C, the cost cap) ends it
    at the next poll instead of waiting out its timeout.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[tuple[str, str], threading.Lock] = {}

    def run_once(
        self,
        machine: Machine,
        transport: Transport,
        ws: Workspace,
        setup: str,
        *,
        should_stop: Callable[[], bool] = lambda: False,
        on_start: Callable[[Job], None] | None = None,
        timeout_s: float = SETUP_TIMEOUT_S,
        grace_s: float = 5.0,
    ) -> None:
        """Run ``setup`` on the machine unless its marker says it ran (see the class)."""
        digest = hashlib.sha256(setup.encode()).hexdigest()[:16]
        with self._lock:
            lock = self._locks.setdefault((machine.id, digest), threading.Lock())
        marker = shlex.quote(f"{machine.workspace_root}/.setup-{digest}.done")
        # After every framework is in: its installs must not race the machine's own.
        wait = ready_wait(machine, None)
        run = f"test -e {marker} || {{ ( {setup} ) && touch {marker}; }}"
        script = with_python_on_path(machine.python, f"{wait} && {{ {run}; }}" if wait else run)
        log = f"{ws.root}/logs/setup-{digest}.log"
        with lock:
            job = transport.start(["sh", "-c", script], env={}, log=log, cwd=ws.work)
            if on_start is not None:
                on_start(job)
            offset, text, t0, delay = 0, "", time.monotonic(), POLL_FIRST_S
            while True:
                status = transport.poll(job, log_offset=offset)
                offset, text = status.log_offset, (text + status.log_chunk)[-4000:]
                if status.finished:
                    break
                if should_stop() or time.monotonic() - t0 > timeout_s:
                    transport.stop(job, grace_s=grace_s)
                    why = "stopped" if should_stop() else f"timed out after {timeout_s:g}s"
                    raise TaskSetupFailed(f"setup {why}")
                time.sleep(delay)
                delay = min(delay * POLL_GROWTH, 0.5)
        if status.exit_code != 0:
            tail = " | ".join(text.strip().splitlines()[-5:])
            raise TaskSetupFailed(f"setup failed (exit {status.exit_code}): {tail}")


# C0 controls but tab, newline and carriage return; DEL; C1 controls (an 8-bit CSI is 0x9b).
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """A remote's log text made safe for a terminal: escape sequences and other controls are
    shown as ``\\x1b``-style text, never acted on (``task.log`` keeps the raw bytes)."""
    return _CONTROLS.sub(lambda m: ascii(m.group())[1:-1], text)


def follow(
    transport: Transport,
    job: Job,
    local_log: Path,
    task_id: str,
    reporter: Reporter,
    *,
    should_stop: Callable[[], bool],
    timeout_s: float | None,
    grace_s: float,
    poll_max_s: float,
    tick: Callable[[str], None] | None = None,
) -> tuple[int | None, bool, bool]:
    """Stream the job's log into ``local_log`` and events until it ends, is stopped or times
    out; returns (exit code, stopped, timed out). ``tick`` gets each poll's new log text while
    the job runs (checkpoint pull-back, ``orchestrator.recovery``)."""
    offset, delay = 0, POLL_FIRST_S
    t0 = time.monotonic()
    with open_log(local_log) as fh:
        while True:
            status = transport.poll(job, log_offset=offset)
            offset = status.log_offset
            if status.log_chunk:
                fh.write(status.log_chunk)
                fh.flush()
                reporter.event(TaskOutput(task_id, printable(status.log_chunk)))
            if status.finished:
                return status.exit_code, False, False
            if tick is not None:
                tick(status.log_chunk)
            over_time = timeout_s is not None and time.monotonic() - t0 > timeout_s
            stopping = should_stop()
            if stopping or over_time:
                transport.stop(job, grace_s=grace_s)
                final = transport.poll(job, log_offset=offset)
                if final.log_chunk:
                    fh.write(final.log_chunk)
                    reporter.event(TaskOutput(task_id, printable(final.log_chunk)))
                return final.exit_code, stopping, over_time and not stopping
            time.sleep(delay)
            delay = min(delay * POLL_GROWTH, poll_max_s)


def open_log(path: Path) -> TextIO:
    """``path`` opened for appending without following a symlink: a link planted there (by a
    hostile fetch before fetches were checked, or by hand) is removed, then the file created."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        os.unlink(path)
        fd = os.open(path, flags | os.O_EXCL, 0o644)
    return os.fdopen(fd, "a", encoding="utf-8")


def bug_line(exc: BaseException) -> str:
    """The one-line reason a bug gives a task or machine (the traceback goes to run.log)."""
    first = (str(exc).splitlines() or [""])[0][:300]
    return f"internal error: {type(exc).__name__}: {first} (traceback in run.log)"


def traceback_text(exc: BaseException) -> str:
    """The exception's traceback as text, for ``run.log``."""
    return "".join(traceback.format_exception(exc))


def wrote_end_ok(timing: Path) -> bool:
    """Whether the trainer's ``timing.jsonl`` ends with its ``end`` row (status ok, or none
    given): it finished, whatever signal reached it afterwards."""
    try:
        lines = [ln for ln in timing.read_text(errors="replace").splitlines() if ln.strip()]
        row = json.loads(lines[-1]) if lines else {}
    except (OSError, ValueError):
        return False
    ended = row.get(TimingKey.EVENT) == TimingEvent.END if isinstance(row, dict) else False
    return ended and row.get(TimingKey.STATUS, "ok") == "ok"


def task_outcome(
    *,
    exit_code: int | None,
    stopped: bool,
    timed_out: bool,
    timing: Path,
    log: Path,
    stop_reason: str | None,
    timeout_s: float | None,
) -> tuple[str, str | None]:
    """The status a finished task is recorded with, and its detail.

    A stop or a timeout that reached a task after it wrote its ``end`` row leaves it ``done``:
    its results are whole (a trainer that wrote "end ok" just before SIGTERM is not
    ``stopped``). An exit 0 after a stop is not enough: a command may exit 0 on SIGTERM.
    """
    if (stopped or timed_out) and wrote_end_ok(timing):
        return TaskStatus.DONE, None
    if stopped:
        return TaskStatus.STOPPED, stop_reason or "stopped"
    if timed_out:  # partial results were fetched; the run goes on
        return TaskStatus.TIMEOUT, f"stopped at its timeout of {timeout_s or 0.0:g}s"
    if exit_code == 0:
        return TaskStatus.DONE, None
    return TaskStatus.FAILED, f"exit {exit_code}: {last_line(log)}"


def last_line(path: Path) -> str:
    """The log's last non-blank line (for a failed task's reason), terminal-safe."""
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return printable(lines[-1][:300]) if lines else ""


def collect_outputs(work: str, out: str, patterns: tuple[str, ...], *, newer_than: str) -> str:
    """A shell snippet copying ``outputs:`` globs from the workdir into ``out/outputs/``.

    Only files written since the task started are taken, so tasks sharing a workdir do not
    pick up each other's files. Patterns are validated in the spec (no spaces or shell
    syntax), so they expand unquoted.
    """
    dest = shlex.quote(f"{out}/outputs")
    marker = shlex.quote(newer_than)
    lines = [f"cd {shlex.quote(work)} || exit 0"]
    for pattern in patterns:
        lines.append(
            f'for f in {pattern}; do [ -e "$f" ] && [ "$f" -nt {marker} ] || continue; '
            f'mkdir -p {dest}/"$(dirname "$f")"; cp -a "$f" {dest}/"$f"; done'
        )
    return "\n".join(lines)
