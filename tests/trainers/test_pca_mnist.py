"""The done-when check: top-10 MNIST eigenpairs in both frameworks against numpy.linalg.eigh.

Full 60k training set, D = 784, through the CLI (so the MNIST → .npy staging and the chunked
operator are the ones a user runs). Eigenvalues to 1e-4 relative, eigenvectors within 1 degree.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.mnist_data import MNIST_DIR, needs_mnist
from trainers.pca import main


@pytest.fixture(autouse=True)
def _restore_device_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """choose_device sets CUDA_VISIBLE_DEVICES for the process; undo it after each test."""
    for key in ("CUDA_VISIBLE_DEVICES", "TF_CPP_MIN_LOG_LEVEL"):
        if key in os.environ:
            monkeypatch.setenv(key, os.environ[key])
        else:
            monkeypatch.delenv(key, raising=False)


SHARED = MNIST_DIR  # shared, cached or fetched: tests.mnist_data


@pytest.mark.slow
@needs_mnist
@pytest.mark.parametrize("framework", ["tensorflow", "theano"])
def test_mnist_top10_matches_eigh(framework: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["--framework", framework, "--device", "cpu", "--components", "10", "--out", str(out)]
    argv += ["--data-dir", str(SHARED), "--cache-dir", str(tmp_path / "cache"), "--tol", "1e-5"]
    assert main(argv) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert (m["n"], m["d"]) == (60000, 784) and all(m["converged"])
    ref = m["reference"]
    assert max(ref["eigenvalue_rel_error"]) < 1e-4, ref["eigenvalue_rel_error"]
    assert max(ref["angle_deg"]) < 1.0, ref["angle_deg"]
    # MNIST's known leading eigenvalue on the [0, 1] scale (biased covariance).
    assert m["eigenvalues"][0] == pytest.approx(5.1168, rel=1e-4)
    assert 0.09 < m["explained_variance_ratio"][0] < 0.1
