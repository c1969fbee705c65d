"""The real trainers under ``trainers.measure`` when the machine is about to go: SIGUSR1 ends them
at the next boundary with exit 75, and an MNIST run started again resumes where it stopped and
ends where an uninterrupted run does. Real frameworks, real MNIST (a subset), real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.imds import FakeImds
from tests.mnist_data import MNIST_DIR, needs_mnist
from trainers.checkpoint import load_checkpoint
from trainers.errors import PREEMPTED_EXIT_CODE
from trainers.mlp_run import fingerprint
from trainers.mnist import parse_config, run
from trainers.timing import read_timing

REPO = Path(__file__).resolve().parents[2]
SETTINGS = ("ORCHESTRATE_IMDS_URL", "ORCHESTRATE_IMDS_POLL_S", "ORCHESTRATE_PREEMPT_SIGNAL")


def _measured(out: Path, argv: list[str], **env: str) -> subprocess.Popen[str]:
    base = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    return subprocess.Popen(
        [sys.executable, "-S", "-m", "trainers.measure", "--out", str(out), "--",
         sys.executable, *argv],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**base, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2",
             "ORCHESTRATE_IMDS_POLL_S": "0.05", **env},
    )  # fmt: skip


def _wait_for_row(log: Path, event: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if any(r["event"] == event for r in read_timing(log)):
            return
        if proc.poll() is not None:
            raise AssertionError(f"ended before a {event} row: {proc.communicate()}")
        time.sleep(0.01)
    raise AssertionError(f"no {event} row in time")


def _ended(proc: subprocess.Popen[str], timeout_s: float = 120) -> tuple[int, str, str]:
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, stdout, stderr


@needs_mnist
@pytest.mark.slow
@pytest.mark.parametrize(("framework", "notice"), [("tensorflow", "imds"), ("theano", "file")])
def test_a_preempted_mnist_run_exits_75_and_resumes_to_the_same_result(
    tmp_path: Path, framework: str, notice: str
) -> None:
    ckpt, out, epochs = tmp_path / "ckpt", tmp_path / "o", 20
    args = ["--framework", framework, "--optimizer", "adam", "--data-dir", str(MNIST_DIR),
            "--hidden", "32", "--batch-size", "100", "--subset", "2000",
            "--epochs", str(epochs)]  # fmt: skip
    argv = ["-m", "trainers.mnist", *args, "--out", str(out), "--checkpoint-dir", str(ckpt)]
    with FakeImds() as imds:
        proc = _measured(out, argv, ORCHESTRATE_IMDS_URL=imds.url if notice == "imds" else "")
        _wait_for_row(out / "timing.jsonl", "epoch", proc)
        if notice == "imds":
            imds.notice_spot()
        else:
            (out / "preempt-now").touch()
        code, log, err = _ended(proc)
    assert code == PREEMPTED_EXIT_CODE == 75, err
    assert "[orchestrate] notice: spot interruption" in log and "preempted (SIGUSR1)" in err
    process = json.loads((out / "process.json").read_text())
    assert process["preempted"] is True and process["exit_code"] == 75
    assert json.loads((out / "preempted.json").read_text())["source"] == (
        "spot/instance-action" if notice == "imds" else "file"
    )
    rows = read_timing(out / "timing.jsonl")
    assert rows[-1]["event"] == "end" and rows[-1]["status"] == "preempted"
    assert rows[-1]["signal"] == "SIGUSR1" and not (out / "metrics.json").exists()
    saved = load_checkpoint(ckpt, fingerprint(parse_config([*args, "--out", str(out)]), 2000))
    assert saved is not None and 1 <= saved.epoch < epochs
    k = saved.epoch
    assert max(r["epoch"] for r in rows if r["event"] == "epoch") == k  # stopped after saving

    code, log, err = _ended(_measured(out, argv))  # the orchestrator's retry, same folders
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["resumed_from_epoch"] == k and metrics["epochs"] == epochs
    done = [r["epoch"] for r in read_timing(out / "timing.jsonl") if r["event"] == "epoch"]
    assert sorted(set(done)) == list(range(1, epochs + 1)) and len(done) - len(set(done)) <= 1
    assert json.loads((out / "process.json").read_text())["preempted"] is False

    straight = run(parse_config([*args, "--out", str(tmp_path / "straight")]))
    assert abs(metrics["test_error"] - straight["test_error"]) <= 0.003  # 0.3 points


@pytest.mark.slow
def test_a_preempted_pca_stops_at_the_next_step_and_exits_75(tmp_path: Path) -> None:
    # Gaussian noise has no eigengap to speak of, and a tolerance below float precision never
    # converges: the solve runs until stopped.
    x = np.random.default_rng(0).standard_normal((2000, 200)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "o"
    argv = ["-m", "trainers.pca", "--framework", "theano", "--input", str(tmp_path / "x.npy"),
            "--method", "power", "--components", "20", "--tol", "1e-30",
            "--max-iter", "1000000", "--no-reference", "--out", str(out)]  # fmt: skip
    proc = _measured(out, argv)
    _wait_for_row(out / "timing.jsonl", "compile", proc)
    (out / "preempt-now").touch()
    t0 = time.monotonic()
    code, log, err = _ended(proc, timeout_s=60)
    assert code == PREEMPTED_EXIT_CODE, err
    assert time.monotonic() - t0 < 10 and "pca: preempted (SIGUSR1)" in err
    rows = read_timing(out / "timing.jsonl")
    assert rows[-1]["event"] == "end" and rows[-1]["status"] == "preempted"
    assert not (out / "metrics.json").exists() and not (out / "components.npy").exists()
