"""Recorded runs (tests/data/report_runs/) copied into tmp_path, with their journal rows in a real
SQLite journal, so the report reads exactly what a real run leaves behind."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.result_files import flat_metrics
from orchestrator.state import Journal

RUNS = Path(__file__).resolve().parents[2] / "data" / "report_runs"
MNIST = "mnist-local"  # recorded: `orchestrate run` on this machine, 6 CPU tasks + 6 skipped GPU
MNIST_B = "mnist-local-b"  # recorded: a second, smaller run of the same kind (for --compare)
PCA = "pca-aws-handmade"  # hand-written shapes, numbers from trainers.pca's algorithm


def fixture_file(name: str, *parts: str) -> Path:
    return RUNS.joinpath(name, *parts)


def run_id_of(name: str) -> str:
    return str(json.loads(fixture_file(name, "summary.json").read_text())["run_id"])


def copy_run(name: str, runs_root: Path) -> Path:
    """The fixture as ``runs_root/<run-id>/``, the layout ``orchestrate run`` makes."""
    dest = runs_root / run_id_of(name)
    shutil.copytree(RUNS / name, dest, ignore=shutil.ignore_patterns("journal.json", "README*"))
    return dest


def fill_journal(name: str, state_dir: Path, runs_root: Path) -> Journal:
    """A real journal holding the fixture's exported rows (only columns this schema has)."""
    journal = Journal.in_dir(state_dir)
    rows = json.loads(fixture_file(name, "journal.json").read_text())
    db = sqlite3.connect(journal.path)
    for table, items in rows.items():
        have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
        for item in items:
            if table == "runs":
                item = {**item, "runs_dir": str(runs_root)}
            if table == "machines":  # tokens are per journal: let this one number them
                item = {k: v for k, v in item.items() if k != "token"}
            cols = [c for c in item if c in have]
            db.execute(
                f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                [item[c] for c in cols],
            )
    db.commit()
    db.close()
    return journal


@pytest.fixture
def runs_root(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    root.mkdir()
    return root


@pytest.fixture
def mnist_dir(runs_root: Path) -> Path:
    return copy_run(MNIST, runs_root)


@pytest.fixture
def mnist_b_dir(runs_root: Path) -> Path:
    return copy_run(MNIST_B, runs_root)


@pytest.fixture
def pca_dir(runs_root: Path) -> Path:
    return copy_run(PCA, runs_root)


@pytest.fixture
def journal(tmp_path: Path, runs_root: Path) -> Iterator[Journal]:
    """One journal holding all three fixture runs, as one state directory would."""
    state = tmp_path / "state"
    for name in (MNIST, MNIST_B):
        fill_journal(name, state, runs_root).close()
    j = fill_journal(PCA, state, runs_root)
    yield j
    j.close()


def metrics(run_dir: Path, task_id: str) -> dict[str, Any]:
    """A task's metrics.json as the report reads it (PCA's ``reference`` lifted)."""
    return flat_metrics(dict(json.loads((run_dir / task_id / "metrics.json").read_text())))


def timing(run_dir: Path, task_id: str) -> list[dict[str, Any]]:
    lines = (run_dir / task_id / "timing.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]
