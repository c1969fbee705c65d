"""``orchestrate report RUN [--html] [--compare RUN2]``: the verb, wired in by ``orchestrator.cli``.

    add_report_parser(sub, common)   # in build_parser()
    # the parser sets func=cmd_report; main() calls it and maps errors to exit codes

A RUN is a run id (found through the journal, else under ``--runs-dir``) or a run directory.
Files go to ``<run dir>/report/`` unless ``--out`` says otherwise: report.md, results.csv,
results.json, the figures as PNG, and with ``--html`` a self-contained report.html.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console

from orchestrator.errors import UnknownRun
from orchestrator.paths import RunPaths, default_state_dir
from orchestrator.report import build_report
from orchestrator.report.analysis import DEFAULT_TARGET_ERROR
from orchestrator.report.render import render_terminal, to_json, write_outputs
from orchestrator.state import Journal
from orchestrator.ui_tables import print_path

_JOURNAL_FILE = "journal.sqlite"  # Journal.in_dir's file; opened only if it already exists


def _fraction(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from exc
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"a test error between 0 and 1 (or 0%..100%): {text!r}")
    return value


def add_report_parser(subparsers: Any, common_parent: argparse.ArgumentParser) -> None:
    """Add the ``report`` verb to ``orchestrate``'s sub-parsers (``func`` is ``cmd_report``)."""
    p = subparsers.add_parser(
        "report",
        parents=[common_parent],
        help="tables and figures of a run: CPU vs GPU, optimizers, MNIST's table, PCA, cost",
    )
    p.add_argument("run", help="a run id (see `orchestrate status`) or a run directory")
    p.add_argument("--html", action="store_true", help="also write a self-contained report.html")
    p.add_argument("--compare", metavar="RUN2", help="put a second run beside this one")
    p.add_argument("--out", type=Path, help="where the files go (default: <run dir>/report)")
    p.add_argument(
        "--runs-dir",
        type=Path,
        default=Path("runs"),
        help="where to look for a run id the journal does not know (default: ./runs)",
    )
    p.add_argument(
        "--target-error",
        type=_fraction,
        default=DEFAULT_TARGET_ERROR,
        help=f"test error for 'time to target', 0.05 or 5%% (default {DEFAULT_TARGET_ERROR})",
    )
    p.add_argument("--no-plots", action="store_true", help="tables only; skip matplotlib")
    p.set_defaults(func=cmd_report)


def open_journal(state_dir: Path | None) -> Journal | None:
    """The journal if one exists; reading a report never creates a state directory."""
    path = Path(state_dir or default_state_dir()) / _JOURNAL_FILE
    return Journal(path) if path.is_file() else None


def resolve_run(ref: str, journal: Journal | None, runs_dir: Path) -> Path:
    """A run directory from a path or a run id; raises `UnknownRun` naming where it looked."""
    as_path = Path(ref)
    if _is_run_dir(as_path):
        return as_path
    row = journal.run(ref) if journal is not None else None
    if row is not None and _is_run_dir(Path(row.runs_dir) / ref):
        return Path(row.runs_dir) / ref
    if _is_run_dir(runs_dir / ref):
        return runs_dir / ref
    where = [f"not a run directory, not under {runs_dir}/"]
    if row is not None:
        where.append(f"the journal places it in {row.runs_dir}/, which no longer holds it")
    elif journal is not None:
        where.append(f"not in the journal {journal.path}")
    raise UnknownRun(f"no run {ref!r}: {'; '.join(where)}; see `orchestrate status`")


def _is_run_dir(path: Path) -> bool:
    paths = RunPaths(path)
    return path.is_dir() and (paths.summary_json.exists() or paths.run_log.exists())


def cmd_report(args: argparse.Namespace) -> int:
    """Build the report of ``args.run``, write its files, print it (or its JSON)."""
    journal = open_journal(getattr(args, "state_dir", None))
    try:
        run_dir = resolve_run(args.run, journal, args.runs_dir)
        other = resolve_run(args.compare, journal, args.runs_dir) if args.compare else None
        out_dir = Path(args.out) if args.out else run_dir / "report"
        report = build_report(
            run_dir,
            journal=journal,
            target_error=args.target_error,
            plots_dir=None if args.no_plots else out_dir,
            compare_dir=other,
        )
        written = write_outputs(report, out_dir, html=args.html)
    finally:
        if journal is not None:
            journal.close()
    if getattr(args, "json", False):
        print(json.dumps(to_json(report), indent=2))
        return 0
    console = Console(highlight=False)
    render_terminal(report, console)
    for path in (*written, *(p.path for p in report.plots)):
        print_path(console, "wrote", path)  # whole on a line of its own, never wrapped mid-name
    return 0
