"""`trainers.pt_dot`: products of transposed matrices reach BLAS under Numba, same numbers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pt = pytest.importorskip("pytensor.tensor")


@pytest.mark.parametrize(("ta", "tb"), [(True, False), (False, True), (True, True), (False, False)])
@pytest.mark.parametrize("mode", ["numba", "python"])
def test_transposed_products_equal_numpy(ta: bool, tb: bool, mode: str) -> None:
    from pytensor.compile.maker import function

    from trainers import pt_blas
    from trainers.pt_dot import TransposedDot, numba_mode

    rng = np.random.default_rng(0)
    a_val = rng.standard_normal((7, 5) if ta else (5, 7)).astype(np.float32)
    b_val = rng.standard_normal((4, 7) if tb else (7, 4)).astype(np.float32)
    a, b = pt.matrix("a", dtype="float32"), pt.matrix("b", dtype="float32")
    if mode == "numba":  # the rewrite puts the Op in: it must find both transposes
        out = pt.dot(a.T if ta else a, b.T if tb else b)
        fn = function([a, b], out, mode=numba_mode())
        ops = [type(n.op) for n in fn.maker.fgraph.toposort()]
        # A plain float32 product becomes the Op only where the wheel's BLAS is there to call.
        assert (TransposedDot in ops) == (ta or tb or pt_blas.available())
    else:
        fn = function([a, b], TransposedDot(ta, tb)(a, b), mode="FAST_COMPILE")
    want = (a_val.T if ta else a_val) @ (b_val.T if tb else b_val)
    np.testing.assert_allclose(fn(a_val, b_val), want, rtol=1e-5, atol=1e-5)


def test_every_product_of_the_mlp_step_reaches_blas_untransposed() -> None:
    from pytensor.tensor.math import Dot

    from trainers import pt_blas
    from trainers.mlp import init_params
    from trainers.optim.config import make_optim
    from trainers.pt_dot import TransposedDot, _is_transpose
    from trainers.pt_mlp import PtMlp

    x = np.random.default_rng(1).standard_normal((40, 20)).astype(np.float32)
    y = np.arange(40) % 10
    model = PtMlp(
        make_optim("minibatch"), init_params((20, 16, 10), 0), x, y, x, y, batch_size=20, parts=1
    )
    nodes = model._step.maker.fgraph.toposort()  # type: ignore[attr-defined]
    dots = [n for n in nodes if isinstance(n.op, Dot)]
    assert not [n for n in dots if any(_is_transpose(v) for v in n.inputs)]
    products = [n for n in nodes if isinstance(n.op, TransposedDot)]
    if pt_blas.available():  # all five products (2 forward, 3 backward) call the wheel's sgemm
        assert not dots
        assert len(products) == 5
    else:  # the forward products stay plain Dots; the backward ones take a transpose flag
        assert len(dots) == 2
        assert len(products) == 3


needs_blas = pytest.mark.skipif(
    "not __import__('trainers.pt_blas', fromlist=['x']).available()",
    reason="scipy-openblas32 is not installed",
)


def _kernel(ta: bool, tb: bool, kind: str) -> object:
    import numba

    from trainers import pt_dot

    pt_dot._register_numba()  # registers the wheel's function with LLVM
    make = pt_dot._sgemm_kernel if kind == "sgemm" else pt_dot._np_dot_kernel
    # numba.njit, not PyTensor's wrapper: that one compiles kernels with no Python entry point.
    return make(numba.njit, ta, tb)


@needs_blas
@pytest.mark.parametrize(("ta", "tb"), [(False, False), (True, False), (False, True), (True, True)])
def test_the_sgemm_kernel_equals_numpy_on_strided_and_empty_operands(ta: bool, tb: bool) -> None:
    kernel = _kernel(ta, tb, "sgemm")
    rng = np.random.default_rng(2)

    def operands(m: int, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
        b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
        return a, b

    def want(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a.T if ta else a) @ (b.T if tb else b)

    a, b = operands(33, 17, 9)
    np.testing.assert_allclose(kernel(a, b), want(a, b), rtol=1e-5, atol=1e-5)  # type: ignore[operator]
    # Every other column of a wider array: not C-contiguous, so the kernel must copy first.
    wide_a = np.repeat(a, 2, axis=1)[:, ::2]
    assert not wide_a.flags.c_contiguous
    np.testing.assert_allclose(kernel(wide_a, b), want(a, b), rtol=1e-5, atol=1e-5)  # type: ignore[operator]
    for m, k, n in [(0, 5, 3), (4, 0, 3), (4, 5, 0)]:
        a, b = operands(m, k, n)
        got = kernel(a, b)  # type: ignore[operator]
        assert got.shape == (m, n)
        assert not got.any()  # a sum of nothing is zero, not what the memory held


@needs_blas
def test_the_sgemm_kernel_refuses_mismatched_operands_instead_of_reading_past_them() -> None:
    kernel = _kernel(False, False, "sgemm")
    a, b = np.ones((4, 5), np.float32), np.ones((6, 3), np.float32)
    with pytest.raises(ValueError, match="inner dimensions"):
        kernel(a, b)  # type: ignore[operator]


@needs_blas
def test_the_blas_is_the_wheels_not_scipys() -> None:
    import ctypes

    from llvmlite import binding

    from trainers import pt_blas

    path = pt_blas.library_path()
    assert path is not None and "scipy_openblas32" in path
    wheel = ctypes.cast(pt_blas.cblas_sgemm(), ctypes.c_void_p).value
    assert binding.address_of_symbol(pt_blas.SYMBOL) == wheel


_CACHED_PRODUCT = """
import numpy as np, pytensor.tensor as pt
from pytensor.compile.maker import function
from trainers.pt_dot import numba_mode
a, b = pt.matrix("a", dtype="float32"), pt.matrix("b", dtype="float32")
fn = function([a, b], pt.dot(a.T, b), mode=numba_mode())
rng = np.random.default_rng(0)
x = rng.standard_normal((30, 20)).astype(np.float32)
y = rng.standard_normal((30, 7)).astype(np.float32)
err = float(np.abs(fn(x, y) - x.T @ y).max())
print(err, len(fn.vm.jit_fn.stats.cache_hits))
"""


@needs_blas
@pytest.mark.slow
def test_a_product_loaded_from_numbas_cache_in_a_new_process_finds_the_wheels_function(
    tmp_path: Path,
) -> None:
    """Compiled code names the function by our symbol; a process that loads it from the disk
    cache must have registered that symbol before, or the product would call nothing."""
    env = {**os.environ, "PYTENSOR_FLAGS": f"base_compiledir={tmp_path}"}
    root = Path(__file__).resolve().parents[2]
    runs = []
    for _ in range(2):
        proc = subprocess.run(
            [sys.executable, "-c", _CACHED_PRODUCT],
            cwd=root, env=env, capture_output=True, text=True, timeout=300, check=True,
        )  # fmt: skip
        err, hits = proc.stdout.split()
        runs.append((float(err), int(hits)))
    assert runs[0] == (0.0, 0)  # compiled, and the cache written
    assert runs[1] == (0.0, 1)  # loaded from the cache, and still right


@pytest.mark.parametrize(("ta", "tb"), [(False, False), (True, False), (False, True), (True, True)])
def test_the_np_dot_kernel_without_the_wheel_equals_numpy(ta: bool, tb: bool) -> None:
    kernel = _kernel(ta, tb, "np.dot")
    rng = np.random.default_rng(3)
    a = rng.standard_normal((6, 5)).astype(np.float32)
    b = rng.standard_normal((4, 6) if tb else (6, 4)).astype(np.float32)
    a = a if ta else a.T.copy()  # (5, 6): op(a) is 5×6 either way
    want = (a.T if ta else a) @ (b.T if tb else b)
    np.testing.assert_allclose(kernel(a, b), want, rtol=1e-5, atol=1e-5)  # type: ignore[operator]


def test_without_the_wheel_a_plain_product_stays_numbas(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytensor.compile.maker import function
    from pytensor.tensor.math import Dot

    from trainers import pt_dot

    monkeypatch.setattr(pt_dot, "_blas_available", lambda: False)
    a, b = pt.matrix("a", dtype="float32"), pt.matrix("b", dtype="float32")
    fn = function([a, b], pt.dot(a, b), mode=pt_dot.numba_mode())
    assert [type(n.op) for n in fn.maker.fgraph.toposort()] == [Dot]


def test_the_wheel_is_used_only_on_the_architecture_it_was_measured_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import platform

    from trainers import pt_blas

    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    pt_blas.available.cache_clear()
    try:
        assert not pt_blas.available()
    finally:
        monkeypatch.undo()
        pt_blas.available.cache_clear()
    here = platform.machine() in pt_blas.MEASURED_ON
    assert pt_blas.available() == (here and pt_blas.library_path() is not None)
