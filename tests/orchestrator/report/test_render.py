"""Every output format carries the fixture's numbers: terminal, Markdown, CSV, JSON and HTML."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from orchestrator.report import build_report
from orchestrator.report.document import Report
from orchestrator.report.html import to_html
from orchestrator.report.render import CSV_COLUMNS, render_terminal, to_csv, write_outputs
from orchestrator.state import Journal
from tests.orchestrator.report.conftest import metrics, timing

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _pct(x: Any) -> str:
    return f"{100 * float(x):.2f}%"


def _done_ids(run_dir: Path) -> list[str]:
    summary = json.loads((run_dir / "summary.json").read_text())
    return [t["task_id"] for t in summary["tasks"] if t["status"] == "done"]


@pytest.fixture
def mnist_report(mnist_dir: Path, journal: Journal, tmp_path: Path) -> Report:
    return build_report(mnist_dir, journal=journal, plots_dir=tmp_path / "out")


@pytest.fixture
def pca_report(pca_dir: Path, journal: Journal, tmp_path: Path) -> Report:
    return build_report(pca_dir, journal=journal, plots_dir=tmp_path / "pca-out")


def test_markdown_has_every_task_number(mnist_report: Report, mnist_dir: Path) -> None:
    md = write_and_read(mnist_report, "report.md")
    for tid in _done_ids(mnist_dir):
        m = metrics(mnist_dir, tid)
        row = next(
            line
            for line in md.splitlines()
            if line.startswith((f"| {tid} | tensorflow", f"| {tid} | theano"))
        )
        assert f"| {_pct(m['test_error'])} |" in row
        assert f"| {float(m['train_time_s']):.2f} |" in row
        epochs = [r for r in timing(mnist_dir, tid) if r["event"] == "epoch"]
        per_epoch = "| " + " | ".join([tid, *(_pct(r["error"]) for r in epochs)]) + " |"
        assert per_epoch in md
    assert "| 2-layer NN, 300 hidden units (mean square error) | 2-layer NN, 300 HU | 4.70% |" in md
    assert "no GPU on this machine (nvidia-smi not found)" in md
    for fig in ("error_vs_epoch.png", "error_vs_time.png", "cpu_vs_gpu.png"):
        assert f"]({fig})" in md


def write_and_read(report: Report, name: str) -> str:
    out = report.plots[0].path.parent
    write_outputs(report, out, html=True)
    return (out / name).read_text()


def test_csv_holds_the_raw_numbers(mnist_report: Report, mnist_dir: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv(mnist_report))))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert len(rows) == 12
    by_id = {r["task_id"]: r for r in rows}
    for tid in _done_ids(mnist_dir):
        m = metrics(mnist_dir, tid)
        r = by_id[tid]
        assert float(r["test_error"]) == m["test_error"]  # full precision, not the rounded text
        assert float(r["train_s"]) == m["train_time_s"]
        assert float(r["samples_per_s"]) == m["samples_per_s"]
        assert float(r["compile_s"]) == m["compile_time_s"]
        assert r["epochs"] == "3" and r["hidden"] == "300" and r["cost_usd"] == "0.0"
    skipped = by_id["mnist-tensorflow-adam-gpu"]
    assert skipped["status"] == "skipped" and skipped["test_error"] == ""
    assert skipped["detail"] == "no GPU on this machine (nvidia-smi not found)"


def test_json_holds_tasks_epochs_and_tables(pca_report: Report, pca_dir: Path) -> None:
    data = json.loads(write_and_read(pca_report, "results.json"))
    assert data["run_id"] == "pca-aws-20261127-090000-ab12"
    assert data["spend_usd"] == pytest.approx(0.1232) and data["forecast_usd"] == 0.2071
    tasks = {t["task_id"]: t for t in data["tasks"]}
    m = metrics(pca_dir, "pca-tensorflow-cpu")
    t = tasks["pca-tensorflow-cpu"]
    assert [c["eigenvalue"] for c in t["pca"]] == m["eigenvalues"]
    assert t["pca_max_rel_error"] == max(m["eigenvalue_rel_error"])
    assert t["train_s"] == m["solve_s"]
    gpu = metrics(pca_dir, "pca-tensorflow-gpu")
    speedup = float(m["solve_s"]) / float(gpu["solve_s"])
    assert tasks["pca-tensorflow-gpu"]["gpu_speedup"] == pytest.approx(speedup)
    assert set(data["tables"]) >= {"cpu_vs_gpu", "pca", "pca_components", "machine_cost"}
    comps = data["tables"]["pca_components"]["rows"]
    assert comps[-1]["cumulative"] == pytest.approx(sum(m["explained_variance_ratio"]))
    assert data["figures"] == ["pca_spectrum.png", "cpu_vs_gpu.png"]


def test_terminal_shows_the_numbers(pca_report: Report, pca_dir: Path) -> None:
    console = Console(record=True, width=250, color_system=None)
    render_terminal(pca_report, console)
    text = console.export_text()
    m = metrics(pca_dir, "pca-tensorflow-cpu")
    assert f"{max(m['eigenvalue_rel_error']):.2e}" in text
    assert f"{100 * sum(m['explained_variance_ratio']):.2f}%" in text
    assert "actual $0.1232 against a forecast of $0.2071" in text
    assert "Tesla T4" in text and "c6i.2xlarge" in text


def test_html_is_self_contained_with_the_numbers(mnist_report: Report, mnist_dir: Path) -> None:
    html = to_html(mnist_report)
    images = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', html)
    assert len(images) == len(mnist_report.plots) == 3
    for b64, plot in zip(images, mnist_report.plots, strict=True):
        assert base64.b64decode(b64) == plot.path.read_bytes()
        assert base64.b64decode(b64).startswith(PNG_MAGIC)
    assert not re.search(r'(src|href)="(?!data:|#)', html)  # nothing outside the file
    for tid in _done_ids(mnist_dir):
        m = metrics(mnist_dir, tid)
        assert f'<td class="num">{_pct(m["test_error"])}</td>' in html
    assert html.count('<tr class="ours">') == 6
    assert html.count('<tr class="skipped">') == 6


def test_without_plots_the_report_says_why(mnist_dir: Path, tmp_path: Path) -> None:
    report = build_report(mnist_dir)
    assert report.plots == () and report.plot_note == "not asked for"
    written = write_outputs(report, tmp_path / "r", html=True)
    assert sorted(p.name for p in written) == [
        "report.html",
        "report.md",
        "results.csv",
        "results.json",
    ]
    assert "<img" not in (tmp_path / "r" / "report.html").read_text()
