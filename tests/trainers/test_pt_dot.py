"""`trainers.pt_dot`: products of transposed matrices reach BLAS under Numba, same numbers."""

from __future__ import annotations

import numpy as np
import pytest

pt = pytest.importorskip("pytensor.tensor")


@pytest.mark.parametrize(("ta", "tb"), [(True, False), (False, True), (True, True)])
@pytest.mark.parametrize("mode", ["numba", "python"])
def test_transposed_products_equal_numpy(ta: bool, tb: bool, mode: str) -> None:
    from pytensor.compile.maker import function

    from trainers.pt_dot import TransposedDot, numba_mode

    rng = np.random.default_rng(0)
    a_val = rng.standard_normal((7, 5) if ta else (5, 7)).astype(np.float32)
    b_val = rng.standard_normal((4, 7) if tb else (7, 4)).astype(np.float32)
    a, b = pt.matrix("a", dtype="float32"), pt.matrix("b", dtype="float32")
    if mode == "numba":  # the rewrite puts the Op in: it must find both transposes
        out = pt.dot(a.T if ta else a, b.T if tb else b)
        fn = function([a, b], out, mode=numba_mode())
        ops = [type(n.op) for n in fn.maker.fgraph.toposort()]
        assert TransposedDot in ops
    else:
        fn = function([a, b], TransposedDot(ta, tb)(a, b), mode="FAST_COMPILE")
    want = (a_val.T if ta else a_val) @ (b_val.T if tb else b_val)
    np.testing.assert_allclose(fn(a_val, b_val), want, rtol=1e-5, atol=1e-5)


def test_the_mlp_step_has_no_product_left_on_a_transpose() -> None:
    from pytensor.tensor.math import Dot

    from trainers.mlp import init_params
    from trainers.optim.config import make_optim
    from trainers.pt_dot import _is_transpose
    from trainers.pt_mlp import PtMlp

    x = np.random.default_rng(1).standard_normal((40, 20)).astype(np.float32)
    y = np.arange(40) % 10
    model = PtMlp(
        make_optim("minibatch"), init_params((20, 16, 10), 0), x, y, x, y, batch_size=20, parts=1
    )
    dots = [n for n in model._step.maker.fgraph.toposort() if isinstance(n.op, Dot)]  # type: ignore[attr-defined]
    assert dots  # the forward products stay plain Dots
    assert not [n for n in dots if any(_is_transpose(v) for v in n.inputs)]
