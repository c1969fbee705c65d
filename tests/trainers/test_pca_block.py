"""Block gradient ascent (`trainers.pca_block`): the known spectrum, groups, warm starts, caps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.trainers.test_pca import SPECTRUM, angle_deg, known_data
from trainers.pca import main
from trainers.pca_block import BlockSettings, block_ascent


def _op(x: np.ndarray):  # type: ignore[no-untyped-def]
    xc = x.astype(np.float64) - x.mean(axis=0)
    return lambda v: xc.T @ (xc @ v)


@pytest.mark.parametrize("max_block", [32, 2])
def test_block_finds_a_known_spectrum(max_block: int) -> None:
    x, q = known_data(400, 30, SPECTRUM, dtype=np.float64)
    settings = BlockSettings(5, 400.0, tol=1e-10, max_block=max_block, guard=2)
    rows: list[int] = []
    found, stats = block_ascent(_op(x), 30, settings, on_component=lambda c: rows.append(c.index))
    np.testing.assert_allclose([c.eigenvalue for c in found], SPECTRUM[:5] ** 2 / 400, rtol=1e-9)
    assert rows == [0, 1, 2, 3, 4]
    for i, c in enumerate(found):
        assert c.converged and c.residual < 1e-10 and angle_deg(c.vector, q[:, i]) < 1e-6
    vecs = np.stack([c.vector for c in found])
    np.testing.assert_allclose(vecs @ vecs.T, np.eye(5), atol=1e-9)
    # Per-component iterations add up to the block iterations (the work actually done).
    assert sum(c.iterations for c in found) == stats.iterations
    assert stats.passes == stats.iterations + (3 if max_block == 2 else 1)


def test_warm_start_from_the_answer_converges_at_once() -> None:
    x, _ = known_data(300, 20, np.linspace(20.0, 1.0, 20), dtype=np.float64)
    settings = BlockSettings(3, 300.0, tol=1e-9, guard=1)
    cold, cold_stats = block_ascent(_op(x), 20, settings)
    init = np.stack([c.vector for c in cold])
    warm, warm_stats = block_ascent(_op(x), 20, settings, init=init)
    assert warm_stats.iterations <= 1 < cold_stats.iterations
    for a, b in zip(cold, warm, strict=True):
        assert a.eigenvalue == pytest.approx(b.eigenvalue, rel=1e-9)


def test_cap_and_rank_exhaustion() -> None:
    x, _ = known_data(200, 10, np.array([10.0, 9.99, 9.98]))
    capped, _ = block_ascent(_op(x), 10, BlockSettings(2, 200.0, tol=1e-14, max_iter=2, guard=0))
    assert [c.converged for c in capped] == [False, False]
    x, _ = known_data(50, 8, np.array([5.0, 2.0]), dtype=np.float64)
    found, _ = block_ascent(_op(x), 8, BlockSettings(4, 50.0, tol=1e-9))
    assert found[0].eigenvalue == pytest.approx(0.5)
    assert all(c.eigenvalue < 1e-6 and c.converged for c in found[2:])


@pytest.mark.parametrize("framework", ["tensorflow", "theano"])
def test_cli_block_and_power_agree(framework: str, tmp_path: Path) -> None:
    x, _ = known_data(300, 12, SPECTRUM)
    np.save(tmp_path / "x.npy", x)
    results = {}
    for method in ("block", "power"):
        out = tmp_path / method
        argv = ["--framework", framework, "--components", "3", "--out", str(out), "--tol", "1e-6"]
        argv += ["--input", str(tmp_path / "x.npy"), "--method", method, "--chunk-rows", "100"]
        assert main(argv) == 0
        results[method] = json.loads((out / "metrics.json").read_text())
    block, power = results["block"], results["power"]
    np.testing.assert_allclose(block["eigenvalues"], power["eigenvalues"], rtol=1e-5)
    assert block["method"] == "block" and block["passes"] >= block["block_iterations"]
    assert sum(block["iterations"]) == block["block_iterations"] < sum(power["iterations"])
    warm = tmp_path / "warm"
    argv = ["--framework", framework, "--components", "3", "--out", str(warm)]
    argv += [
        "--input",
        str(tmp_path / "x.npy"),
        "--warm-start",
        str(tmp_path / "block" / "components.npy"),
    ]
    assert main(argv) == 0
    assert json.loads((warm / "metrics.json").read_text())["block_iterations"] <= 1
