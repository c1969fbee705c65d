"""The ``report`` verb through its own parser (``orchestrator.cli`` wires it in with two lines)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.errors import UnknownRun
from orchestrator.report.cli import add_report_parser, cmd_report
from orchestrator.state import Journal
from tests.orchestrator.report.conftest import MNIST, run_id_of


def _parse(argv: list[str]) -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", type=Path, default=None)
    common.add_argument("--json", action="store_true")
    common.add_argument("--debug", action="store_true")
    parser = argparse.ArgumentParser(prog="orchestrate")
    add_report_parser(parser.add_subparsers(dest="command", required=True), common)
    return parser.parse_args(argv)


def test_report_by_run_id_through_the_journal(
    mnist_dir: Path, journal: Journal, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = run_id_of(MNIST)
    args = _parse(["report", run_id, "--state-dir", str(tmp_path / "state"), "--no-plots"])
    assert args.func is cmd_report
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert f"run {run_id}" in out and "6.47%" in out
    assert {p.name for p in (mnist_dir / "report").iterdir()} == {
        "report.md",
        "results.csv",
        "results.json",
    }


def test_report_by_path_with_html_compare_and_json(
    mnist_dir: Path, mnist_b_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["report", str(mnist_dir), "--html", "--compare", str(mnist_b_dir), "--json"]
    args = _parse(
        [*argv, "--out", str(out), "--state-dir", str(tmp_path / "none"), "--target-error", "8%"]
    )
    assert args.target_error == pytest.approx(0.08)
    assert args.func(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["target_error"] == pytest.approx(0.08)
    assert data["compare"]["run_id"] == run_id_of("mnist-local-b")
    assert (out / "report.html").exists() and (out / "error_vs_epoch.png").exists()
    assert not (tmp_path / "none").exists()  # reading a report creates no state directory


def test_unknown_run_names_where_it_looked(runs_root: Path, tmp_path: Path) -> None:
    args = _parse(["report", "nope-1", "--runs-dir", str(runs_root), "--state-dir", str(tmp_path)])
    with pytest.raises(UnknownRun, match="no run 'nope-1'") as err:
        cmd_report(args)
    assert err.value.exit_code == 2


@pytest.mark.parametrize("bad", ["0", "1.5", "abc", "150%"])
def test_bad_target_error_is_an_argument_error(bad: str) -> None:
    with pytest.raises(SystemExit):
        _parse(["report", "x", "--target-error", bad])


def test_importing_the_report_does_not_import_matplotlib() -> None:
    code = (
        "import sys, orchestrator.report.cli, orchestrator.report; "
        "print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
