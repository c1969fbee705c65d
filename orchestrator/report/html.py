"""``report.html``: one self-contained file (inline CSS, figures as base64 PNG ``data:`` URIs).

Self-contained so it can be mailed, attached to a ticket or opened from an instance's fetched
results without the PNGs beside it; no script and no external resource is referenced.
"""

from __future__ import annotations

import base64
from html import escape

from orchestrator.report.document import Report
from orchestrator.report.table import Table
from orchestrator.state import TaskStatus

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1400px;
       padding: 0 1em; color: #1b1f24; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccd; }
table { border-collapse: collapse; margin: 0.6em 0 0.3em; font-size: 13px; }
caption { text-align: left; font-weight: 600; padding: 0.3em 0; }
th, td { border: 1px solid #d0d7de; padding: 3px 8px; vertical-align: top; }
th { background: #f3f5f7; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.ours td { background: #eef7ee; } tr.skipped td, tr.failed td { color: #8a5a00; }
ul.notes { margin: 0 0 1.2em; color: #555; font-size: 12px; }
figure { margin: 1em 0 2em; } figcaption { font-weight: 600; }
img { width: 100%; height: auto; border: 1px solid #e1e4e8; }
div.wide { overflow-x: auto; max-width: 100%; }
nav.toc ul { columns: 2 16em; margin: 0.3em 0 1em; }
"""


def _row_class(table: Table, row: tuple[object, ...]) -> str:
    """Highlight our rows in the published table and say which variants did not run."""
    keys = [c.key for c in table.columns]
    if table.name == "lecun" and str(row[0]).startswith("ours"):
        return "ours"
    if "status" in keys and row[keys.index("status")] in (TaskStatus.SKIPPED, TaskStatus.FAILED):
        return str(row[keys.index("status")])
    return ""


def html_table(table: Table) -> str:
    """One table as escaped HTML (skipped and failed rows marked)."""
    head = "".join(f"<th>{escape(c.header)}</th>" for c in table.columns)
    body = []
    for raw, text in zip(table.rows, table.text_rows(), strict=True):
        cells = "".join(
            f'<td class="num">{escape(v)}</td>' if c.fmt != "text" else f"<td>{escape(v)}</td>"
            for c, v in zip(table.columns, text, strict=True)
        )
        cls = _row_class(table, raw)
        body.append(f'<tr class="{cls}">{cells}</tr>' if cls else f"<tr>{cells}</tr>")
    notes = "".join(f"<li>{escape(n)}</li>" for n in table.notes)
    return (
        f'<table id="{escape(table.name)}"><caption>{escape(table.title)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        + (f'<ul class="notes">{notes}</ul>' if notes else "")
    )


def _wide(table_html: str) -> str:
    """A table scrolls inside its own box on a narrow page; the page itself never does."""
    return f'<div class="wide">{table_html}</div>'


def _toc(report: Report) -> str:
    """Links to every figure and table, in reading order."""
    items = [
        f'<li><a href="#fig-{escape(p.name)}">{escape(p.title)}</a></li>' for p in report.plots
    ]
    items += [
        f'<li><a href="#{escape(t.name)}">{escape(t.title)}</a></li>'
        for t in (*report.tables, *report.compare)
    ]
    return '<nav class="toc"><h2>Contents</h2><ul>' + "".join(items) + "</ul></nav>"


def to_html(report: Report) -> str:
    """The whole report as one self-contained HTML page (figures inlined)."""
    run = report.run
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(run.name)} - {escape(run.run_id)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Report: {escape(run.name)}</h1>",
        "<ul>" + "".join(f"<li>{escape(line)}</li>" for line in report.headline()) + "</ul>",
    ]
    parts.append(_toc(report))
    if report.plots:
        parts.append('<h2 id="figures">Figures</h2>')
        for p in report.plots:
            data = base64.b64encode(p.path.read_bytes()).decode("ascii")
            parts.append(
                f'<figure id="fig-{escape(p.name)}"><figcaption>{escape(p.title)}</figcaption>'
                f'<img alt="{escape(p.title)}" src="data:image/png;base64,{data}"></figure>'
            )
    elif report.plot_note:
        parts.append(f"<p><em>No figures: {escape(report.plot_note)}</em></p>")
    parts.append('<h2 id="tables">Tables</h2>')
    parts += [_wide(html_table(t)) for t in report.tables]
    if report.compare:
        parts.append(f'<h2 id="compare">Compared with {escape(report.compare_run_id or "")}</h2>')
        parts += [_wide(html_table(t)) for t in report.compare]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
