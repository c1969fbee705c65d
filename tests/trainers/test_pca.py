"""Gradient PCA on small synthetic data whose spectrum is known exactly, in both frameworks.

``known_data`` builds X = 1·mᵀ + U·diag(s)·Qᵀ with U's columns orthonormal and orthogonal to 1,
so the centred scatter matrix is exactly Q·diag(s²)·Qᵀ: eigenvalues s²/n_norm, eigenvectors Q.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trainers.chunks import RowChunks, column_stats
from trainers.pca import PowerSettings, deflated_power, main
from trainers.timing import read_timing


@pytest.fixture(autouse=True)
def _restore_device_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """choose_device sets CUDA_VISIBLE_DEVICES for the process; undo it after each test."""
    for key in ("CUDA_VISIBLE_DEVICES", "TF_CPP_MIN_LOG_LEVEL"):
        if key in os.environ:
            monkeypatch.setenv(key, os.environ[key])
        else:
            monkeypatch.delenv(key, raising=False)


REPO = Path(__file__).resolve().parents[2]


def known_data(
    n: int, d: int, spectrum: np.ndarray, seed: int = 1, dtype: type = np.float32
) -> tuple[np.ndarray, np.ndarray]:
    """(X (n, d) of ``dtype``, Q (d, r) float64) with scatter eigenvalues spectrum² along Q."""
    rng = np.random.default_rng(seed)
    r = len(spectrum)
    g = rng.standard_normal((n, r))
    g -= g.mean(axis=0)
    u, _ = np.linalg.qr(g)
    q, _ = np.linalg.qr(rng.standard_normal((d, r)))
    x = u * spectrum @ q.T + rng.uniform(-2, 2, size=d)
    return x.astype(dtype), q


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    cos = abs(float(a @ b)) / (np.linalg.norm(a) * np.linalg.norm(b))
    return math.degrees(math.acos(min(1.0, cos)))


SPECTRUM = np.array([40.0, 30.0, 25.0, 12.0, 6.0, 3.0, 1.0])


def test_deflated_power_finds_a_known_spectrum() -> None:
    x, q = known_data(400, 30, SPECTRUM, dtype=np.float64)
    xc = x - x.mean(axis=0)
    found = deflated_power(lambda v: xc.T @ (xc @ v), 30, PowerSettings(5, 400.0, tol=1e-10))
    expected = SPECTRUM[:5] ** 2 / 400
    got = np.array([c.eigenvalue for c in found])
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    for i, c in enumerate(found):
        assert c.converged and c.residual < 1e-10
        assert angle_deg(c.vector, q[:, i]) < 1e-6
        assert abs(np.linalg.norm(c.vector) - 1) < 1e-12
    # Deflation leaves the components mutually orthogonal.
    vecs = np.stack([c.vector for c in found])
    np.testing.assert_allclose(vecs @ vecs.T, np.eye(5), atol=1e-9)


def test_finite_step_ascent_reaches_the_same_answer_slower() -> None:
    x, q = known_data(300, 12, SPECTRUM[:4], dtype=np.float64)
    xc = x - x.mean(axis=0)
    apply = lambda v: xc.T @ (xc @ v)  # noqa: E731
    power = deflated_power(apply, 12, PowerSettings(2, 300.0, tol=1e-9))
    ascent = deflated_power(apply, 12, PowerSettings(2, 300.0, tol=1e-9, step_size=0.1))
    for p, a in zip(power, ascent, strict=True):
        assert a.eigenvalue == pytest.approx(p.eigenvalue, rel=1e-9)
        assert a.iterations > p.iterations


def test_iteration_cap_is_reported_not_hidden() -> None:
    x, _ = known_data(200, 10, np.array([10.0, 9.9, 9.8]))
    xc = x.astype(np.float64) - x.mean(axis=0)
    found = deflated_power(lambda v: xc.T @ (xc @ v), 10, PowerSettings(1, 200, 1e-12, 3))
    assert found[0].iterations == 3 and not found[0].converged


def test_rank_exhausted_gives_zero_eigenvalues() -> None:
    x, _ = known_data(50, 8, np.array([5.0, 2.0]), dtype=np.float64)
    xc = x - x.mean(axis=0)
    found = deflated_power(lambda v: xc.T @ (xc @ v), 8, PowerSettings(4, 50.0, tol=1e-9))
    assert found[0].eigenvalue == pytest.approx(0.5)
    assert all(c.eigenvalue < 1e-6 and c.converged for c in found[2:])


@pytest.fixture(params=["tensorflow", "theano"])
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _operator(framework: str, d: int):  # type: ignore[no-untyped-def]
    if framework == "tensorflow":
        from trainers.tf_pca import TfCovOperator

        return TfCovOperator(d)
    from trainers.pt_pca import PtCovOperator

    return PtCovOperator(d)


@pytest.mark.parametrize("resident", [True, False])
def test_framework_product_equals_numpy(framework: str, resident: bool, tmp_path: Path) -> None:
    x, _ = known_data(257, 16, SPECTRUM)
    np.save(tmp_path / "x.npy", x)
    chunks = RowChunks.from_npy(tmp_path / "x.npy", rows=50)  # 6 chunks, the last one short
    mean, _ = column_stats(chunks)
    op = _operator(framework, 16)
    assert op.load(chunks, mean, resident=resident) > 0
    v = np.random.default_rng(0).standard_normal(16)
    xc = x.astype(np.float64) - mean
    np.testing.assert_allclose(op.apply(v), xc.T @ (xc @ v), rtol=2e-5, atol=1e-3)


def _run_cli(tmp_path: Path, framework: str, *extra: str) -> dict:  # type: ignore[type-arg]
    out = tmp_path / f"out-{framework}"
    argv = ["--framework", framework, "--device", "cpu", "--components", "4", "--out", str(out)]
    assert main([*argv, *extra]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_cli_end_to_end_on_a_file(
    framework: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x, q = known_data(500, 20, SPECTRUM)
    np.save(tmp_path / "x.npy", x)
    m = _run_cli(
        tmp_path,
        framework,
        "--input",
        str(tmp_path / "x.npy"),
        "--tol",
        "1e-6",
        "--chunk-rows",
        "64",
        "--resident-mb",
        "0",
    )
    assert not m["resident"] and m["n_chunks"] == 8 and m["normalisation"] == "biased"
    np.testing.assert_allclose(m["eigenvalues"], SPECTRUM[:4] ** 2 / 500, rtol=1e-4)
    total = float((SPECTRUM**2).sum()) / 500
    assert m["total_variance"] == pytest.approx(total, rel=1e-4)
    np.testing.assert_allclose(
        m["explained_variance_ratio"], SPECTRUM[:4] ** 2 / 500 / total, rtol=1e-4
    )
    assert max(m["reference"]["eigenvalue_rel_error"]) < 1e-4
    assert max(m["reference"]["angle_deg"]) < 0.1
    out = tmp_path / f"out-{framework}"
    comps = np.load(out / "components.npy")
    assert comps.shape == (4, 20) and angle_deg(comps[0], q[:, 0]) < 0.1
    events = [r["event"] for r in read_timing(out / "timing.jsonl")]
    assert events == ["start", "compile", "component", "component", "component", "component", "end"]
    progress = [line for line in capsys.readouterr().out.splitlines() if line.startswith("comp")]
    assert [line.split(":")[0] for line in progress] == [f"component {i}/4" for i in range(1, 5)]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["framework"] == framework and manifest["device_used"] == "cpu"


def test_unbiased_normalisation_scales_eigenvalues(tmp_path: Path) -> None:
    x, _ = known_data(100, 10, SPECTRUM[:3])
    np.save(tmp_path / "x.npy", x)
    m = _run_cli(
        tmp_path,
        "theano",
        "--input",
        str(tmp_path / "x.npy"),
        "--normalisation",
        "unbiased",
        "--tol",
        "1e-8",
    )
    assert m["n_norm"] == 99
    np.testing.assert_allclose(m["eigenvalues"][:3], SPECTRUM[:3] ** 2 / 99, rtol=1e-5)
    assert m["reference"]["eigenvalues_numpy"][0] == pytest.approx(SPECTRUM[0] ** 2 / 99)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--components", "0"], "--components must be >= 1"),
        (["--tol", "-1"], "--tol must be > 0"),
        (["--components", "50"], "exceeds the data's dimension"),
        (["--subset", "10"], "does not combine"),
    ],
)
def test_bad_arguments_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    np.save(tmp_path / "x.npy", np.ones((10, 5), np.float32))
    argv = [
        "--framework",
        "theano",
        "--out",
        str(tmp_path / "o"),
        "--input",
        str(tmp_path / "x.npy"),
    ]
    assert main([*argv, *extra]) == 2
    assert message in capsys.readouterr().err


def test_missing_or_bad_input_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--framework", "theano", "--out", str(tmp_path / "o"), "--input"]
    assert main([*argv, str(tmp_path / "none.npy")]) == 2
    np.save(tmp_path / "one_d.npy", np.ones(5, np.float32))
    assert main([*argv, str(tmp_path / "one_d.npy")]) == 2
    assert "2-D" in capsys.readouterr().err


def test_gpu_without_a_gpu_exits_3(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.ones((10, 5), np.float32))
    argv = [sys.executable, "-m", "trainers.pca", "--framework", "tensorflow", "--device", "gpu"]
    argv += ["--out", str(tmp_path / "o"), "--input", str(tmp_path / "x.npy")]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
    if proc.returncode == 0:
        pytest.skip("this machine has a GPU TensorFlow can use")
    assert proc.returncode == 3, proc.stderr
    assert "--device gpu" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o" / "metrics.json").exists()
