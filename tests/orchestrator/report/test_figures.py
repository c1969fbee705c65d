"""What the figures draw, read from matplotlib's own objects: every framework's spectrum, PCA
in the CPU-vs-GPU figure, coinciding curves kept apart; no cost tables for a free run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.report.analysis import build_tables
from orchestrator.report.costs import has_cost
from orchestrator.report.load import load_run
from orchestrator.report.plots import _devices, _error, _spectrum
from orchestrator.state import Journal

plt = pytest.importorskip("matplotlib.pyplot")


def _ax() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    return plt.subplots()[1]


def test_the_spectrum_shows_every_pca_task(pca_dir: Path) -> None:
    run = load_run(pca_dir)
    pca = [t for t in run.tasks if t.pca is not None and t.pca.components]
    assert len({t.framework for t in pca}) == 2
    ax = _ax()
    _spectrum(ax, pca)
    labels = [c.get_label() for c in ax.containers]
    assert labels == [f"{t.framework} ({t.device})" for t in pca]
    plt.close("all")


def test_pca_is_in_the_cpu_vs_gpu_figure(pca_dir: Path) -> None:
    ax = _ax()
    _devices(ax, load_run(pca_dir))
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks and all(t.startswith("pca") for t in ticks)
    heights = [p.get_height() for p in ax.patches]
    assert sum(1 for h in heights if h > 0) >= 2  # drawn bars, not only "not run" labels
    plt.close("all")


def test_coinciding_curves_stay_apart(mnist_dir: Path) -> None:
    run = load_run(mnist_dir)
    tasks = [t for t in run.tasks if t.epochs]
    ax = _ax()
    _error(ax, tasks, False)
    by_fw: dict[str, set[float]] = {}
    for line, t in zip(ax.get_lines(), tasks, strict=True):
        by_fw.setdefault(t.framework, set()).update(line.get_xdata())
    assert not by_fw["tensorflow"] & by_fw["theano"]  # no point drawn at the same x
    markers = {line.get_marker() for line in ax.get_lines()}
    assert len(markers) == 2
    plt.close("all")


def test_cost_tables_only_where_there_is_a_cost(
    mnist_dir: Path, pca_dir: Path, journal: Journal
) -> None:
    free = load_run(mnist_dir, journal)
    names = {t.name for t in build_tables(free)}
    assert not has_cost(free) and not names & {"task_cost", "machine_cost"}
    assert all("usd_per_epoch" not in [c.key for c in t.columns] for t in build_tables(free))
    paid = load_run(pca_dir, journal)
    assert has_cost(paid) and {"task_cost", "machine_cost"} <= {t.name for t in build_tables(paid)}
