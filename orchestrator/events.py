"""What the engine says while it works; it never prints (STYLE rule 8).

Events are plain values. The CLI renders them with rich or as JSON lines, the run directory
keeps them in ``run.log``, and tests record them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    run_dir: str
    tasks: tuple[tuple[str, str, str], ...]  # (task id, machine, initial status)
    kind: str = field(default="run_started", init=False)


@dataclass(frozen=True)
class MachineEvent:
    machine: str
    state: str  # requested, acquired, bootstrapped, released, failed
    detail: str = ""
    traceback: str = ""  # set when a bug (not an OrchestrateError) failed the machine
    kind: str = field(default="machine", init=False)


@dataclass(frozen=True)
class TaskEvent:
    task_id: str
    state: str  # pending, running, done, failed, skipped, stopped
    detail: str = ""
    traceback: str = ""  # set when a bug (not an OrchestrateError) failed the task; for run.log
    kind: str = field(default="task", init=False)


@dataclass(frozen=True)
class TaskOutput:
    task_id: str
    text: str
    kind: str = field(default="output", init=False)


@dataclass(frozen=True)
class RunEnded:
    run_id: str
    status: str
    kind: str = field(default="run_ended", init=False)


Event = RunStarted | MachineEvent | TaskEvent | TaskOutput | RunEnded


def event_dict(e: Event) -> dict[str, Any]:
    """The event as a JSON-able dict with its kind (``--json`` and ``run.log``)."""
    return asdict(e)


class Reporter(Protocol):
    """Receives every event; must not raise and must be safe to call from worker threads."""

    def event(self, e: Event) -> None: ...


class RecordingReporter:
    """Keeps every event in a list (tests; ``--json`` summaries)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def event(self, e: Event) -> None:
        self.events.append(e)


class TeeReporter:
    """Sends each event to several reporters (the terminal and the run's log file)."""

    def __init__(self, *reporters: Reporter) -> None:
        self.reporters = list(reporters)

    def add(self, reporter: Reporter) -> None:
        self.reporters.append(reporter)

    def event(self, e: Event) -> None:
        """Pass the event to every reporter, in order."""
        for r in self.reporters:
            r.event(e)
