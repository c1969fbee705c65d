"""The one table shape every output format renders: raw values in, formatted text out.

Cells keep their raw numbers (``results.json`` and ``results.csv`` want those); each column
names a format, so the terminal, Markdown and HTML all print the same digits.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

Cell = str | int | float | None

# Column formats: how a raw value is written for people.
TEXT, PCT, SECONDS, RATE, USD, RATIO, SCI, FLOAT, INT = (
    "text",
    "pct",
    "s",
    "rate",
    "usd",
    "ratio",
    "sci",
    "float",
    "int",
)


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    fmt: str = TEXT


@dataclass(frozen=True)
class Table:
    """A titled grid; ``notes`` are sentences printed under it (skip reasons, the target)."""

    name: str
    title: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[Cell, ...], ...]
    notes: tuple[str, ...] = ()

    def without(self, key: str) -> Table:
        """This table without the column ``key`` (itself when it has none)."""
        keys = [c.key for c in self.columns]
        if key not in keys:
            return self
        i = keys.index(key)
        rows = tuple(row[:i] + row[i + 1 :] for row in self.rows)
        return replace(self, columns=self.columns[:i] + self.columns[i + 1 :], rows=rows)

    def records(self) -> list[dict[str, Cell]]:
        """Rows as ``{column key: raw value}`` (``results.json``)."""
        return [dict(zip((c.key for c in self.columns), row, strict=True)) for row in self.rows]

    def text_rows(self) -> list[list[str]]:
        """Rows as formatted text, the same digits in every output format."""
        return [
            [fmt_cell(v, c.fmt) for v, c in zip(row, self.columns, strict=True)]
            for row in self.rows
        ]

    def to_json(self) -> dict[str, Any]:
        """The table with its columns' formats and raw rows, for ``results.json``."""
        return {
            "title": self.title,
            "columns": [{"key": c.key, "header": c.header, "format": c.fmt} for c in self.columns],
            "rows": self.records(),
            "notes": list(self.notes),
        }


def fmt_cell(value: Cell, fmt: str) -> str:
    """The one place numbers become text: every output format calls this."""
    if value is None:
        return "-"
    if isinstance(value, str) or fmt == TEXT:
        return str(value)
    v = float(value)
    if fmt == PCT:
        return f"{100 * v:.2f}%"
    if fmt == SECONDS:
        return f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}"
    if fmt == RATE:
        return f"{v:,.0f}"
    if fmt == USD:
        return f"${v:.4f}" if abs(v) < 1 else f"${v:.2f}"
    if fmt == RATIO:
        return f"{v:.2f}x"
    if fmt == SCI:
        return f"{v:.2e}"
    if fmt == INT:
        return str(int(v))
    return f"{v:.4g}"
