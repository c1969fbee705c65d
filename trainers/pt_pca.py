"""The covariance-vector product Xcᵀ(Xc·v) in PyTensor (the ``theano`` framework).

Theano's idiom: data that fits is held in shared variables (centred once), and one compiled
``pytensor.function([v], Σ_i Xc_iᵀ(Xc_i·v))`` runs an iteration; data that does not fit goes
through a second function that takes one raw chunk and the mean as inputs. On the CPU the
functions compile with PyTensor's default backend (Numba); ``--device gpu`` compiles them in
JAX mode, where shared variables live on the GPU.

The chunk products run in float32; chunk results are summed in float64 (see ``tf_pca``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from trainers.chunks import RowChunks


class PtCovOperator:
    """``CovOperator`` (see ``trainers.pca``) backed by PyTensor."""

    def __init__(self, d: int, *, device: str = "cpu") -> None:
        import pytensor
        import pytensor.tensor as pt

        self._pytensor: Any = pytensor
        self._pt: Any = pt
        self.d = d
        self.device = device
        # None: PyTensor's default linker (Numba in 3.x); JAX where the GPU is.
        self._mode: str | None = "JAX" if device == "gpu" else None
        self._chunks: RowChunks | None = None
        self._mean32: np.ndarray | None = None
        self._resident_fn: Any = None
        self._stream_fn: Any = None

    def _product(self, xc: Any, v: Any) -> Any:
        pt = self._pt
        # (Xc·v)ᵀXc rather than Xcᵀ(Xc·v): the same numbers, but Numba hands a row vector times
        # a C-ordered matrix to BLAS gemv, while the transposed view took a loop 20x slower.
        return pt.cast(pt.dot(pt.dot(xc, v), xc), "float64")

    def load(self, chunks: RowChunks, mean: np.ndarray, *, resident: bool) -> float:
        """Compile (and for ``resident`` fill the shared variables); returns the seconds taken."""
        pytensor, pt = self._pytensor, self._pt
        start = time.perf_counter()
        self._chunks = chunks
        self._mean32 = mean.astype(np.float32)
        v = pt.vector("v", dtype="float32")
        zero = np.zeros(self.d, dtype=np.float32)
        if resident and self._mode == "JAX":
            self._resident_fn = self._jax_resident(chunks, v)
            self._resident_fn(zero)
            self._stream_fn = None
        elif resident:
            shared = [
                pytensor.shared(block - self._mean32, name=f"xc{i}", borrow=True)
                for i, block in enumerate(chunks.iter(copy=True))
            ]
            total = self._sum_products(shared, v)
            self._resident_fn = pytensor.function([v], total, mode=self._mode)
            self._resident_fn(zero)  # warm-up: first-call JIT work counts as compile
            self._stream_fn = None
        else:
            x = pt.matrix("x", dtype="float32")
            mu = pt.vector("mu", dtype="float32")
            self._stream_fn = pytensor.function(
                [x, mu, v], self._product(x - mu, v), mode=self._mode
            )
            self._stream_fn(next(iter(chunks)), self._mean32, zero)
            self._resident_fn = None
        return time.perf_counter() - start

    def _sum_products(self, chunks: list[Any], v: Any) -> Any:
        total = self._product(chunks[0], v)
        for xc in chunks[1:]:
            total = total + self._product(xc, v)
        return total

    def _jax_resident(self, chunks: RowChunks, v: Any) -> Any:
        """JAX mode: the centred chunks are jax arrays on the GPU, passed as trusted inputs.

        PyTensor's JAX linker hands a shared variable's NumPy value to the jitted function on
        every call, i.e. copies all of X to the GPU per iteration (measured on an H100: 10 ms
        per MNIST iteration, most of it that copy). Device arrays given as inputs with
        ``trust_input=True`` skip NumPy conversion and stay where they are.
        """
        import jax  # type: ignore[import-not-found]  # GPU hosts only

        pt = self._pt
        arrays = [jax.device_put(block - self._mean32) for block in chunks.iter(copy=True)]
        inputs = [pt.matrix(f"xc{i}", dtype="float32") for i in range(len(arrays))]
        fn = self._pytensor.function(
            [*inputs, v], self._sum_products(inputs, v), mode="JAX", trust_input=True
        )
        return lambda v32: fn(*arrays, jax.device_put(v32))

    def apply(self, v: np.ndarray) -> np.ndarray:
        v32 = v.astype(np.float32)
        if self._resident_fn is not None:
            return np.asarray(self._resident_fn(v32), dtype=np.float64)
        assert self._chunks is not None and self._stream_fn is not None, "load() first"
        total = np.zeros(self.d, dtype=np.float64)
        for block in self._chunks:
            total += np.asarray(self._stream_fn(block, self._mean32, v32))
        return total
