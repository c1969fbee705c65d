"""Progress as plain, timestamped lines, for a ``run`` whose output is not a terminal.

Live widgets (rich's progress bars) redraw in place, so piped to a file or a CI log they show
nothing for minutes. This reporter writes one line per thing that happened instead:

    11:02:03 run quickstart-20261201-110203-ab12: 16 tasks (8 skipped) -> runs/quickstart-...
    11:02:04 mnist-tensorflow-adam-cpu started on local
    11:02:31 mnist-tensorflow-adam-cpu epoch 1/2: loss 0.3120, error 0.0712, 41,020 samples/s
    11:02:58 mnist-tensorflow-adam-cpu done (54.2s)
    11:05:10 run quickstart-20261201-110203-ab12 done

Progress lines from a task's log are the ones that say how far it is (``epoch N/M``,
``component N/M``, ``iteration``); the rest of the log stays in ``task.log`` (``orchestrate
logs``). Skipped tasks are counted once at the start, not listed.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable
from typing import IO

from orchestrator.events import Event, MachineEvent, RunEnded, RunStarted, TaskEvent, TaskOutput
from orchestrator.state import TaskStatus

_PROGRESS = re.compile(r"\b(epoch|component|iteration|step)\s*[=:]?\s*\d+\s*/\s*\d+", re.I)


class LineReporter:
    """One timestamped line per task start, progress line, task end and machine change."""

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.stream = stream or sys.stdout
        self.clock = clock
        self._lock = threading.Lock()

    def _say(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(self.clock()))
        self.stream.write(f"{stamp} {text}\n")
        self.stream.flush()

    def event(self, e: Event) -> None:
        """Print the event as a timestamped line (output piped, not a terminal)."""
        with self._lock:
            self._event(e)

    def _event(self, e: Event) -> None:
        if isinstance(e, RunStarted):
            skipped = sum(1 for _, _, status in e.tasks if status == TaskStatus.SKIPPED)
            extra = f" ({skipped} skipped)" if skipped else ""
            self._say(f"run {e.run_id}: {len(e.tasks)} tasks{extra} -> {e.run_dir}")
        elif isinstance(e, TaskEvent):
            if e.state in (TaskStatus.PENDING, TaskStatus.SKIPPED):
                return
            if e.state == TaskStatus.RUNNING:
                self._say(f"{e.task_id} started" + (f" on {e.detail}" if e.detail else ""))
            else:
                self._say(f"{e.task_id} {e.state}" + (f" ({e.detail})" if e.detail else ""))
        elif isinstance(e, TaskOutput):
            for line in e.text.splitlines():
                if _PROGRESS.search(line):
                    self._say(f"{e.task_id} {line.strip()}")
        elif isinstance(e, MachineEvent):
            self._say(f"machine {e.machine}: {e.state} {e.detail}".rstrip())
        elif isinstance(e, RunEnded):
            self._say(f"run {e.run_id} {e.status}")
