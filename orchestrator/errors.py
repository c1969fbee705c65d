"""The whole error tree, with the exit code each branch maps to.

::

    OrchestrateError                      root (infra.errors); exit code on each class
    ├── SpecError            exit 2       issues: list[SpecIssue]; nothing launched
    ├── BudgetError          exit 2       forecast over the cap: refused before launch
    ├── ProviderError        exit 4       (infra.errors)
    │   ├── CredentialsError exit 2       no credentials; nothing launched
    │   ├── CapacityError                 retryable: next type / zone / on-demand
    │   ├── QuotaError                    names the quota to raise
    │   ├── LaunchTimeout
    │   └── MachinesUnavailable           a run ended with no task started: no machine reached
    ├── TransportError       exit 4       (infra.errors)
    │   ├── HostKeyMismatch               never auto-accepted
    │   ├── ConnectError
    │   ├── RemoteDiskFull
    │   ├── RejectedFile     exit 1       a fetched file broke infra.transport.fetch's rules
    │   └── CommandFailed                 .result holds argv, exit code, output
    ├── CheckpointStoreError exit 4       the S3 checkpoint store is unusable; names the bucket
    ├── TaskFailed           exit 1       some task failed; the run went on and lists it
    ├── RunCapped            exit 3       the cost guard stopped the run at the cap
    ├── RunInterrupted       exit 130     Ctrl-C/SIGTERM, after cleanup; `--resume RUN` hint
    ├── UnknownRun           exit 2       a run id the journal does not know
    ├── RunBusy              exit 2       the run's orchestrator is alive (pid, host): no resume
    ├── UsageError           exit 2       a command-line value missing or unknown; names the flag
    └── UnusableDir          exit 2       the state or runs directory cannot be made or written

The CLI prints ``str(error)`` without a traceback and exits with ``error.exit_code``; anything
else is a bug (traceback, exit 70).
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.errors import (
    CapacityError,
    CommandFailed,
    ConnectError,
    CredentialsError,
    HostKeyMismatch,
    LaunchTimeout,
    OrchestrateError,
    ProviderError,
    QuotaError,
    RemoteDiskFull,
    TransportError,
)

__all__ = [
    "BudgetError",
    "CapacityError",
    "CommandFailed",
    "ConnectError",
    "CredentialsError",
    "HostKeyMismatch",
    "LaunchTimeout",
    "MachinesUnavailable",
    "OrchestrateError",
    "ProviderError",
    "QuotaError",
    "RemoteDiskFull",
    "RunBusy",
    "RunCapped",
    "RunInterrupted",
    "SpecError",
    "SpecIssue",
    "TaskFailed",
    "TransportError",
    "UnknownRun",
    "UnusableDir",
    "UsageError",
]


@dataclass(frozen=True)
class SpecIssue:
    """One problem in an experiment file, located precisely enough to jump to it."""

    file: str
    line: int
    column: int
    path: str
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        # Line 0 means "the file as a whole" (it cannot be read): no made-up ":0:0".
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        field = f"{self.path}: " if self.path else ""
        hint = f"; {self.hint}" if self.hint else ""
        return f"{where}: {field}{self.message}{hint}"


class SpecError(OrchestrateError):
    """The experiment file is invalid; every issue is listed, nothing was launched."""

    exit_code = 2

    def __init__(self, issues: list[SpecIssue]) -> None:
        self.issues = issues
        n = len(issues)
        head = f"{n} error{'s' if n != 1 else ''} in the experiment file; nothing was launched:"
        super().__init__("\n".join([head, *(f"  {i}" for i in issues)]))


class BudgetError(OrchestrateError):
    """The forecast is over ``budget.max_usd``: refused before anything is launched."""

    exit_code = 2

    def __init__(self, forecast_usd: float, cap_usd: float, detail: str = "") -> None:
        self.forecast_usd = forecast_usd
        self.cap_usd = cap_usd
        super().__init__(
            f"forecast ${forecast_usd:.2f} is over the budget cap ${cap_usd:.2f}; nothing was "
            f"launched. {detail}Raise budget.max_usd or shrink the matrix."
        )


class TaskFailed(OrchestrateError):
    """One or more tasks failed; the others ran, and the summary lists each."""

    exit_code = 1

    def __init__(self, run_id: str, failed: list[str]) -> None:
        self.run_id, self.failed = run_id, failed
        shown = ", ".join(failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5 else "")
        super().__init__(
            f"run {run_id}: {len(failed)} task(s) failed ({shown}); the others ran. "
            f"See: orchestrate status {run_id}"
        )


class RunCapped(OrchestrateError):
    """The cost guard stopped the run at the cap; results so far were kept."""

    exit_code = 3

    def __init__(self, run_id: str, reason: str) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id} stopped at its budget cap ({reason}); results so far kept")


class MachinesUnavailable(ProviderError):
    """The run ended without starting a task that failed: every failure was a machine that
    could not be acquired or reached (no capacity, unreachable, host key refused)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(
            f"run {run_id}: no machine could be acquired or reached, so its tasks never "
            f"started. See: orchestrate status {run_id}"
        )


class RunInterrupted(OrchestrateError):
    """Interrupted by a signal; everything was stopped, fetched and released first."""

    exit_code = 130

    def __init__(self, run_id: str, spec_path: str) -> None:
        self.run_id = run_id
        super().__init__(
            f"run {run_id} interrupted; finished results kept, every machine released.\n"
            f"Continue it with: orchestrate run {spec_path} --resume {run_id}"
        )


class UnknownRun(OrchestrateError):
    """A run id that is not in the journal."""

    exit_code = 2


class RunBusy(OrchestrateError):
    """The run is held by a live orchestrator (its lease in the journal); nothing was started.

    ``--resume`` of such a run would start every task a second time in the same directories.
    """

    exit_code = 2


class UsageError(OrchestrateError):
    """A command-line value is missing or names nothing known (``--region``, a task id);
    nothing was done."""

    exit_code = 2


class UnusableDir(OrchestrateError):
    """The state or runs directory cannot be created or written (a file in the way, no
    permission, a name too long); nothing was launched."""

    exit_code = 2
