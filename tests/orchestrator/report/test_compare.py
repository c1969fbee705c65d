"""Two recorded runs side by side."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.report import build_report
from orchestrator.report.compare import compare_runs
from orchestrator.report.load import load_run
from orchestrator.report.render import to_json, to_markdown
from tests.orchestrator.report.conftest import metrics


def test_tasks_are_matched_by_id(mnist_dir: Path, mnist_b_dir: Path) -> None:
    a, b = load_run(mnist_dir), load_run(mnist_b_dir)
    totals, tasks = compare_runs(a, b)
    recs = {r["task"]: r for r in tasks.records()}
    assert set(recs) == {t.task_id for t in a.tasks} | {t.task_id for t in b.tasks}
    only_a = recs["mnist-theano-rmsprop-cpu"]  # B ran no rmsprop
    assert only_a["status_b"] == "absent" and only_a["time_ratio"] is None
    both = recs["mnist-tensorflow-adam-cpu"]
    ma, mb = (
        metrics(mnist_dir, "mnist-tensorflow-adam-cpu"),
        metrics(mnist_b_dir, "mnist-tensorflow-adam-cpu"),
    )
    assert both["train_s_a"] == ma["train_time_s"] and both["train_s_b"] == mb["train_time_s"]
    assert both["time_ratio"] == pytest.approx(
        float(mb["train_time_s"]) / float(ma["train_time_s"])
    )
    assert both["error_delta"] == pytest.approx(float(mb["test_error"]) - float(ma["test_error"]))
    t = {r["metric"]: r for r in totals.records()}
    assert (t["tasks done"]["a"], t["tasks done"]["b"]) == (6.0, 4.0)


def test_comparison_reaches_every_format(mnist_dir: Path, mnist_b_dir: Path) -> None:
    report = build_report(mnist_dir, compare_dir=mnist_b_dir)
    b_id = load_run(mnist_b_dir).run_id
    assert report.compare_run_id == b_id
    assert f"## Compared with {b_id}" in to_markdown(report)
    data = to_json(report)
    assert data["compare"]["run_id"] == b_id
    assert set(data["compare"]["tables"]) == {"compare_totals", "compare_tasks"}


def test_pca_rows_carry_their_numbers(pca_dir: Path) -> None:
    """PCA tasks compare by solve time and eigenvalue error, not a row of dashes."""
    m = metrics(pca_dir, "pca-tensorflow-cpu")
    a = load_run(pca_dir)
    _, tasks = compare_runs(a, a)
    row = {r["task"]: r for r in tasks.records()}["pca-tensorflow-cpu"]
    assert row["train_s_a"] == pytest.approx(m["solve_s"]) and row["time_ratio"] == 1.0
    assert row["eig_err_a"] == pytest.approx(max(m["eigenvalue_rel_error"]))
