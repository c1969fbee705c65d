"""Attempts (issue 16): each try of a task in a real SQLite journal, and where they show up:
the report (terminal, HTML), ``summary.json``'s tasks and the ``cost`` ledger."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest
from rich.console import Console

from orchestrator.cost import attempt_costs, ledger
from orchestrator.report import build_report
from orchestrator.report.html import to_html
from orchestrator.report.render import render_terminal
from orchestrator.state import Journal, TaskStatus
from orchestrator.summary import summarize

RUN = "spot-20261207-010000-abcd"


class Clock:
    """The journal's clock, moved by the test."""

    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def _machine(journal: Journal, name: str, instance: str, hourly: float) -> int:
    token = journal.machine_requested(RUN, name, "aws")
    journal.machine_acquired(token, instance, instance_type="g4dn.xlarge", hourly_usd=hourly)
    return token


def _try(
    journal: Journal, clock: Clock, task: str, token: int, *, status: str, wall_s: float | None
) -> int:
    n = journal.attempt_started(RUN, task, machine="gpu", machine_token=token)
    clock.t += wall_s or 60.0
    detail = {"preempted": "spot interruption notice", "lost": "unreachable"}.get(status)
    journal.attempt_ended(RUN, task, n, status=status, wall_s=wall_s, detail=detail)
    return n


def _run(
    tmp_path: Path, tries: dict[str, list[str]], clock: Clock | None = None
) -> tuple[Journal, Path]:
    """A run whose tasks ended their tries as ``tries`` says, one new machine per retry
    ($3.60/h: a try of 100 s costs $0.10)."""
    clock = clock or Clock()
    journal = Journal(tmp_path / "state" / "journal.sqlite", clock=clock)
    runs = tmp_path / "runs"
    (runs / RUN).mkdir(parents=True)
    journal.create_run(RUN, name="spot", spec_path="x.yaml", provider="aws", runs_dir=str(runs))
    machine = 0
    for task, statuses in tries.items():
        journal.add_task(RUN, task, machine="gpu", trainer="mnist", device="gpu", params={})
        for status in statuses:
            machine += 1
            token = _machine(journal, "gpu", f"i-{machine:04d}", 3.6)
            _try(journal, clock, task, token, status=status, wall_s=100.0)
        journal.task_ended(RUN, task, status=statuses[-1], exit_code=0, wall_s=100.0)
    return journal, runs / RUN


def _terminal(journal: Journal, run_dir: Path) -> str:
    buf = io.StringIO()
    render_terminal(build_report(run_dir, journal=journal), Console(file=buf, width=200))
    return buf.getvalue()


def test_attempts_are_numbered_per_task_and_keep_how_each_ended(tmp_path: Path) -> None:
    journal, _ = _run(tmp_path, {"a": ["preempted", "lost", "done"], "b": ["done"]})
    rows = journal.attempts(RUN)
    assert [(r.task_id, r.n, r.status) for r in rows] == [
        ("a", 1, "preempted"),
        ("a", 2, "lost"),
        ("a", 3, "done"),
        ("b", 1, "done"),
    ]
    assert [r.interrupted for r in rows] == [True, True, False, False]
    assert rows[0].detail == "spot interruption notice" and rows[0].wall_s == 100.0
    assert rows[0].ended_at is not None and rows[0].ended_at - rows[0].started_at == 100.0
    assert len({r.machine_token for r in rows}) == 4
    costs = attempt_costs(journal, RUN)
    assert costs == {k: pytest.approx(0.1) for k in [("a", 1), ("a", 2), ("a", 3), ("b", 1)]}


def test_a_running_attempt_has_no_cost_yet_and_an_unmeasured_one_is_priced_start_to_end(
    tmp_path: Path,
) -> None:
    clock = Clock()
    journal, _ = _run(tmp_path, {"a": ["done"]}, clock)
    token = _machine(journal, "gpu", "i-9", 3.6)
    journal.attempt_started(RUN, "b", machine="gpu", machine_token=token)
    _try(journal, clock, "c", token, status="lost", wall_s=None)  # 60 s by the journal's clock
    assert ("b", 1) not in attempt_costs(journal, RUN)
    assert attempt_costs(journal, RUN)[("c", 1)] == pytest.approx(0.06)


def test_the_report_shows_every_try_of_a_retried_task_and_the_price_of_interruptions(
    tmp_path: Path,
) -> None:
    journal, run_dir = _run(
        tmp_path, {"a": ["preempted", "lost", "done"], "b": ["preempted", "done"], "c": ["done"]}
    )
    text = _terminal(journal, run_dir)
    assert "Attempts" in text
    lines = [line for line in text.splitlines() if "i-000" in line]
    assert len(lines) == 5  # a's three tries and b's two; c ran once and is only counted
    assert "preempted" in lines[0] and "i-0001" in lines[0] and "$0.1000" in lines[0]
    assert "spot interruption notice" in lines[0]
    assert "lost" in lines[1] and "unreachable" in lines[1]
    assert "3 interrupted attempt(s) (preempted or lost) cost $0.3000" in text
    assert "1 other task(s) ran in one attempt" in text
    html = to_html(build_report(run_dir, journal=journal))
    assert '<table id="attempts"><caption>Attempts</caption>' in html
    assert "<td>i-0002</td><td>lost</td>" in html
    assert "cost $0.3000" in html


def test_a_run_with_one_attempt_per_task_has_no_attempts_section(tmp_path: Path) -> None:
    journal, run_dir = _run(tmp_path, {"a": ["done"], "b": ["done"]})
    assert "Attempts" not in _terminal(journal, run_dir)
    assert 'id="attempts"' not in to_html(build_report(run_dir, journal=journal))


def test_summary_lists_each_tasks_attempts_and_the_ledger_prices_the_retries(
    tmp_path: Path,
) -> None:
    journal, _ = _run(tmp_path, {"a": ["preempted", "done"], "b": ["done"]})
    tasks = {t["task_id"]: t for t in summarize(journal, RUN).to_json()["tasks"]}
    assert [(x["n"], x["instance_id"], x["status"]) for x in tasks["a"]["attempts"]] == [
        (1, "i-0001", "preempted"),
        (2, "i-0002", "done"),
    ]
    assert tasks["a"]["attempts"][0]["cost_usd"] == pytest.approx(0.1)
    assert len(tasks["b"]["attempts"]) == 1
    row = ledger(journal, run_id=RUN)[0]
    assert row["attempts"] == 3
    assert row["retries_usd"] == pytest.approx(0.1)


def test_a_journal_from_before_attempts_gains_the_table(tmp_path: Path) -> None:
    path = tmp_path / "state" / "journal.sqlite"
    Journal(path).close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE attempts")
    db.commit()
    db.close()
    journal = Journal(path)
    assert journal.attempts(RUN) == []
    token = journal.machine_requested(RUN, "gpu", "aws")
    assert journal.attempt_started(RUN, "a", machine="gpu", machine_token=token) == 1
    assert journal.attempts(RUN)[0].status == TaskStatus.RUNNING
