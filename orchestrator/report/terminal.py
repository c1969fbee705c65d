"""The report in a terminal: grids that fit, stacked rows where a grid would not.

A report table can have a dozen columns; rich would squeeze a wide one into 80 columns by
folding every cell into slivers (hundreds of lines of two-letter fragments). The rule here:

1. A table whose natural width fits the console is a grid: short rule under the header, no side
   borders, two spaces between columns.
2. A wider table is stacked: each row is its name (the first column) on a line of its own, then
   ``header value`` pairs, separated by `` · ``, wrapped between pairs (a pair longer than a
   line, at words), indented. Pairs whose value is ``-`` are left out, so a skipped task shows
   only its status and the reason.
3. Notes print under the table, wrapped at words, as in every other format.
"""

from __future__ import annotations

import textwrap

from rich import box
from rich.console import Console
from rich.table import Table as RichTable

from orchestrator.report.table import Table

GAP = 2
SEP = " · "


def natural_width(headers: list[str], rows: list[list[str]]) -> int:
    """How wide the table is as a grid (columns at their widest, with gaps)."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    return sum(widths) + GAP * (len(widths) - 1)


def _grid(table: Table, headers: list[str], rows: list[list[str]], console: Console) -> None:
    rt = RichTable(
        title=table.title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),
    )
    for i, col in enumerate(table.columns):
        right = col.fmt != "text"
        rt.add_column(headers[i], justify="right" if right else "left", no_wrap=True)
    for row in rows:
        rt.add_row(*row)
    console.print(rt)


def stacked_lines(headers: list[str], rows: list[list[str]], width: int) -> list[str]:
    """Rule 2, as plain lines (the tests read these)."""
    out: list[str] = []
    for row in rows:
        out.append(f"  {row[0]}")
        pairs = [f"{h} {v}" for h, v in zip(headers[1:], row[1:], strict=True) if v != "-"]
        text = SEP.join(pairs) or "-"
        # Wrap at the separators, never inside a pair; a pair wider than a line (a long note)
        # gets lines of its own, wrapped at words.
        room = max(20, width - 4)
        line = ""
        for pair in text.split(SEP):
            candidate = f"{line}{SEP}{pair}" if line else pair
            if len(candidate) <= room:
                line = candidate
                continue
            if line:
                out.append(f"    {line}")
            if len(pair) <= room:
                line = pair
            else:
                out += [f"    {part}" for part in textwrap.wrap(pair, room)]
                line = ""
        if line:
            out.append(f"    {line}")
    return out


def render_table(table: Table, console: Console) -> None:
    """A grid where it fits the terminal, else one stacked block per row."""
    headers = [c.header for c in table.columns]
    rows = table.text_rows()
    if natural_width(headers, rows) <= console.width:
        _grid(table, headers, rows, console)
    else:
        console.print(table.title, markup=False, highlight=False, style="italic")
        for line in stacked_lines(headers, rows, console.width):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    for note in table.notes:
        for line in textwrap.wrap(note, width=max(20, console.width - 2)):
            console.print(f"  {line}", style="dim", markup=False, highlight=False, soft_wrap=True)
