"""``report`` in an 80-column terminal: grids where they fit, stacked rows where not; every
value whole on one line, and no wall of folded slivers."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from orchestrator.report import build_report
from orchestrator.report.document import Report
from orchestrator.report.render import render_terminal
from orchestrator.report.terminal import stacked_lines
from orchestrator.state import Journal


@pytest.mark.parametrize("which", ["mnist_dir", "pca_dir"])
def test_report_at_80_columns_keeps_every_value_whole(
    which: str, request: pytest.FixtureRequest, journal: Journal, tmp_path: Path
) -> None:
    run_dir: Path = request.getfixturevalue(which)
    report: Report = build_report(run_dir, journal=journal, plots_dir=tmp_path / "out")
    console = Console(record=True, width=80, color_system=None)
    render_terminal(report, console)
    lines = console.export_text().splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    text = "\n".join(lines)
    cells = 0
    for table in (*report.tables, *report.compare):
        assert table.title in text
        for row in table.text_rows():
            for value in row:
                if value != "-" and len(value) < 70:
                    assert value in text, (table.title, value)  # whole, on one line
                    cells += 1
    rows = sum(len(t.rows) for t in (*report.tables, *report.compare))
    assert cells > rows  # the check saw the numbers, not just names
    assert len(lines) < 8 * rows + 12 * len(report.tables) + 20  # no folded slivers


def test_stacked_rows_wrap_between_pairs_and_leave_out_dashes() -> None:
    headers = ["task", "status", "wall s", "note"]
    rows = [["mnist-tensorflow-adam-cpu", "done", "9.69", "-"]]
    assert stacked_lines(headers, rows, 80) == [
        "  mnist-tensorflow-adam-cpu",
        "    status done · wall s 9.69",
    ]
    narrow = stacked_lines(headers, rows, 20)
    assert narrow[1:] == ["    status done", "    wall s 9.69"]
