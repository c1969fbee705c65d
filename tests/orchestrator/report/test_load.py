"""The loader against recorded run directories: every number it returns is the file's."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from orchestrator.report.load import load_run
from orchestrator.state import Journal
from tests.orchestrator.report.conftest import metrics, timing

SKIP_REASON = "no GPU on this machine (nvidia-smi not found)"


def test_mnist_numbers_are_the_files_numbers(mnist_dir: Path) -> None:
    run = load_run(mnist_dir)
    done = [t for t in run.tasks if t.status == "done"]
    assert len(done) == 6 and len(run.tasks) == 12
    for t in done:
        m = metrics(mnist_dir, t.task_id)
        rows = [r for r in timing(mnist_dir, t.task_id) if r["event"] == "epoch"]
        assert t.test_error == m["test_error"]
        assert t.train_s == m["train_time_s"]
        assert t.compile_s == m["compile_time_s"]
        assert t.samples_per_s == m["samples_per_s"]
        assert t.final_loss == m["final_loss"]
        assert [e.error for e in t.epochs] == [r["error"] for r in rows]
        assert [e.wall_s for e in t.epochs] == [r["wall_s"] for r in rows]
        assert t.hidden == (300,) and t.batch_size == 500
        assert t.trainer == "mnist" and t.device == "cpu"
        assert t.task_id == f"mnist-{t.framework}-{t.optimizer}-cpu"


def test_skipped_variants_keep_their_reason(mnist_dir: Path) -> None:
    run = load_run(mnist_dir)
    skipped = [t for t in run.tasks if t.status == "skipped"]
    assert {t.device for t in skipped} == {"gpu"}
    assert {t.detail for t in skipped} == {SKIP_REASON}
    assert all(t.epochs == () and t.test_error is None for t in skipped)
    # the id alone tells what a skipped task would have been
    t = next(t for t in skipped if t.task_id == "mnist-theano-rmsprop-gpu")
    assert (t.trainer, t.framework, t.optimizer, t.device) == ("mnist", "theano", "rmsprop", "gpu")


def test_hardware_comes_from_the_manifest(mnist_dir: Path, pca_dir: Path) -> None:
    task = load_run(mnist_dir).tasks[0]
    raw = json.loads((mnist_dir / task.task_id / "manifest.json").read_text())
    assert task.hardware is not None
    assert task.hardware.cpu_model == raw["cpu"]["model"]
    assert task.hardware.gpu_model is None
    gpu = next(t for t in load_run(pca_dir).tasks if t.task_id == "pca-tensorflow-gpu")
    assert gpu.hardware is not None
    assert (gpu.hardware.gpu_model, gpu.hardware.gpu_memory_mib) == ("Tesla T4", 15360)
    assert "Tesla T4" in gpu.hardware.label()


def test_journal_gives_machines_and_forecast(mnist_dir: Path, journal: Journal) -> None:
    run = load_run(mnist_dir, journal)
    row = journal.machines(run.run_id)[0]
    (m,) = run.machines
    assert row.released_at is not None and row.acquired_at is not None
    assert m.basis == "journal" and m.name == "local" and m.hourly_usd == 0.0
    assert m.hours == pytest.approx((row.released_at - row.acquired_at) / 3600)
    assert run.spend_usd == 0.0 and run.forecast_usd == 0.0


def test_without_journal_prices_come_from_plan_json(pca_dir: Path) -> None:
    run = load_run(pca_dir)
    cpu = run.machine("cpu")
    assert cpu is not None and cpu.hourly_usd == 0.34 and cpu.basis == "task logs + plan.json"
    assert cpu.forecast_usd == pytest.approx(0.34 * 0.3333)
    assert run.forecast_usd == 0.2071


def test_pca_fields(pca_dir: Path, journal: Journal) -> None:
    run = load_run(pca_dir, journal)
    t = next(t for t in run.tasks if t.task_id == "pca-tensorflow-cpu")
    m = metrics(pca_dir, t.task_id)
    assert t.pca is not None
    assert [c.eigenvalue for c in t.pca.components] == m["eigenvalues"]
    assert [c.eigenvalue_numpy for c in t.pca.components] == m["eigenvalues_numpy"]
    assert t.pca.max_rel_error == max(m["eigenvalue_rel_error"])
    assert t.pca.max_angle_deg == max(m["angle_deg"])
    assert t.pca.explained_total == pytest.approx(sum(m["explained_variance_ratio"]))
    assert t.pca.iterations == sum(m["iterations"])
    assert t.pca.converged is True
    failed = next(t for t in run.tasks if t.task_id == "pca-theano-gpu")
    assert failed.status == "failed" and failed.pca is None
    assert failed.detail is not None and failed.detail.startswith("exit 3")


def test_pca_from_component_rows_when_metrics_are_missing(pca_dir: Path) -> None:
    (pca_dir / "pca-theano-cpu" / "metrics.json").unlink()  # killed before the end
    t = next(t for t in load_run(pca_dir).tasks if t.task_id == "pca-theano-cpu")
    rows = [r for r in timing(pca_dir, "pca-theano-cpu") if r["event"] == "component"]
    assert t.pca is not None
    assert [c.eigenvalue for c in t.pca.components] == [r["eigenvalue"] for r in rows]
    assert [c.iterations for c in t.pca.components] == [r["iterations"] for r in rows]
    assert t.pca.max_rel_error is None


def test_a_torn_log_and_missing_metrics_leave_what_exists(mnist_dir: Path) -> None:
    tid = "mnist-theano-adam-cpu"
    (mnist_dir / tid / "metrics.json").unlink()
    with open(mnist_dir / tid / "timing.jsonl", "a") as fh:
        fh.write('{"event": "epoch", "epo')  # the writer was killed mid-line
    t = next(t for t in load_run(mnist_dir).tasks if t.task_id == tid)
    rows = [r for r in timing_lines(mnist_dir / tid / "timing.jsonl") if r.get("event") == "epoch"]
    assert len(t.epochs) == 3
    assert t.test_error == rows[-1]["error"]
    assert t.train_s == pytest.approx(sum(r["wall_s"] for r in rows))


def timing_lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


def test_a_task_dir_missing_from_the_summary_is_still_reported(mnist_dir: Path) -> None:
    shutil.copytree(mnist_dir / "mnist-theano-adam-cpu", mnist_dir / "mnist-theano-sgd-cpu")
    t = next(t for t in load_run(mnist_dir).tasks if t.task_id == "mnist-theano-sgd-cpu")
    assert t.status == "unknown" and t.epochs


def test_an_empty_directory_loads_as_an_empty_run(tmp_path: Path) -> None:
    run = load_run(tmp_path)
    assert run.tasks == () and run.status == "unknown"
