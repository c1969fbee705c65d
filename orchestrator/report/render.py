"""A built report -> the terminal (rich), ``report.md``, ``results.csv`` and ``results.json``.

Every format prints the same tables through ``Table.text_rows`` (one formatting function), so a
number reads the same in all of them; the CSV and JSON carry the raw values for scripts.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from rich.console import Console

from orchestrator.report.analysis import speedups, time_to_target, usd_per_epoch
from orchestrator.report.document import Report
from orchestrator.report.model import TaskResult
from orchestrator.report.table import Cell, Table
from orchestrator.report.terminal import render_table


# ---------------------------------------------------------------------- terminal
def render_terminal(report: Report, console: Console) -> None:
    """The report on the terminal: headline, every table, where the figures are."""
    for line in report.headline():
        console.print(line, markup=False, highlight=False)
    for table in (*report.tables, *report.compare):
        render_table(table, console)  # a grid where it fits, stacked rows where not
    if report.plots:
        where = report.plots[0].path.parent
        console.print(f"figures: {len(report.plots)} in {where}", markup=False)
    elif report.plot_note:
        console.print(f"no figures: {report.plot_note}", markup=False)


# ---------------------------------------------------------------------- markdown
def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(table: Table) -> str:
    """One table in Markdown, cells escaped."""
    lines = [f"### {table.title}", ""]
    lines.append("| " + " | ".join(_md_cell(c.header) for c in table.columns) + " |")
    aligns = ("---:" if c.fmt != "text" else "---" for c in table.columns)
    lines.append("| " + " | ".join(aligns) + " |")
    for row in table.text_rows():
        lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
    if not table.rows:
        lines.append("")
        lines.append("_(no rows)_")
    lines.append("")
    lines += [f"- {note}" for note in table.notes]
    return "\n".join(lines).rstrip() + "\n"


def to_markdown(report: Report, plot_dir: Path | None = None) -> str:
    """``report.md``; figures are linked by file name (they sit beside it)."""
    out = [f"# Report: {report.run.name}", ""]
    out += [f"- {line}" for line in report.headline()]
    out.append("")
    for table in report.tables:
        out.append(markdown_table(table))
    if report.compare:
        out.append(f"## Compared with {report.compare_run_id}\n")
        out += [markdown_table(t) for t in report.compare]
    if report.plots:
        out.append("## Figures\n")
        for p in report.plots:
            rel = (
                p.path.name
                if plot_dir is None
                else Path(os.path.relpath(p.path, plot_dir)).as_posix()
            )
            out.append(f"![{p.title}]({rel})\n")
    elif report.plot_note:
        out.append(f"_No figures: {report.plot_note}_\n")
    return "\n".join(out)


# ---------------------------------------------------------------------- csv / json
CSV_COLUMNS = (
    "task_id",
    "trainer",
    "framework",
    "optimizer",
    "device",
    "status",
    "detail",
    "machine",
    "wall_s",
    "compile_s",
    "train_s",
    "samples_per_s",
    "gpu_speedup",
    "epochs",
    "hidden",
    "test_error",
    "final_loss",
    "time_to_target_s",
    "epoch_at_target",
    "cost_usd",
    "usd_per_epoch",
    "pca_components",
    "pca_max_rel_error",
    "pca_max_angle_deg",
    "pca_explained",
    "pca_iterations",
    "hardware",
)


def task_record(report: Report, t: TaskResult, fast: dict[str, float]) -> dict[str, Cell]:
    """One task as a flat row of raw values (the CSV row; also in results.json)."""
    hit = time_to_target(t, report.target_error) if t.epochs else None
    p = t.pca
    return {
        "task_id": t.task_id,
        "trainer": t.trainer,
        "framework": t.framework,
        "optimizer": t.optimizer,
        "device": t.device,
        "status": t.status,
        "detail": t.detail,
        "machine": t.machine,
        "wall_s": t.wall_s,
        "compile_s": t.compile_s,
        "train_s": t.train_s,
        "samples_per_s": t.samples_per_s,
        "gpu_speedup": fast.get(t.task_id),
        "epochs": len(t.epochs) if t.epochs else None,
        "hidden": "x".join(str(h) for h in t.hidden) or None,
        "test_error": t.test_error,
        "final_loss": t.final_loss,
        "time_to_target_s": hit[0] if hit else None,
        "epoch_at_target": hit[1] if hit else None,
        "cost_usd": report.run.task_cost_usd(t),
        "usd_per_epoch": usd_per_epoch(report.run, t),
        "pca_components": len(p.components) if p else None,
        "pca_max_rel_error": p.max_rel_error if p else None,
        "pca_max_angle_deg": p.max_angle_deg if p else None,
        "pca_explained": p.explained_total if p else None,
        "pca_iterations": p.iterations if p else None,
        "hardware": t.hardware.label() if t.hardware else None,
    }


def to_csv(report: Report) -> str:
    """``results.csv``: one row per task, raw numbers (full precision), empty where unknown."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    fast = speedups(report.run)
    for t in report.run.tasks:
        rec = task_record(report, t, fast)
        writer.writerow(
            {
                k: ("" if v is None else repr(v) if isinstance(v, float) else v)
                for k, v in rec.items()
            }
        )
    return buf.getvalue()


def to_json(report: Report) -> dict[str, Any]:
    """``results.json``: the run, each task (epochs and PCA components included), every table."""
    run = report.run
    fast = speedups(run)
    tasks = []
    for t in run.tasks:
        rec: dict[str, Any] = dict(task_record(report, t, fast))
        rec["epoch_rows"] = [e.__dict__ for e in t.epochs]
        rec["pca"] = [c.__dict__ for c in t.pca.components] if t.pca is not None else None
        tasks.append(rec)
    return {
        "run_id": run.run_id,
        "name": run.name,
        "status": run.status,
        "provider": run.provider,
        "run_dir": str(run.run_dir),
        "target_error": report.target_error,
        "counts": report.counts(),
        "spend_usd": run.spend_usd,
        "forecast_usd": run.forecast_usd,
        "machines": [m.__dict__ for m in run.machines],
        "tasks": tasks,
        "tables": {t.name: t.to_json() for t in report.tables},
        "compare": (
            {
                "run_id": report.compare_run_id,
                "tables": {t.name: t.to_json() for t in report.compare},
            }
            if report.compare_run_id
            else None
        ),
        "figures": [p.path.name for p in report.plots],
    }


def write_outputs(report: Report, out_dir: Path, *, html: bool) -> list[Path]:
    """Write report.md, results.csv, results.json (and report.html) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    files = {
        "report.md": to_markdown(report, plot_dir=out_dir),
        "results.csv": to_csv(report),
        "results.json": json.dumps(to_json(report), indent=2) + "\n",
    }
    if html:
        from orchestrator.report.html import to_html

        files["report.html"] = to_html(report)
    for name, text in files.items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
