"""The report's figures as PNG files (matplotlib, Agg backend: no display is ever needed).

matplotlib is imported inside ``make_plots`` only, so importing ``orchestrator.report`` (and
so every ``orchestrate`` command) stays fast and works where the ``report`` extra is missing.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.report.model import RunData, TaskResult
from orchestrator.report.tables import speedups

_DPI = 100  # 8x4.5 inch figures -> 800x450 px: sharp in a browser, small as base64


@dataclass(frozen=True)
class Plot:
    name: str  # file stem, also the HTML anchor
    title: str
    path: Path


def matplotlib_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def make_plots(run: RunData, out_dir: Path) -> tuple[Plot, ...]:
    """Draw every figure the run has data for into ``out_dir``; returns them in reading order.

    Raises:
        ModuleNotFoundError: matplotlib is not installed (the CLI turns it into a hint).
    """
    import matplotlib

    matplotlib.use("Agg", force=True)  # before pyplot: never try to open a window
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    plots: list[Plot] = []
    mnist = [t for t in run.tasks if t.trainer in ("mnist", "script") and t.epochs]
    pca = [t for t in run.tasks if t.pca is not None]
    makers: list[tuple[str, str, Any]] = []
    if mnist:
        makers.append(
            ("error_vs_epoch", "Test error vs epoch", lambda ax: _error(ax, mnist, False))
        )
        makers.append(
            ("error_vs_time", "Test error vs training time", lambda ax: _error(ax, mnist, True))
        )
    if pca:
        makers.append(("pca_spectrum", "PCA spectrum", lambda ax: _spectrum(ax, pca[0])))
    if run.tasks:
        makers.append(("cpu_vs_gpu", "CPU vs GPU training time", lambda ax: _devices(ax, run)))
    for name, title, draw in makers:
        fig, ax = plt.subplots(figsize=(8, 4.5), dpi=_DPI)
        try:
            draw(ax)
            ax.set_title(title)
            fig.tight_layout()
            path = out_dir / f"{name}.png"
            fig.savefig(path, format="png", dpi=_DPI)
        finally:
            plt.close(fig)
        plots.append(Plot(name, title, path))
    return tuple(plots)


def _label(t: TaskResult) -> str:
    return f"{t.optimizer or t.trainer} ({t.framework}, {t.device})"


def _error(ax: Any, tasks: list[TaskResult], by_time: bool) -> None:
    """One line per task: colour by optimizer, line style by framework, marker by device."""
    optimizers = sorted({t.optimizer or "-" for t in tasks})
    colours = dict(zip(optimizers, itertools.cycle([f"C{i}" for i in range(10)]), strict=False))
    styles = {"tensorflow": "-", "theano": "--"}
    markers = {"cpu": "o", "gpu": "s"}
    for t in tasks:
        pts = [(e, e.error) for e in t.epochs if e.error is not None]
        if not pts:
            continue
        xs: list[float] = []
        elapsed = 0.0
        for e, _ in pts:
            elapsed += e.wall_s
            xs.append(elapsed if by_time else float(e.epoch))
        ax.plot(
            xs,
            [100 * (err or 0.0) for _, err in pts],
            linestyle=styles.get(t.framework, ":"),
            marker=markers.get(t.device, "x"),
            color=colours[t.optimizer or "-"],
            label=_label(t),
        )
    if not by_time:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no "epoch 1.25"
    ax.set_xlabel("training seconds (compile excluded)" if by_time else "epoch")
    ax.set_ylabel("test error (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", ncol=2)


def _spectrum(ax: Any, task: TaskResult) -> None:
    """Eigenvalues as bars, cumulative explained variance as a line on a second axis."""
    assert task.pca is not None
    comps = task.pca.components
    idx = [c.index + 1 for c in comps]
    ax.bar(idx, [c.eigenvalue for c in comps], color="C0", label="eigenvalue (gradient ascent)")
    ref = [(c.index + 1, c.eigenvalue_numpy) for c in comps if c.eigenvalue_numpy is not None]
    if ref:
        ax.plot([i for i, _ in ref], [v for _, v in ref], "k_", markersize=18, label="numpy")
    ax.set_xlabel(f"component ({task.task_id})")
    ax.set_ylabel("eigenvalue")
    ax.set_xticks(idx)
    if all(c.explained is not None for c in comps):
        cum, total = [], 0.0
        for c in comps:
            total += c.explained or 0.0
            cum.append(100 * total)
        ax2 = ax.twinx()
        ax2.plot(idx, cum, "C1-o", label="cumulative explained variance")
        ax2.set_ylabel("cumulative explained variance (%)")
        ax2.set_ylim(0, 100)
        ax2.legend(loc="center right", fontsize="small")
    ax.legend(loc="upper right", fontsize="small")


def _devices(ax: Any, run: RunData) -> None:
    """Grouped bars per variant: CPU and GPU training seconds; a skipped variant says so."""
    variants = sorted({t.variant for t in run.tasks})
    by_key = {(t.variant, t.device): t for t in run.tasks}
    fast = speedups(run)
    width = 0.4
    for i, v in enumerate(variants):
        for j, device in enumerate(("cpu", "gpu")):
            t = by_key.get((v, device))
            x = i + (j - 0.5) * width
            colour = "C0" if device == "cpu" else "C2"
            seconds = t.train_s if t is not None and t.status == "done" else None
            if seconds is None:
                why = t.status if t is not None else "not run"
                ax.bar(x, 0, width, color=colour)
                ax.annotate(why, (x, 0), rotation=90, ha="center", va="bottom", fontsize=7)
                continue
            ax.bar(x, seconds, width, color=colour)
            if t is not None and t.task_id in fast:
                ax.annotate(f"{fast[t.task_id]:.1f}x", (x, seconds), ha="center", va="bottom")
    ax.set_xticks(range(len(variants)))
    ax.set_xticklabels([f"{tr}\n{fw}\n{opt}" for tr, fw, opt in variants], fontsize=7)
    ax.set_ylabel("training seconds")
    ax.legend(handles=_legend_handles(), fontsize="small")


def _legend_handles() -> list[Any]:
    from matplotlib.patches import Patch

    return [Patch(color="C0", label="cpu"), Patch(color="C2", label="gpu")]
