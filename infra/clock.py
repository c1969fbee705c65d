"""The one ``Clock`` seam (STYLE.md's small seams): wall time for tags, deadlines and spend,
monotonic time for waits. Tests pass a fake that moves only when asked, so waits and
three-hour spends cost no time."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Wall time for tags, deadlines and spend; monotonic time for waits."""

    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """The wall time, UTC."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        return time.monotonic()
