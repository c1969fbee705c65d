"""The trainer -> orchestrator file contract (issue 15, point 5): the real trainers, run as the
engine runs them on a tiny subset, write every file and key ``orchestrator.result_files``
names, so the summary and the report never read a key no trainer writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from orchestrator.result_files import (
    MANIFEST_FILE,
    METRICS_FILE,
    TIMING_FILE,
    ManifestKey,
    MetricsKey,
    ReferenceKey,
    TimingEvent,
    TimingKey,
    read_json,
    read_timing,
)
from tests.mnist_data import MNIST_DIR, needs_mnist

pytestmark = needs_mnist

ROOT = Path(__file__).resolve().parents[2]
COMMON = {MetricsKey.TRAINER, MetricsKey.FRAMEWORK, MetricsKey.DEVICE}
MNIST_METRICS = COMMON | {
    MetricsKey.OPTIMIZER,
    MetricsKey.DEVICE_REQUESTED,
    MetricsKey.TEST_ERROR,
    MetricsKey.FINAL_LOSS,
    MetricsKey.TRAIN_TIME_S,
    MetricsKey.COMPILE_TIME_S,
    MetricsKey.SAMPLES_PER_S,
    MetricsKey.HIDDEN,
    MetricsKey.BATCH_SIZE,
}
PCA_METRICS = COMMON | {
    MetricsKey.EIGENVALUES,
    MetricsKey.TOTAL_VARIANCE,
    MetricsKey.EXPLAINED_VARIANCE_RATIO,
    MetricsKey.PCA_ITERATIONS,
    MetricsKey.CONVERGED,
    MetricsKey.SOLVE_S,
    MetricsKey.REFERENCE,
}
EPOCH_KEYS = {
    TimingKey.EPOCH,
    TimingKey.WALL_S,
    TimingKey.SAMPLES_PER_S,
    TimingKey.LOSS,
    TimingKey.ERROR,
}
COMPONENT_KEYS = {TimingKey.EIGENVALUE, TimingKey.ITERATIONS, TimingKey.WALL_S}
START_KEYS = {TimingKey.TRAINER, TimingKey.FRAMEWORK, TimingKey.DEVICE}


def _run(module: str, out: Path, *args: str) -> None:
    argv = [sys.executable, "-m", module, "--framework", "tensorflow", "--device", "cpu"]
    argv += ["--out", str(out), "--data-dir", str(MNIST_DIR), *args]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _keys(rows: list[dict[str, Any]], event: TimingEvent) -> set[str]:
    found = [set(r) for r in rows if r.get(TimingKey.EVENT) == event]
    assert found, f"no {event} row"
    return set.intersection(*found)


def _common(out: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows = read_timing(out / TIMING_FILE)
    assert all(TimingKey.T in r for r in rows)
    assert rows[0][TimingKey.EVENT] == TimingEvent.START and set(rows[0]) >= START_KEYS
    assert rows[-1][TimingKey.EVENT] == TimingEvent.END
    manifest = read_json(out / MANIFEST_FILE)
    assert set(ManifestKey) <= set(manifest), set(ManifestKey) - set(manifest)
    return rows, read_json(out / METRICS_FILE)


def test_mnist_writes_every_key_the_orchestrator_reads(tmp_path: Path) -> None:
    _run("trainers.mnist", tmp_path, "--optimizer", "sgd", "--epochs", "1", "--subset", "1000")
    rows, metrics = _common(tmp_path)
    assert _keys(rows, TimingEvent.EPOCH) >= EPOCH_KEYS
    assert set(metrics) >= MNIST_METRICS, MNIST_METRICS - set(metrics)


def test_pca_writes_every_key_the_orchestrator_reads(tmp_path: Path) -> None:
    _run("trainers.pca", tmp_path, "--components", "2", "--subset", "1000")
    rows, metrics = _common(tmp_path)
    assert _keys(rows, TimingEvent.COMPONENT) >= COMPONENT_KEYS
    assert set(metrics) >= PCA_METRICS, PCA_METRICS - set(metrics)
    assert set(ReferenceKey) <= set(metrics[MetricsKey.REFERENCE])
