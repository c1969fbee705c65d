"""The words a run, a task and a machine can be in: what ``orchestrate status`` shows and the
journal stores. StrEnums, so a value read back from SQLite compares equal to its member.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """A run's status, in the words the user reads in ``orchestrate status`` (and the journal
    stores): a StrEnum, so a value read back from SQLite compares equal to its member."""

    PLANNED = "planned"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # some task failed; the rest ran
    CAPPED = "capped"  # the cost guard stopped it at the cap
    INTERRUPTED = "interrupted"  # a signal stopped it, after cleanup
    DOWN = "down"  # `orchestrate down` finished it


class TaskStatus(StrEnum):
    """A task's status in the journal and the run's summary."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # the plan placed it nowhere (e.g. a gpu task without a GPU), with why
    STOPPED = "stopped"  # stopped before it finished (Ctrl-C, the cap, `down`)
    TIMEOUT = "timeout"  # ended at its timeout_minutes, partial results kept
    # How an attempt ended when its machine went away; the task itself is queued again (per the
    # recovery policy) and resumes from its last checkpoint that came back.
    PREEMPTED = "preempted"  # a spot interruption notice: checkpointed, then stopped
    LOST = "lost"  # its machine vanished without notice (unreachable, terminated)


class MachineStatus(StrEnum):
    """A machine's status: journalled ``requested`` before the provider is asked for it."""

    REQUESTED = "requested"
    RUNNING = "running"
    RELEASED = "released"
    FAILED = "failed"  # never acquired or lost; nothing of it is held


RUN_ACTIVE = (RunStatus.RUNNING, RunStatus.PLANNED)
TASK_DONE = TaskStatus.DONE
MACHINE_GONE = (MachineStatus.RELEASED, MachineStatus.FAILED)
MACHINE_HELD = (MachineStatus.REQUESTED, MachineStatus.RUNNING)
