"""A matrix product whose operands may be transposed, for PyTensor's Numba backend.

`pytensor.grad` of ``x @ W`` is ``xᵀ @ gz`` (and ``gz @ Wᵀ``); the transposes reach Numba as
arrays of unknown layout, and Numba's ``np.dot`` then runs its own loop instead of BLAS. For the
MNIST step (xᵀ of a 500×784 batch times the 500×300 hidden gradient) that loop took 2.2-2.5 ms
where BLAS takes 0.9 ms, measured on a 2-core host: most of what looked like the step's
elementwise overhead (issue 18). The same transpose taken inside a Numba function (``x.T`` of a
C-ordered array) is typed Fortran-ordered, and ``np.dot`` hands it to BLAS with a transpose flag,
without a copy.

`TransposedDot` is that product as an Op, and `UNTRANSPOSE_DOTS` is the graph rewrite that
puts it where a ``Dot`` takes a transposed matrix; `numba_mode` is the NUMBA mode with the
rewrite in. Where the scipy-openblas32 wheel is installed, a float32 product, plain ones too,
becomes the Op with no transpose flags, and the Op calls the wheel's ``sgemm`` instead of
``np.dot`` (`trainers.pt_blas`: a newer OpenBLAS, faster at the MNIST step's shapes).
Written here because PyTensor's Numba backend has no such rewrite (its BLAS ops,
``Dot22``/``Gemm``, are for the C backend only). The rewrite runs after PyTensor's own
(canonicalize, specialize), so it also sees transposes those introduce.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pytensor.graph.basic import Apply, Variable
from pytensor.graph.op import Op
from pytensor.graph.rewriting.basic import in2out, node_rewriter
from pytensor.tensor.elemwise import DimShuffle
from pytensor.tensor.math import Dot
from pytensor.tensor.type import TensorType

# After PyTensor's canonicalize/specialize/uncanonicalize (positions 1-3), before the final
# merge, elementwise fusion and the in-place rewrites (49 and on).
REWRITE_POSITION = 48.5


class TransposedDot(Op):  # type: ignore[misc]  # pytensor is untyped
    """``op(a) @ op(b)`` for matrices, where op transposes when the flag says so."""

    __props__ = ("transpose_a", "transpose_b")

    def __init__(self, transpose_a: bool, transpose_b: bool) -> None:
        self.transpose_a = bool(transpose_a)
        self.transpose_b = bool(transpose_b)

    def make_node(self, *inputs: Variable) -> Apply:
        a, b = inputs
        if a.type.ndim != 2 or b.type.ndim != 2:
            raise TypeError("TransposedDot takes two matrices")
        rows = a.type.shape[1 if self.transpose_a else 0]
        cols = b.type.shape[0 if self.transpose_b else 1]
        dtype = np.result_type(a.type.dtype, b.type.dtype).name
        return Apply(self, [a, b], [TensorType(dtype, shape=(rows, cols))()])

    def perform(self, node: Apply, inputs: Sequence[Any], outputs: list[list[Any]]) -> None:
        a, b = inputs
        a = a.T if self.transpose_a else a
        b = b.T if self.transpose_b else b
        outputs[0][0] = np.asarray(np.dot(a, b), dtype=node.outputs[0].type.dtype)

    # No grad: the rewrite places this Op in graphs that are already differentiated.


def _is_transpose(var: Variable) -> bool:
    owner = var.owner
    return (
        owner is not None
        and isinstance(owner.op, DimShuffle)
        and tuple(owner.op.new_order) == (1, 0)
        and owner.inputs[0].type.ndim == 2
    )


@node_rewriter([Dot])  # type: ignore[misc]
def _untranspose_dot(fgraph: Any, node: Apply) -> list[Variable] | None:
    a, b = node.inputs
    if a.type.ndim != 2 or b.type.ndim != 2 or a.type.dtype != b.type.dtype:
        return None
    ta, tb = _is_transpose(a), _is_transpose(b)
    if not (ta or tb) and not (a.type.dtype == "float32" and _blas_available()):
        return None  # plain, and no wheel to call (or not float32): np.dot takes it to BLAS
    a_in = a.owner.inputs[0] if ta else a
    b_in = b.owner.inputs[0] if tb else b
    out = TransposedDot(ta, tb).make_node(a_in, b_in).outputs[0]
    if out.type.dtype != node.outputs[0].type.dtype:
        return None
    return [out]


def _blas_available() -> bool:
    from trainers import pt_blas

    return pt_blas.available()


UNTRANSPOSE_DOTS = in2out(_untranspose_dot, name="untranspose_dots")


def numba_mode() -> Any:
    """PyTensor's NUMBA mode with `UNTRANSPOSE_DOTS` registered."""
    from pytensor.compile.mode import get_mode

    _register_numba()
    return get_mode("NUMBA").register((UNTRANSPOSE_DOTS, REWRITE_POSITION))


_registered: list[bool] = []


def _register_numba() -> None:
    """Teach Numba the Op, once per process (importing numba is slow: only when used)."""
    if _registered:
        return
    from pytensor.link.numba.dispatch.basic import (
        numba_njit,
        register_funcify_default_op_cache_key,
    )

    from trainers import pt_blas

    blas = pt_blas.available()

    @register_funcify_default_op_cache_key(TransposedDot)  # type: ignore[misc]
    def _funcify(op: TransposedDot, node: Apply | None = None, **kwargs: Any) -> Any:
        dtypes = {v.type.dtype for v in node.inputs + node.outputs} if node is not None else {}
        if blas and dtypes == {"float32"}:
            # The key's salt tells this code from the np.dot kind (cache keys are per Op).
            return _sgemm_kernel(numba_njit, op.transpose_a, op.transpose_b), 2
        return _np_dot_kernel(numba_njit, op.transpose_a, op.transpose_b), 1

    _registered.append(True)


def _np_dot_kernel(numba_njit: Any, transpose_a: bool, transpose_b: bool) -> Any:
    """``op(a) @ op(b)`` by Numba's ``np.dot`` (SciPy's BLAS); a transpose taken inside Numba
    is typed Fortran-ordered, which ``np.dot`` passes to BLAS as a flag, without a copy."""
    if transpose_a and transpose_b:

        @numba_njit  # type: ignore[misc]
        def dot_tt(a: Any, b: Any) -> Any:
            return np.dot(a.T, b.T)

        return dot_tt
    if transpose_a:

        @numba_njit  # type: ignore[misc]
        def dot_tn(a: Any, b: Any) -> Any:
            return np.dot(a.T, b)

        return dot_tn
    if transpose_b:

        @numba_njit  # type: ignore[misc]
        def dot_nt(a: Any, b: Any) -> Any:
            return np.dot(a, b.T)

        return dot_nt

    @numba_njit  # type: ignore[misc]
    def dot_nn(a: Any, b: Any) -> Any:
        return np.dot(a, b)

    return dot_nn


def _sgemm_kernel(numba_njit: Any, transpose_a: bool, transpose_b: bool) -> Any:
    """``op(a) @ op(b)`` for float32 by `trainers.pt_blas`'s ``cblas_sgemm``, row-major: a
    C-ordered operand is passed as it is, with a transpose flag where the Op says so."""
    from trainers import pt_blas

    sgemm = pt_blas.sgemm()
    row_major = np.int32(pt_blas.ROW_MAJOR)
    op_a = np.int32(pt_blas.TRANS if transpose_a else pt_blas.NO_TRANS)
    op_b = np.int32(pt_blas.TRANS if transpose_b else pt_blas.NO_TRANS)
    ta, tb = transpose_a, transpose_b

    @numba_njit  # type: ignore[misc]
    def sgemm_product(a: Any, b: Any) -> Any:
        if not a.flags.c_contiguous:
            a = a.copy()
        if not b.flags.c_contiguous:
            b = b.copy()
        m, k = (a.shape[1], a.shape[0]) if ta else (a.shape[0], a.shape[1])
        k_b, n = (b.shape[1], b.shape[0]) if tb else (b.shape[0], b.shape[1])
        if k != k_b:
            raise ValueError("TransposedDot: the operands' inner dimensions differ")
        out = np.empty((m, n), dtype=np.float32)
        if m == 0 or n == 0:
            return out
        if k == 0:
            out[:] = 0.0
            return out
        sgemm(
            row_major, op_a, op_b, np.int32(m), np.int32(n), np.int32(k), np.float32(1.0),
            a.ctypes.data, np.int32(a.shape[1]), b.ctypes.data, np.int32(b.shape[1]),
            np.float32(0.0), out.ctypes.data, np.int32(n),
        )  # fmt: skip
        return out

    return sgemm_product
