"""The covariance-block product Xcᵀ(Xc·V) in PyTensor (the ``theano`` framework).

Theano's idiom: data that fits is held in shared variables (centred once), and one compiled
``pytensor.function([V], Σ_i Xc_iᵀ(Xc_i·V))`` runs an iteration; data that does not fit goes
through functions that take one raw chunk and the mean as inputs. On the CPU the functions
compile with PyTensor's Numba backend; ``--device gpu`` compiles them in JAX mode, where the
data lives on the GPU. V is a (D, m) block or a (D,) vector; the result has V's shape.

Layout, measured on the CPU: Numba's ``np.dot`` given a transposed view (``Xcᵀ``) as PyTensor
passes it runs a loop 5-10x slower than the GEMM. The resident path is compiled with
`trainers.pt_dot.numba_mode`, whose rewrite hands ``Xcᵀ·Y`` to BLAS with a transpose flag, so
Xc is held once (it was held twice, as Xc and as a C-ordered copy of Xcᵀ, before that rewrite).
The streamed path is one function per chunk, (Xc·V)ᵀ·Xc, compiled with the same mode: the chunk
is centred once and both products take it as it is, transposes going to BLAS as flags. It was
two functions (Y = Xc·V, then Yᵀ·Xc), each centring the chunk again: 24-26 ms a chunk against
17-20 ms now, for the D=200,000 case's 41-row chunks (issue 18).

The chunk products run in float32; chunk results are summed in float64 (see ``tf_pca``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from trainers.chunks import RowChunks
from trainers.pt_dot import numba_mode


class PtCovOperator:
    """``CovOperator`` (see ``trainers.pca``) backed by PyTensor."""

    def __init__(self, d: int, *, device: str = "cpu") -> None:
        import pytensor
        import pytensor.tensor as pt

        self._pytensor: Any = pytensor
        self._pt: Any = pt
        self.d = d
        self.device = device
        self._mode: str = "JAX" if device == "gpu" else "NUMBA"
        self._chunks: RowChunks | None = None
        self._mean32: np.ndarray | None = None
        self._resident_fn: Any = None
        self._chunk_fn: Any = None

    def load(self, chunks: RowChunks, mean: np.ndarray, *, resident: bool) -> float:
        """Compile (and for ``resident`` fill the shared variables); returns the seconds taken."""
        pytensor, pt = self._pytensor, self._pt
        start = time.perf_counter()
        self._chunks = chunks
        self._mean32 = mean.astype(np.float32)
        v = pt.matrix("V", dtype="float32")
        zero = np.zeros((self.d, 1), dtype=np.float32)
        self._resident_fn = self._chunk_fn = None
        if resident and self._mode == "JAX":
            self._resident_fn = self._jax_resident(chunks, v)
        elif resident:
            total = None
            for i, block in enumerate(chunks.iter(copy=True)):
                xc = block - self._mean32
                x_s = pytensor.shared(xc, name=f"xc{i}", borrow=True)
                part = pt.cast(pt.dot(x_s.T, pt.dot(x_s, v)), "float64")
                total = part if total is None else total + part
            self._resident_fn = pytensor.function([v], total, mode=numba_mode())
        else:
            x = pt.matrix("x", dtype="float32")
            mu = pt.vector("mu", dtype="float32")
            xc = x - mu
            mode = numba_mode() if self._mode == "NUMBA" else self._mode
            product = pt.cast(pt.dot(pt.dot(xc, v).T, xc), "float64")
            self._chunk_fn = pytensor.function([x, mu, v], product, mode=mode)
        self.apply(zero)  # warm-up: first-call JIT work counts as compile
        return time.perf_counter() - start

    def _jax_resident(self, chunks: RowChunks, v: Any) -> Any:
        """JAX mode: the centred chunks are jax arrays on the GPU, passed as trusted inputs.

        PyTensor's JAX linker hands a shared variable's NumPy value to the jitted function on
        every call, i.e. copies all of X to the GPU per iteration (measured on an H100: 10 ms
        per MNIST iteration, most of it that copy). Device arrays given as inputs with
        ``trust_input=True`` skip NumPy conversion and stay where they are.
        """
        import jax  # type: ignore[import-not-found]  # GPU hosts only

        pt = self._pt
        assert self._mean32 is not None
        arrays = [jax.device_put(block - self._mean32) for block in chunks.iter(copy=True)]
        inputs = [pt.matrix(f"xc{i}", dtype="float32") for i in range(len(arrays))]
        total = None
        for xc in inputs:  # JAX takes the transposed operand as a flag, no copy
            part = pt.cast(pt.dot(xc.T, pt.dot(xc, v)), "float64")
            total = part if total is None else total + part
        fn = self._pytensor.function([*inputs, v], total, mode="JAX", trust_input=True)
        return lambda v32: fn(*arrays, jax.device_put(v32))

    def apply(self, v: np.ndarray) -> np.ndarray:
        """Xcᵀ(Xc·v) in float64 for a (D,) vector or a (D, m) block, float32 products."""
        v32 = np.ascontiguousarray(np.asarray(v, dtype=np.float32).reshape(self.d, -1))
        if self._resident_fn is not None:
            return np.asarray(self._resident_fn(v32), dtype=np.float64).reshape(v.shape)
        assert self._chunks is not None and self._chunk_fn is not None, "load() first"
        total = np.zeros((v32.shape[1], self.d), dtype=np.float64)
        for block in self._chunks:
            total += self._chunk_fn(block, self._mean32, v32)
        return total.T.reshape(v.shape)
