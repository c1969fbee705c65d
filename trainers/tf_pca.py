"""The covariance-vector product Xcᵀ(Xc·v) in TensorFlow, for ``trainers.pca``.

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
        v_spec = tf.TensorSpec([d], tf.float32)

        def product(xc: Any, v: Any) -> Any:
            y = tf.linalg.matvec(xc, v)
            return tf.cast(tf.linalg.matvec(xc, y, transpose_a=True), tf.float64)

        @tf.function(input_signature=[x_spec, v_spec, v_spec])
        def stream(x: Any, mean: Any, v: Any) -> Any:
            return product(x - mean, v)

        @tf.function
        def resident(chunks: list[Any], v: Any) -> Any:
            total = tf.zeros([d], tf.float64)
            for xc in chunks:  # unrolled at trace time: one graph for all chunks
                total += product(xc, v)
            return total

        self._stream_fn = stream
        self._resident_fn = resident

    def load(self, chunks: RowChunks, mean: np.ndarray, *, resident: bool) -> float:
        """Trace, and for ``resident`` upload the centred chunks; returns the seconds taken.

        Warm-up calls run here so that graph optimisation is timed as compile, not as the
        first component's iterations.
        """
        tf = self._tf
        start = time.perf_counter()
        self._chunks = chunks
        mean32 = mean.astype(np.float32)
        zero = tf.zeros([self.d], tf.float32)
        with tf.device(self._place):
            self._mean32 = tf.constant(mean32)
            if resident:
                self._resident = [tf.constant(block - mean32) for block in chunks.iter(copy=True)]
                self._resident_fn(self._resident, zero).numpy()
            else:
                self._resident = None
                first = next(iter(chunks))
                self._stream_fn(tf.constant(first), self._mean32, zero).numpy()
        return time.perf_counter() - start

    def apply(self, v: np.ndarray) -> np.ndarray:
        tf = self._tf
        v32 = tf.constant(v.astype(np.float32))
        with tf.device(self._place):
            if self._resident is not None:
                return self._resident_fn(self._resident, v32).numpy()
            assert self._chunks is not None, "load() first"
            total = np.zeros(self.d, dtype=np.float64)
            for block in self._chunks:
                total += self._stream_fn(tf.constant(block), self._mean32, v32).numpy()
            return total
