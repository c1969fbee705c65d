"""Result files are read safely: a FIFO, a device or a symlink planted in a run directory
yields nothing instead of hanging ``run``/``report`` or reading elsewhere (issue #14)."""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.result_files import read_json, read_timing


def test_a_fifo_named_metrics_json_reads_as_empty(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "metrics.json")
    os.mkfifo(tmp_path / "timing.jsonl")
    assert read_json(tmp_path / "metrics.json") == {}
    assert read_timing(tmp_path / "timing.jsonl") == []


def test_a_symlink_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "elsewhere.json").write_text('{"secret": 1}')
    (tmp_path / "metrics.json").symlink_to(tmp_path / "elsewhere.json")
    (tmp_path / "timing.jsonl").symlink_to("/dev/zero")
    assert read_json(tmp_path / "metrics.json") == {}
    assert read_timing(tmp_path / "timing.jsonl") == []


def test_deep_json_is_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text("[" * 100_000 + "]" * 100_000)
    assert read_json(tmp_path / "metrics.json") == {}


def test_ordinary_files_still_read(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text('{"test_error": 0.02}')
    (tmp_path / "timing.jsonl").write_text('{"epoch": 1}\n{"epo')
    assert read_json(tmp_path / "metrics.json") == {"test_error": 0.02}
    assert read_timing(tmp_path / "timing.jsonl") == [{"epoch": 1}]
