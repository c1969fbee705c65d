"""The run summary and ``status`` at 80 columns: every header and every value visible whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.state import Journal
from orchestrator.ui_tables import ABBREV, abbreviate

RUN = "quickstart-20261201-101112-ab12"
GPU_REASON = "no GPU on this machine (nvidia-smi not found; ORCHESTRATE_LOCAL_GPUS unset)"


def _quickstart_run(state: Path, runs: Path) -> list[str]:
    """The quickstart's 16 tasks in the journal: 8 cpu done (with metrics), 8 gpu skipped."""
    journal = Journal.in_dir(state)
    journal.create_run(
        RUN, name="quickstart", spec_path="q.yaml", provider="local", runs_dir=str(runs)
    )
    ids = []
    for fw in ("tensorflow", "theano"):
        for opt in ("momentum", "rmsprop", "adam"):
            ids += [f"mnist-{fw}-{opt}-cpu", f"mnist-{fw}-{opt}-gpu"]
        ids += [f"pca-{fw}-cpu", f"pca-{fw}-gpu"]
    for i, tid in enumerate(ids):
        trainer, device = tid.split("-")[0], tid.split("-")[-1]
        status = "skipped" if device == "gpu" else "pending"
        detail = GPU_REASON if device == "gpu" else None
        journal.add_task(
            RUN, tid, machine="local", trainer=trainer, device=device, params={}, status=status,
            detail=detail,
        )  # fmt: skip
        if device == "cpu":
            journal.task_ended(RUN, tid, status="done", exit_code=0, wall_s=1234.5 + i)
            metrics = (
                {"samples_per_s": 123456.0, "test_error": 0.0213}
                if trainer == "mnist"
                else {
                    "eigenvalues": [2.0, 1.0],
                    "reference": {"eigenvalue_rel_error": [1.5e-6, 3.2e-7]},
                }
            )
            (runs / RUN / tid).mkdir(parents=True)
            (runs / RUN / tid / "metrics.json").write_text(json.dumps(metrics))
    journal.set_run_status(RUN, "done")
    journal.close()
    return ids


def _lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    return lines


@pytest.fixture
def run_80(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str]]:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.chdir(tmp_path)
    state, runs = tmp_path / "state", tmp_path / "runs"
    return state, _quickstart_run(state, runs)


def test_summary_at_80_columns_shows_every_header_and_value(
    run_80: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    state, ids = run_80
    assert main(["status", RUN, "--state-dir", str(state)]) == 0
    lines = _lines(capsys)
    header = next(line for line in lines if line.lstrip().startswith("task"))
    for name in ("task", "status", "wall s", "samples/s", "test err", "eig err"):
        assert name in header
    for i, tid in enumerate(ids):
        shown = tid if any(tid in line for line in lines) else abbreviate(tid)
        row = next(line for line in lines if line.split() and line.split()[0] == shown)
        if tid.endswith("-gpu"):
            assert row.split()[1:] == ["skipped", "-", "-", "-", "-"]
        elif tid.startswith("mnist"):
            assert row.split()[1:] == ["done", f"{1234.5 + i:.1f}", "123,456", "2.13%", "-"]
        else:
            assert row.split()[1:] == ["done", f"{1234.5 + i:.1f}", "-", "-", "1.5e-06"]
    # The note is folded out of the table: one grouped line, wrapped at words if at all.
    text = " ".join(lines)
    assert f"8 tasks skipped: {GPU_REASON}" in " ".join(text.split())
    assert "8 done, 8 skipped" in text
    assert f"results: runs/{RUN}" in lines  # a path on one line, relative to here


def test_long_ids_are_abbreviated_predictably_with_a_legend() -> None:
    assert abbreviate("mnist-tensorflow-rmsprop-cpu-lr0.01-h300x100") == (
        "mnist-tf-rms-cpu-lr0.01-h300x100"
    )
    assert abbreviate("pca-theano-gpu") == "pca-th-gpu"
    assert len(set(ABBREV.values())) == len(ABBREV)  # no two parts read the same


def test_status_at_80_columns_counts_skipped_apart(
    run_80: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    state, _ = run_80
    assert main(["status", "--state-dir", str(state)]) == 0
    lines = _lines(capsys)
    header = next(line for line in lines if line.startswith("run"))
    for name in ("run", "status", "provider", "tasks", "held"):
        assert name in header
    row = next(line for line in lines if line.startswith(RUN))
    assert row.split()[1:3] == ["done", "local"]
    assert row.split()[-3:] == ["8/8", "+8s", "0"]  # not "8/16": skipped tasks are not to run
    assert any(line.startswith("journal: ") and line.endswith("journal.sqlite") for line in lines)


def test_a_long_path_is_printed_whole_on_a_line_of_its_own() -> None:
    import io

    from rich.console import Console

    from orchestrator.ui_tables import print_path

    buf = io.StringIO()
    path = "/very/long/" + "d" * 60 + "/report.md"
    print_path(Console(file=buf, width=40), "wrote", path)
    assert buf.getvalue().splitlines() == ["wrote", f"  {path}"]


def test_the_live_view_at_80_columns_keeps_ids_and_states_whole() -> None:
    import io

    from rich.console import Console

    from orchestrator.events import RunEnded, RunStarted, TaskEvent, TaskOutput
    from orchestrator.ui import RichReporter

    console = Console(file=io.StringIO(), force_terminal=True, width=80, record=True)
    ui = RichReporter(console)
    ids = ["mnist-tensorflow-momentum-cpu", "mnist-tensorflow-momentum-gpu"]
    ui.event(
        RunStarted(RUN, f"runs/{RUN}", ((ids[0], "local", "pending"), (ids[1], "-", "skipped")))
    )
    ui.event(TaskEvent(ids[0], "running", "local"))
    ui.event(TaskOutput(ids[0], "epoch 1/2: loss 0.4974, error 0.0749, 68,018 samples/s\n"))
    ui.event(TaskEvent(ids[0], "done", "13.7s"))
    ui.event(RunEnded(RUN, "done"))
    frame = Console(file=io.StringIO(), width=80, record=True)  # the last frame, without
    frame.print(ui.progress.get_renderable())  # the live display's redraw codes
    lines = [ln.rstrip() for ln in frame.export_text().splitlines()]
    assert all(len(line) <= 80 for line in lines)
    assert any(ln.split()[:2] == ["mnist-tf-mom-cpu", "done"] for ln in lines), lines
    assert any(ln.split()[:2] == ["mnist-tf-mom-gpu", "skipped"] for ln in lines), (
        lines
    )  # no spinner
