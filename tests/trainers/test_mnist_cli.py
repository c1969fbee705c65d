"""The ``python -m trainers.mnist`` contract: exit codes, one-line errors, output files,
checkpoint resume, and a clean stop on SIGTERM. Real frameworks and real MNIST (a subset)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.mnist_data import MNIST_DIR, needs_mnist
from trainers.checkpoint import load_checkpoint
from trainers.mlp_run import fingerprint
from trainers.mnist import main, parse_config, run
from trainers.timing import read_timing

REPO = Path(__file__).resolve().parents[2]
DATA = str(MNIST_DIR)  # shared, cached or fetched: tests.mnist_data


def _argv(out: Path, *extra: str, framework: str = "theano", optimizer: str = "adam") -> list[str]:
    return [
        "--framework", framework, "--optimizer", optimizer, "--out", str(out),
        "--data-dir", DATA, "--hidden", "32", "--batch-size", "100", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--optimizer", "nesterow"], "did you mean 'nesterov'"),
        (["--optimizer", "adam", "--learning-rate", "-0.1"], "learning_rate must be > 0"),
        (["--optimizer", "adam", "--epochs", "0"], "--epochs must be >= 1"),
        (["--optimizer", "adam", "--batch-size", "0"], "--batch-size must be >= 1"),
        (["--optimizer", "adam", "--hidden", "0"], "--hidden sizes"),
        (["--optimizer", "momentum", "--momentum", "1.5"], "momentum must be in [0, 1)"),
        (["--optimizer", "adam", "--epochs", "ten"], "invalid int value"),
        (["--optimizer", "adam", "--framework", "torch"], "invalid choice"),
        (["--optimizer", "adam", "--subset", "-3"], "--subset must be >= 1"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    argv = ["--framework", "theano", "--out", str(tmp_path / "o"), *args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err, err
    assert not (tmp_path / "o").exists()


def test_help_and_bad_arguments_do_not_import_a_framework(tmp_path: Path) -> None:
    code = (
        "import sys; from trainers.mnist import main; "
        f"rc = main(['--framework', 'tensorflow', '--optimizer', 'x', '--out', {str(tmp_path)!r}]);"
        "print(rc, 'tensorflow' in sys.modules, 'pytensor' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.stdout.split() == ["2", "False", "False"], proc.stderr


def test_missing_data_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    argv = _argv(tmp_path / "o", "--epochs", "1")
    argv[argv.index("--data-dir") + 1] = str(tmp_path / "empty")
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("trainers.mnist: error:")


@pytest.mark.parametrize("framework", ["tensorflow", "theano"])
def test_gpu_without_gpu_exits_3_unless_fallback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], framework: str
) -> None:
    from trainers.device import _find_gpu

    if _find_gpu(framework)[0] is not None:
        pytest.skip("this machine has a usable GPU")
    argv = _argv(tmp_path / "o", "--device", "gpu", "--epochs", "1", framework=framework)
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--allow-cpu-fallback" in err
    assert not (tmp_path / "o" / "metrics.json").exists()


@needs_mnist
@pytest.mark.parametrize("framework", ["tensorflow", "theano"])
def test_run_writes_timing_metrics_and_manifest(tmp_path: Path, framework: str) -> None:
    out = tmp_path / "o"
    argv = _argv(out, "--epochs", "2", "--subset", "2000", "--device", "gpu",
                 "--allow-cpu-fallback", framework=framework)  # fmt: skip
    from trainers.device import _find_gpu

    has_gpu = _find_gpu(framework)[0] is not None
    assert main(argv) == 0
    rows = read_timing(out / "timing.jsonl")
    assert [r["event"] for r in rows] == ["start", "compile", "epoch", "epoch", "end"]
    assert rows[1]["compile_s"] > 0
    for r, epoch in zip(rows[2:4], (1, 2), strict=True):
        assert r["epoch"] == epoch and r["wall_s"] > 0 and r["samples_per_s"] > 0
        assert 0 <= r["error"] <= 1 and np.isfinite(r["loss"])
    assert rows[3]["loss"] < rows[2]["loss"]

    metrics = json.loads((out / "metrics.json").read_text())
    required = {
        "trainer", "framework", "optimizer", "device", "epochs", "hidden", "batch_size",
        "learning_rate", "test_error", "final_loss", "train_time_s", "compile_time_s",
        "samples_per_s",
    }  # fmt: skip
    assert required <= set(metrics)
    assert metrics["framework"] == framework and metrics["hidden"] == [32]
    assert metrics["test_error"] == rows[3]["error"] < 0.3  # 2 epochs on 2k samples: well trained
    assert metrics["epochs"] == 2 and metrics["batch_size"] == 100

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["framework"] == framework
    assert manifest["device_used"].startswith("gpu" if has_gpu else "cpu")
    assert metrics["device"] == ("gpu" if has_gpu else "cpu")
    assert manifest["device_requested"] == "gpu"


@needs_mnist
def test_checkpoint_resume_in_process_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    ckpt, out = tmp_path / "ckpt", tmp_path / "o"
    base = _argv(out, "--subset", "1000", "--checkpoint-dir", str(ckpt), optimizer="momentum")
    first = run(parse_config([*base, "--epochs", "1"]))
    assert first["epochs"] == 1 and first["resumed_from_epoch"] == 0
    second = run(parse_config([*base, "--epochs", "3"]))
    assert second["resumed_from_epoch"] == 1 and second["epochs_run"] == 2
    assert [h["epoch"] for h in second["history"]] == [1, 2, 3]

    rows = read_timing(out / "timing.jsonl")
    assert [r["event"] for r in rows].count("start") == 2
    assert [r["epoch"] for r in rows if r["event"] == "epoch"] == [1, 2, 3]
    assert rows[-1]["event"] == "end" and rows[-1]["status"] == "ok"

    straight = run(parse_config(_argv(tmp_path / "s", "--subset", "1000", "--epochs", "3",
                                      optimizer="momentum")))  # fmt: skip
    assert second["final_loss"] == pytest.approx(straight["final_loss"], rel=1e-5)
    assert second["test_error"] == pytest.approx(straight["test_error"], abs=1e-3)


@needs_mnist
def test_checkpoint_of_another_run_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = tmp_path / "ckpt"
    base = ["--subset", "500", "--epochs", "1", "--checkpoint-dir", str(ckpt)]
    assert main(_argv(tmp_path / "a", *base)) == 0
    assert main(_argv(tmp_path / "b", *base, "--seed", "1")) == 2
    assert "different run" in capsys.readouterr().err


def _start(argv: list[str], tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "trainers.mnist", *argv],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def _wait_for_epoch(log: Path, proc: subprocess.Popen[str], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(r["event"] == "epoch" for r in read_timing(log)):
            return
        if proc.poll() is not None:
            raise AssertionError(
                f"trainer ended early: {proc.stderr.read() if proc.stderr else ''}"
            )
        time.sleep(0.01)
    raise AssertionError("no epoch row in time")


@needs_mnist
@pytest.mark.slow
def test_killed_trainer_resumes_from_last_finished_epoch(tmp_path: Path) -> None:
    ckpt, out = tmp_path / "ckpt", tmp_path / "o"
    # Many epochs so the kill lands long before the end; the restart asks for just two more.
    base = _argv(out, "--subset", "3000", "--checkpoint-dir", str(ckpt))
    proc = _start([*base, "--epochs", "500"], tmp_path)
    try:
        _wait_for_epoch(out / "timing.jsonl", proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    cfg = parse_config([*base, "--epochs", "1"])
    saved = load_checkpoint(ckpt, fingerprint(cfg, 3000))
    assert saved is not None and 1 <= saved.epoch < 500
    k = saved.epoch

    again = _start([*base, "--epochs", str(k + 2)], tmp_path)
    assert again.wait(timeout=120) == 0, again.stderr.read() if again.stderr else ""
    rows = read_timing(out / "timing.jsonl")
    starts = [r for r in rows if r["event"] == "start"]
    assert [s["resumed_from_epoch"] for s in starts] == [0, k]
    epochs = [r["epoch"] for r in rows if r["event"] == "epoch"]
    assert epochs[-2:] == [k + 1, k + 2] and sorted(epochs) == list(range(1, k + 3))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["resumed_from_epoch"] == k and metrics["epochs"] == k + 2
    # A temporary the kill may have left mid-save is gone; the checkpoint is whole.
    assert [p.name for p in ckpt.iterdir()] == ["mlp.npz"]


@needs_mnist
@pytest.mark.slow
def test_sigterm_stops_cleanly_with_an_end_row(tmp_path: Path) -> None:
    out = tmp_path / "o"
    proc = _start(_argv(out, "--subset", "3000", "--epochs", "500"), tmp_path)
    try:
        _wait_for_epoch(out / "timing.jsonl", proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read() if proc.stderr else ""
    assert "stopped by SIGTERM" in err
    rows = read_timing(out / "timing.jsonl")
    assert rows[-1]["event"] == "end" and rows[-1]["status"] == "stopped"
    assert not (out / "metrics.json").exists()


@needs_mnist
def test_resume_restores_an_epoch_row_the_killed_run_did_not_log(tmp_path: Path) -> None:
    ckpt, out = tmp_path / "ckpt", tmp_path / "o"
    base = _argv(out, "--subset", "500", "--checkpoint-dir", str(ckpt))
    run(parse_config([*base, "--epochs", "2"]))
    log = out / "timing.jsonl"
    # As if killed after saving epoch 2 but before its row: drop that row and the end row.
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[:-2]) + "\n")
    run(parse_config([*base, "--epochs", "3"]))
    rows = [r for r in read_timing(log) if r["event"] == "epoch"]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[1].get("restored") is True and "restored" not in rows[2]
