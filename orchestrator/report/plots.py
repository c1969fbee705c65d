"""The report's figures as PNG files (matplotlib, Agg backend: no display is ever needed).

matplotlib is imported inside ``make_plots`` only, so importing ``orchestrator.report`` (and
so every ``orchestrate`` command) stays fast and works where the ``report`` extra is missing.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.report.analysis import speedups
from orchestrator.report.model import RunData, TaskResult
from orchestrator.state import TaskStatus

_DPI = 120  # 12x5.4 inch figures -> 1440x648 px: sharp across a 1400 px page
FIGSIZE = (12.0, 5.4)
# Frameworks run the same update rules from the same seed, so their curves can coincide: each
# framework gets its own marker and a small sideways offset so both stay visible.
_FRAMEWORK_STYLE = {"tensorflow": ("-", "o", -0.04), "theano": ("--", "^", 0.04)}


@dataclass(frozen=True)
class Plot:
    name: str  # file stem, also the HTML anchor
    title: str
    path: Path


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
        makers.append(("pca_spectrum", "PCA spectrum", lambda ax: _spectrum(ax, pca)))
    if run.tasks:
        makers.append(("cpu_vs_gpu", "CPU vs GPU training time", lambda ax: _devices(ax, run)))
    for name, title, draw in makers:
        fig, ax = plt.subplots(figsize=FIGSIZE, dpi=_DPI)
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
    """One line per task: colour by optimizer; line style, marker and a small sideways offset
    by framework (``_FRAMEWORK_STYLE``), hollow markers on GPU."""
    optimizers = sorted({t.optimizer or "-" for t in tasks})
    colours = dict(zip(optimizers, itertools.cycle([f"C{i}" for i in range(10)]), strict=False))
    span = max((sum(e.wall_s for e in t.epochs) for t in tasks), default=1.0) or 1.0
    for t in tasks:
        pts = [(e, e.error) for e in t.epochs if e.error is not None]
        if not pts:
            continue
        style, marker, shift = _FRAMEWORK_STYLE.get(t.framework, (":", "x", 0.0))
        xs: list[float] = []
        elapsed = 0.0
        for e, _ in pts:
            elapsed += e.wall_s
            xs.append(elapsed + shift * span / 10 if by_time else float(e.epoch) + shift)
        colour = colours[t.optimizer or "-"]
        ax.plot(
            xs,
            [100 * (err or 0.0) for _, err in pts],
            linestyle=style,
            marker=marker,
            markersize=7,
            markerfacecolor=colour if t.device != "gpu" else "none",
            color=colour,
            alpha=0.85,
            label=_label(t),
        )
    if not by_time:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no "epoch 1.25"
    note = " (frameworks drawn slightly apart so equal curves both show)"
    ax.set_xlabel(("training seconds (compile excluded)" if by_time else "epoch") + note)
    ax.set_ylabel("test error (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", ncol=2)


def _spectrum(ax: Any, tasks: list[TaskResult]) -> None:
    """Eigenvalues of every PCA task side by side (one bar per task and component), NumPy's
    as black ticks; cumulative explained variance of the first task as a line."""
    done = [t for t in tasks if t.pca is not None and t.pca.components]
    width = 0.8 / max(1, len(done))
    ref_drawn = False
    for k, task in enumerate(done):
        assert task.pca is not None
        comps = task.pca.components
        xs = [c.index + 1 - 0.4 + width * (k + 0.5) for c in comps]
        label = f"{task.framework} ({task.device})"
        ax.bar(xs, [c.eigenvalue for c in comps], width, color=f"C{k}", label=label)
        ref = [(x, c.eigenvalue_numpy) for x, c in zip(xs, comps, strict=True)]
        ref = [(x, v) for x, v in ref if v is not None]
        if ref:
            ax.plot(
                [x for x, _ in ref],
                [v for _, v in ref],
                "k_",
                markersize=max(4.0, 40 * width),
                label=None if ref_drawn else "numpy.linalg.eigh",
            )
            ref_drawn = True
    idx = sorted({c.index + 1 for t in done if t.pca for c in t.pca.components})
    ax.set_xlabel("component")
    ax.set_ylabel("eigenvalue")
    ax.set_xticks(idx)
    first = done[0].pca if done else None
    if first is not None and all(c.explained is not None for c in first.components):
        cum, total = [], 0.0
        for c in first.components:
            total += c.explained or 0.0
            cum.append(100 * total)
        ax2 = ax.twinx()
        ax2.plot(idx[: len(cum)], cum, "C7-o", label="cumulative explained variance")
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
            seconds = t.train_s if t is not None and t.status == TaskStatus.DONE else None
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
