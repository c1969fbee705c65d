"""benchmarks/gpu.py on the CPU: the one-program epoch trains exactly like the NumPy reference,
and the PCA and peak measurements return sane numbers. Speed is not asserted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.gpu import Device, epoch_program, main, run_mlp, run_pca
from trainers.mlp import init_params, train_reference
from trainers.optim.config import make_optim

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"


def _data(n: int = 96, d: int = 784, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, d), dtype=np.float32), rng.integers(0, 10, n).astype(np.int64)


def test_scan_epoch_equals_the_numpy_reference() -> None:
    x, y = _data()
    sizes, batch, lr = (784, 300, 10), 16, 0.1
    run = epoch_program(sizes, lr, "NUMBA")
    params = init_params(sizes, 0)
    orders = [np.random.default_rng([0, e]).permutation(len(x)).astype(np.int32) for e in (1, 2)]
    y1h = np.eye(10, dtype=np.float32)[y]
    got = list(params)
    for order in orders:
        got, loss = run(x, y1h, order.reshape(-1, batch), got)
        assert np.isfinite(loss)
    want, _ = train_reference(
        make_optim("minibatch", learning_rate=lr), params, x, y, orders, batch
    )
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-3, atol=2e-5)


def test_mlp_and_pca_measurements_on_cpu() -> None:
    dev = Device("cpu", "highest")
    assert dev.gemm_flops() > 1e9
    x, y = _data(200)
    r = run_mlp(dev, x, y, batch=50, epochs=1)
    assert r["samples_per_s"] > 0 and len(r["losses"]) == 2 and r["losses"][1] < r["losses"][0]
    pca = run_pca(dev, x, k=3, tol=1e-6)
    assert pca["converged"] and pca["max_rel_err"] < 1e-5 and pca["passes"] >= 1


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "mnist.npz").is_file(), reason="shared mnist.npz absent")
def test_main_on_cpu(tmp_path: Path) -> None:
    argv = ["--device", "cpu", "--subset", "1000", "--batch-sizes", "100", "--epochs", "1"]
    result = main([*argv, "--pca-k", "2", "--json", str(tmp_path / "r.json")])
    assert result["device"] == "cpu" and 0 < result["mlp"][0]["fraction_of_peak"] < 1
    assert (tmp_path / "r.json").is_file()
