"""The files a trainer leaves in its ``--out`` directory, the keys the orchestrator reads from
them, and how they are read safely.

The trainers are a separate program (they import nothing of ours, and we import nothing of
theirs), so the names they write are a contract across a process boundary. This module names
the orchestrator's side of it once; ``tests/contract/test_trainer_files.py`` runs the real
trainers on a tiny subset and checks that every key named here is one they write. The summary
and the report read through these names, never by guessing among spellings.
"""

from __future__ import annotations

import json
import os
import stat
from enum import StrEnum
from pathlib import Path
from typing import Any

TIMING_FILE = "timing.jsonl"  # one JSON object per line, flushed as it goes
METRICS_FILE = "metrics.json"  # the final numbers
MANIFEST_FILE = "manifest.json"  # what it ran on


class TimingEvent(StrEnum):
    """The ``event`` of a ``timing.jsonl`` row."""

    START = "start"
    COMPILE = "compile"
    EPOCH = "epoch"  # mnist: one per epoch
    COMPONENT = "component"  # pca: one per component found
    END = "end"


class TimingKey(StrEnum):
    """Keys of ``timing.jsonl`` rows the orchestrator reads."""

    EVENT = "event"
    T = "t"  # unix time the row was written (every row)
    STATUS = "status"  # end: "ok" when the trainer finished its work
    TRAINER = "trainer"  # start
    FRAMEWORK = "framework"  # start
    DEVICE = "device"  # start
    COMPILE_S = "compile_s"  # compile
    EPOCH = "epoch"  # epoch
    WALL_S = "wall_s"  # epoch, component
    SAMPLES_PER_S = "samples_per_s"  # epoch
    LOSS = "loss"  # epoch
    ERROR = "error"  # epoch: test error after it
    EIGENVALUE = "eigenvalue"  # component
    ITERATIONS = "iterations"  # component


class MetricsKey(StrEnum):
    """Keys of ``metrics.json`` the orchestrator reads (both trainers, then each one's)."""

    TRAINER = "trainer"
    FRAMEWORK = "framework"
    DEVICE = "device"
    # mnist
    OPTIMIZER = "optimizer"
    DEVICE_REQUESTED = "device_requested"
    TEST_ERROR = "test_error"
    FINAL_LOSS = "final_loss"
    TRAIN_TIME_S = "train_time_s"
    COMPILE_TIME_S = "compile_time_s"
    SAMPLES_PER_S = "samples_per_s"
    HIDDEN = "hidden"
    BATCH_SIZE = "batch_size"
    # pca
    EIGENVALUES = "eigenvalues"
    TOTAL_VARIANCE = "total_variance"
    EXPLAINED_VARIANCE_RATIO = "explained_variance_ratio"
    PCA_ITERATIONS = "iterations"
    CONVERGED = "converged"
    SOLVE_S = "solve_s"
    REFERENCE = "reference"  # pca: the NumPy comparison, a nested object (ReferenceKey)


class ReferenceKey(StrEnum):
    """Keys of ``metrics.json``'s ``reference`` object (PCA against ``numpy.linalg.eigh``)."""

    EIGENVALUES_NUMPY = "eigenvalues_numpy"
    EIGENVALUE_REL_ERROR = "eigenvalue_rel_error"  # one per component
    ANGLE_DEG = "angle_deg"  # one per component


class ManifestKey(StrEnum):
    """Keys of ``manifest.json`` the orchestrator reads."""

    HOST = "host"
    CPU = "cpu"  # {"model", "usable_cores", "logical_cores"}
    GPU = "gpu"  # {"model", "driver", "all": [{"memory_mib"}]}
    VERSIONS = "versions"  # framework -> version
    DEVICE_USED = "device_used"
    DEVICE_REQUESTED = "device_requested"


RESULT_MAX_BYTES = 256 << 20  # a result file larger than this is not read whole


def read_result(path: Path) -> str:
    """A result file's text, read safely: only a regular file (a FIFO or a device planted in a
    run directory must not hang ``run`` or ``report``), never through a symlink, and at most
    ``RESULT_MAX_BYTES``. Raises ``OSError`` otherwise, as a missing file does."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > RESULT_MAX_BYTES:
            raise OSError(f"{path} is not a regular file of a sane size")
        return fh.read(RESULT_MAX_BYTES).decode("utf-8", errors="replace")


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a file; ``{}`` when it is missing, torn or not an object (a trainer
    killed mid-write, a task that never started), or not a regular file."""
    try:
        data = json.loads(read_result(path))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def read_timing(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``timing.jsonl``; a torn last line (a killed writer) is skipped."""
    try:
        lines = read_result(path).splitlines()
    except OSError:
        return []
    rows = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def flat_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics.json`` with PCA's nested NumPy comparison (``reference``) lifted to the top
    level beside the trainer's own numbers (the trainer's win on a clash)."""
    reference = metrics.get(MetricsKey.REFERENCE)
    return {**reference, **metrics} if isinstance(reference, dict) else metrics
