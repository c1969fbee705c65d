"""Trainer errors and the exit codes of the trainer process contract.

exit 0 ok · 2 bad input (arguments, data file, checksum) · 3 requested device unavailable ·
75 preempted (SIGUSR1: the machine is going away; run again with the same checkpoint folder) ·
128+N stopped by signal N (143 SIGTERM, 130 Ctrl-C).
"""

from __future__ import annotations

import signal

# EX_TEMPFAIL of sysexits.h, "try again later": the work so far is saved and a restart resumes.
PREEMPTED_EXIT_CODE = 75
# What `trainers.measure` sends a trainer on a spot interruption notice (or a drain).
PREEMPT_SIGNAL = signal.SIGUSR1


class TrainerError(Exception):
    """Something the user can fix; printed as one line, never with a traceback."""

    exit_code = 2


class BadArgument(TrainerError):
    """An argument is out of range or names nothing we know."""


class DataError(TrainerError):
    """The data set is missing, corrupt, or fails its checksum."""


class DeviceUnavailable(TrainerError):
    """``--device gpu`` was asked for and no GPU is usable; never silently run on the CPU."""

    exit_code = 3


class Stopped(Exception):
    """A signal asked the run to stop; raised at a boundary (an epoch, an iteration), once the
    work before it is saved. `PREEMPT_SIGNAL` means the machine is being taken away, which the
    orchestrator retries elsewhere: status ``preempted`` and `PREEMPTED_EXIT_CODE`, not 128+N."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.preempted = signum == PREEMPT_SIGNAL
        self.status = "preempted" if self.preempted else "stopped"
        self.exit_code = PREEMPTED_EXIT_CODE if self.preempted else 128 + signum
