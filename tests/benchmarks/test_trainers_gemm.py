"""`benchmarks.trainers`' bound: every BLAS a contestant calls is timed, and each timing is of a
real product (a wrong call would time nothing and raise the bound)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import trainers as bench


def test_the_wheels_gemm_is_a_candidate_for_the_bound_when_pytensor_calls_it() -> None:
    from trainers import pt_blas

    assert ("scipy-openblas32" in bench.GEMMS.values()) == (pt_blas.library_path() is not None)


def test_the_wheels_product_equals_numpys() -> None:
    pytest.importorskip("scipy_openblas32")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((64, 64), dtype=np.float32)
    b = rng.standard_normal((64, 64), dtype=np.float32)
    np.testing.assert_allclose(bench._wheel_product(a, b)(), a @ b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("library", ["numpy", "scipy-openblas32"])
def test_gemm_rate_is_flops_over_the_best_time(library: str) -> None:
    if library == "scipy-openblas32":
        pytest.importorskip("scipy_openblas32")
    rate = bench.gemm_rate(library, size=128, repeats=3)
    assert 1e8 < rate < 1e13  # FLOP/s of one small product on any CPU: not 0, not infinite
