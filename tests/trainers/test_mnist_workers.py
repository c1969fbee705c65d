"""The MNIST trainer as two MultiWorkerMirroredStrategy workers on 127.0.0.1, launched directly
(no orchestrator): each is a real ``python -m trainers.mnist`` process with its own
``TF_CONFIG``, talking over TensorFlow's gRPC runtime (issue 19).

The yardstick is a single-process run with the same global batch and seed. Both compute the
gradient of the same batch mean; the two-worker run sums two half-batch partial sums instead of
one, so float32 rounding differs by a few ulps per step. Over one epoch of 20 momentum steps
the weights differ by about 1 ulp (6e-8 at |w| ~ 0.8, measured), so ``ATOL = 1e-6`` leaves
a 16x margin while being 1000x smaller than how far one epoch moves the weights (checked
below): a worker that skipped the all-reduce, trained on the whole batch, or on the other
worker's rows would miss it by orders of magnitude.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.mnist_data import MNIST_DIR, needs_mnist
from trainers.checkpoint import FILE_NAME
from trainers.cluster import cluster_from_env
from trainers.errors import BadArgument
from trainers.mlp import init_params
from trainers.timing import read_timing

REPO = Path(__file__).resolve().parents[2]
ATOL = 1e-6
ARGS = [
    "--framework", "tensorflow", "--optimizer", "momentum", "--data-dir", str(MNIST_DIR),
    "--hidden", "32", "--batch-size", "100", "--subset", "2000", "--seed", "3",
]  # fmt: skip


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _trainer(argv: list[str], tf_config: dict[str, object] | None) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen(
        [sys.executable, "-m", "trainers.mnist", *ARGS, *argv],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def _finish(procs: list[subprocess.Popen[str]], timeout_s: float = 240.0) -> None:
    try:
        outs = [p.communicate(timeout=timeout_s)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out[-3000:]


def _two_workers(tmp: Path, epochs: int) -> None:
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = [
        _trainer(
            [
                "--epochs",
                str(epochs),
                "--out",
                str(tmp / f"w{i}"),
                "--checkpoint-dir",
                str(tmp / f"ck{i}"),
            ],
            {"cluster": cluster, "task": {"type": "worker", "index": i}},
        )  # fmt: skip
        for i in range(2)
    ]
    _finish(procs)


def _weights(ckpt: Path) -> list[np.ndarray]:
    with np.load(ckpt / FILE_NAME) as npz:
        return [npz[k] for k in sorted(npz.files) if k.startswith(("param_", "slot_"))]


def _assert_close(got: list[np.ndarray], want: list[np.ndarray]) -> float:
    worst = max(float(np.abs(a - b).max()) for a, b in zip(got, want, strict=True))
    assert worst < ATOL, worst
    return worst


@needs_mnist
@pytest.mark.slow
def test_two_workers_match_one_process_and_resume_from_the_chief(tmp_path: Path) -> None:
    # The yardstick: one process, same global batch and seed, 1 epoch then 2.
    for epochs in (1, 2):
        one = tmp_path / f"one{epochs}"
        argv = ["--epochs", str(epochs), "--out", str(one), "--checkpoint-dir", f"{one}ck"]
        _finish([_trainer(argv, None)])

    _two_workers(tmp_path, epochs=1)
    _assert_close(_weights(tmp_path / "ck0"), _weights(tmp_path / "one1ck"))
    moved = max(
        float(np.abs(a - b).max())
        for a, b in zip(
            _weights(tmp_path / "ck0")[:4], init_params((784, 32, 10), seed=3), strict=True
        )
    )
    assert moved > 1000 * ATOL, "one epoch barely moved the weights: the tolerance says nothing"
    assert not (tmp_path / "ck1" / FILE_NAME).exists(), "only the chief writes checkpoints"
    for i in range(2):
        manifest = json.loads((tmp_path / f"w{i}" / "manifest.json").read_text())
        assert manifest["workers"] == 2 and manifest["worker_index"] == i
        assert manifest["worker_hosts"] == ["127.0.0.1", "127.0.0.1"]
        metrics = json.loads((tmp_path / f"w{i}" / "metrics.json").read_text())
        assert metrics["workers"] == 2

    # Resume: worker 1 has no checkpoint of its own; it takes the chief's state and epoch.
    _two_workers(tmp_path, epochs=2)
    _assert_close(_weights(tmp_path / "ck0"), _weights(tmp_path / "one2ck"))
    for i in range(2):
        starts = [
            r for r in read_timing(tmp_path / f"w{i}" / "timing.jsonl") if r["event"] == "start"
        ]
        assert starts[-1]["resumed_from_epoch"] == 1 and starts[-1]["workers"] == 2, (i, starts)


@pytest.mark.parametrize(
    ("text", "workers"),
    [
        ("", None),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}', None),
        ('{"cluster": {"worker": ["a:1", "[::1]:2"]}, "task": {"index": 1}}', ["a", "::1"]),
    ],
)
def test_tf_config_names_the_cluster(text: str, workers: list[str] | None) -> None:
    cluster = cluster_from_env({"TF_CONFIG": text})
    assert (cluster.hosts if cluster else None) == workers


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        '{"cluster": {}}',
        '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}',
        '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "ps", "index": 0}}',
    ],
)
def test_a_bad_tf_config_is_a_bad_argument(text: str) -> None:
    with pytest.raises(BadArgument):
        cluster_from_env({"TF_CONFIG": text})
