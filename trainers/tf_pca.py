"""The covariance-block product Xcᵀ(Xc·V) in TensorFlow, for ``trainers.pca``.

V is a (D, m) block (the block ascent multiplies all its vectors in one pass over X) or a (D,)
vector (the one-vector power method); the result has V's shape.

Two ``tf.function``s with fixed input signatures, so each is traced once:

* ``resident``: every centred chunk already lives in the framework (on the GPU when there is
  one); one call per iteration sums their products, in float64, inside the graph.
* ``stream``: one float32 chunk from disk at a time, centred inside the graph (Xc = X − μ is
  never stored); the float64 sum across chunks is kept on the host.

The chunk products run in float32 (the speed the frameworks are compared at); summing chunk
results in float64 keeps N·ε accumulation error out of the eigenvalues.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from trainers.chunks import RowChunks


class TfCovOperator:
    """``CovOperator`` (see ``trainers.pca``) backed by TensorFlow."""

    def __init__(self, d: int, *, device: str = "cpu") -> None:
        import tensorflow as tf

        self._tf = tf
        self.d = d
        self.device = device
        self._place = "/GPU:0" if device == "gpu" else "/CPU:0"
        self._chunks: RowChunks | None = None
        self._resident: list[Any] | None = None
        self._mean32: Any = None
        x_spec = tf.TensorSpec([None, d], tf.float32)
        m_spec = tf.TensorSpec([d], tf.float32)
        v_spec = tf.TensorSpec([d, None], tf.float32)

        def product(xc: Any, v: Any) -> Any:
            # transpose_a is a flag to the GEMM kernel, not a copy of the chunk.
            y = tf.matmul(xc, v)
            return tf.cast(tf.matmul(xc, y, transpose_a=True), tf.float64)

        @tf.function(input_signature=[x_spec, m_spec, v_spec])
        def stream(x: Any, mean: Any, v: Any) -> Any:
            return product(x - mean, v)

        def make_resident(chunks: list[Any]) -> Any:
            # The chunks are captured by reference (not copied into the graph); the signature
            # leaves m open, so one trace serves every block width.
            @tf.function(input_signature=[v_spec])
            def resident(v: Any) -> Any:
                total = tf.zeros([d, tf.shape(v)[1]], tf.float64)
                for xc in chunks:  # unrolled at trace time: one graph for all chunks
                    total += product(xc, v)
                return total

            return resident

        self._stream_fn = stream
        self._make_resident = make_resident
        self._resident_fn: Any = None

    def load(self, chunks: RowChunks, mean: np.ndarray, *, resident: bool) -> float:
        """Trace, and for ``resident`` upload the centred chunks; returns the seconds taken.

        Warm-up calls run here so that graph optimisation is timed as compile, not as the
        first component's iterations.
        """
        tf = self._tf
        start = time.perf_counter()
        self._chunks = chunks
        mean32 = mean.astype(np.float32)
        zero = tf.zeros([self.d, 1], tf.float32)
        with tf.device(self._place):
            self._mean32 = tf.constant(mean32)
            if resident:
                self._resident = [tf.constant(block - mean32) for block in chunks.iter(copy=True)]
                self._resident_fn = self._make_resident(self._resident)
                self._resident_fn(zero).numpy()
            else:
                self._resident = None
                first = next(iter(chunks))
                self._stream_fn(tf.constant(first), self._mean32, zero).numpy()
        return time.perf_counter() - start

    def apply(self, v: np.ndarray) -> np.ndarray:
        """Xcᵀ(Xc·v) in float64 for a (D,) vector or a (D, m) block, float32 products."""
        tf = self._tf
        v32 = tf.constant(np.asarray(v, dtype=np.float32).reshape(self.d, -1))
        with tf.device(self._place):
            if self._resident is not None:
                return self._resident_fn(v32).numpy().reshape(v.shape)
            assert self._chunks is not None, "load() first"
            total = np.zeros(v32.shape, dtype=np.float64)
            for block in self._chunks:
                total += self._stream_fn(tf.constant(block), self._mean32, v32).numpy()
            return total.reshape(v.shape)
