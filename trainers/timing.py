"""The ``timing.jsonl`` writer: one JSON object per line, flushed and fsynced as it goes.

Standard library only, so a user's own training script can import it too::

    from trainers.timing import TimingLog
    with TimingLog("out/timing.jsonl") as log:
        log.start(framework="numpy")
        log.epoch(1, wall_s=1.2, samples_per_s=5e4, loss=0.3, error=0.08)

Rows: ``start``, ``compile`` (graph build/JIT time, kept apart from training time), ``epoch``
(``epoch, wall_s, samples_per_s, loss, error``), ``end``; every row carries ``t`` (unix time).
Appending means a trainer resumed from a checkpoint continues the same log.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO


class TimingLog:
    """Append-only event log; each row reaches the disk before the call returns."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: TextIO = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, event: str, **fields: Any) -> dict[str, Any]:
        row: dict[str, Any] = {"event": event, **fields, "t": time.time()}
        self._fh.write(json.dumps(row, default=_jsonable) + "\n")
        self._fh.flush()
        # fsync so a machine that is killed (spot reclaim, budget deadline) keeps the rows.
        os.fsync(self._fh.fileno())
        return row

    def start(self, **fields: Any) -> dict[str, Any]:
        return self.write("start", **fields)

    def compile(self, seconds: float, **fields: Any) -> dict[str, Any]:
        return self.write("compile", compile_s=seconds, **fields)

    def epoch(
        self,
        epoch: int,
        *,
        wall_s: float,
        samples_per_s: float,
        loss: float,
        error: float | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        return self.write(
            "epoch",
            epoch=epoch,
            wall_s=wall_s,
            samples_per_s=samples_per_s,
            loss=loss,
            error=error,
            **fields,
        )

    def end(self, **fields: Any) -> dict[str, Any]:
        return self.write("end", **fields)

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> TimingLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_timing(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a timing log; a torn last line (a killed writer) is skipped, not an error."""
    rows: list[dict[str, Any]] = []
    p = Path(path)
    if not p.exists():
        return rows
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _jsonable(value: Any) -> Any:
    # NumPy scalars and arrays reach us from trainers; keep this module free of a NumPy import.
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
