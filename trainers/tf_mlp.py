"""The MNIST MLP in TensorFlow's own primitives: tf.Variable, raw ops, tf.function.

No Keras: the point is to show (and time) the update rules written out. The backward pass is
written out too (`TfMlp._loss_and_grads`), with fewer ops per step than a GradientTape records
(issue 18). One `tf.function` runs a whole epoch — the batch loop is a graph `while` loop over
slices of a device-resident permutation — so Python is entered once per epoch, not once per
step. That keeps batch-of-one `sgd` usable and gives a 784-300-10 net at batch 500 about the
throughput ARCHITECTURE.md quotes.

TensorFlow is imported here only; `trainers.mnist` imports this module only when asked for it,
after `trainers.device` has hidden or chosen the GPU.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from trainers.mlp import batch_parts
from trainers.optim import tf_rules
from trainers.optim.config import OptimConfig


def batch_shards(tf: Any, batch: int, device: str) -> int:
    """How many parts a CPU batch is cut into, one per core, and TensorFlow set up for it.

    On a small CPU machine, one thread per op with the batch in per-core parts beats every op
    split over all threads: each part's GEMMs, ReLUs and softmax run without waiting for the
    other core, which meets its part only to add the gradients. Measured on 2 cores
    (benchmarks/RESULTS.md): +25-30% samples/s at batch 500, +50-60% at 200 and 100. Needs
    ``intra_op`` 1 and ``inter_op`` = parts, settable only before TensorFlow's runtime starts:
    if it has (another model in this process), the parts stay (the same sums) with whatever
    threading is set. The cores are ``TF_NUM_INTRAOP_THREADS`` when set (the engine's thread
    share for tasks sharing a machine), else the CPUs this process may use.
    """
    cores = int(os.environ.get("TF_NUM_INTRAOP_THREADS") or 0) or len(os.sched_getaffinity(0))
    shards = batch_parts(batch, device, cores)
    if shards < 2:
        return 1
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(shards)
    except RuntimeError:  # the runtime is up: its threading stays as it is
        pass
    return shards


class TfMlp:
    """A ReLU MLP whose data, weights and optimizer state live on one TensorFlow device.

    Implements `trainers.mlp.MlpModel`.
    """

    def __init__(
        self,
        optim: OptimConfig,
        params: Sequence[np.ndarray],
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_test: np.ndarray,
        y_test: np.ndarray,
        *,
        batch_size: int,
        device: str = "cpu",
        shards: int | None = None,
    ) -> None:
        import tensorflow as tf

        self._tf = tf
        self._optim = optim
        self._batch = int(batch_size)
        self._device = "/GPU:0" if device == "gpu" else "/CPU:0"
        self._shards = batch_shards(tf, self._batch, device) if shards is None else int(shards)
        with tf.device(self._device):
            # Copied to the device once; batches are gathered there, never fed from Python.
            self._x = tf.constant(np.asarray(x_train, dtype=np.float32))
            self._y = tf.constant(np.asarray(y_train, dtype=np.int32))
            self._x_test = tf.constant(np.asarray(x_test, dtype=np.float32))
            self._y_test = tf.constant(np.asarray(y_test, dtype=np.int32))
            self._params = [
                tf.Variable(np.asarray(p, dtype=np.float32), name=f"p{i}")
                for i, p in enumerate(params)
            ]
            self._slots = tf_rules.make_slots(tf, optim, self._params)
            self._t = tf.Variable(0, dtype=tf.int64, name="t", trainable=False)
        order_spec = tf.TensorSpec([None], tf.int32)
        self._epoch_fn = tf.function(self._epoch, input_signature=[order_spec])
        self._error_fn = tf.function(self._error)

    # ------------------------------------------------------------------ graph bodies

    def _logits(self, x: Any) -> Any:
        tf = self._tf
        h = x
        n_layers = len(self._params) // 2
        for i in range(n_layers):
            # bias_add, not +: Grappler fuses MatMul+BiasAdd(+Relu) into one oneDNN kernel
            # (about 5% more samples/s at batch 500 on the 2-core host, issue 18).
            h = tf.nn.bias_add(tf.matmul(h, self._params[2 * i]), self._params[2 * i + 1])
            if i < n_layers - 1:
                h = tf.nn.relu(h)
        return h

    def _batch_loss_and_grads(self, idx: Any) -> tuple[Any, list[Any]]:
        """The summed loss of the batch ``idx`` and the gradient of its mean; with shards, the
        batch is cut in that many parts whose graphs are independent until their gradients
        are added, so TensorFlow runs them at once, one core each (``batch_shards``)."""
        tf = self._tf
        size = tf.shape(idx)[0]
        scale = 1.0 / tf.cast(size, tf.float32)  # of the whole batch: the parts' sums add up
        if self._shards == 1:
            per_sample, grads = self._loss_and_grads(
                tf.gather(self._x, idx), tf.gather(self._y, idx), scale
            )
            return tf.reduce_sum(per_sample), grads
        rows = (size + self._shards - 1) // self._shards
        parts = []
        for j in range(self._shards):
            part = idx[j * rows : tf.minimum((j + 1) * rows, size)]
            parts.append(
                self._loss_and_grads(tf.gather(self._x, part), tf.gather(self._y, part), scale)
            )
        loss = tf.add_n([tf.reduce_sum(per_sample) for per_sample, _ in parts])
        grads = [tf.add_n(list(gs)) for gs in zip(*(g for _, g in parts), strict=True)]
        return loss, grads

    def _loss_and_grads(self, xb: Any, yb: Any, scale: Any) -> tuple[Any, list[Any]]:
        """Per-sample losses of a batch and the gradient of their sum times ``scale`` (1/B: the
        gradient of the mean), backpropagated by hand.

        Written out rather than taped (issue 18): the loss op already returns softmax − onehot,
        the gradient w.r.t. the logits, and each layer then needs just its two matmuls, a bias
        sum and a ReluGrad on the kept activation. The tape's version adds about a dozen small
        ops per step (mean, broadcasts, reshapes), each a dispatch on a 2-core host where a
        whole step is ~2 ms. The equations are `trainers.mlp.loss_and_grads`'.
        """
        tf = self._tf
        n_layers = len(self._params) // 2
        acts = [xb]
        h = xb
        for i in range(n_layers):
            h = tf.nn.bias_add(tf.matmul(h, self._params[2 * i]), self._params[2 * i + 1])
            if i < n_layers - 1:
                h = tf.nn.relu(h)
                acts.append(h)
        per_sample, backprop = tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits(features=h, labels=yb)
        delta = backprop * scale
        grads: list[Any] = [None] * len(self._params)
        for i in reversed(range(n_layers)):
            grads[2 * i] = tf.matmul(acts[i], delta, transpose_a=True)
            grads[2 * i + 1] = tf.reduce_sum(delta, axis=0)
            if i > 0:
                back = tf.matmul(delta, self._params[2 * i], transpose_b=True)
                # The ReLU's output is positive exactly where its input was: one mask for both.
                delta = tf.raw_ops.ReluGrad(gradients=back, features=acts[i])
        return per_sample, grads

    def _epoch(self, order: Any) -> Any:
        tf = self._tf
        n = tf.shape(order)[0]
        batch = tf.constant(self._batch, tf.int32)
        steps = (n + batch - 1) // batch
        total = tf.constant(0.0, tf.float32)
        for i in tf.range(steps):
            idx = order[i * batch : tf.minimum((i + 1) * batch, n)]
            loss, grads = self._batch_loss_and_grads(idx)
            tf_rules.apply_updates(tf, self._optim, self._params, grads, self._slots, self._t)
            total += loss
        return total / tf.cast(tf.maximum(n, 1), tf.float32)

    def _error(self) -> Any:
        tf = self._tf
        pred = tf.argmax(self._logits(self._x_test), axis=1, output_type=tf.int32)
        return tf.reduce_mean(tf.cast(tf.not_equal(pred, self._y_test), tf.float32))

    # ------------------------------------------------------------------ MlpModel

    def compile(self) -> float:
        """Trace and run both functions once on nothing (an empty order), timing it.

        Running an empty epoch makes TensorFlow finish its graph optimisation now, so the first
        epoch's wall time is training only; no weight moves (the loop runs zero times).
        """
        t0 = time.perf_counter()
        with self._tf.device(self._device):
            self._epoch_fn(self._tf.zeros([0], self._tf.int32)).numpy()
            self._error_fn().numpy()
        return time.perf_counter() - t0

    def train_epoch(self, order: np.ndarray) -> float:
        with self._tf.device(self._device):
            return float(self._epoch_fn(self._tf.constant(order, self._tf.int32)).numpy())

    def error(self) -> float:
        with self._tf.device(self._device):
            return float(self._error_fn().numpy())

    def get_state(self) -> tuple[list[np.ndarray], dict[str, list[np.ndarray]], int]:
        params = [p.numpy() for p in self._params]
        slots = {k: [v.numpy() for v in vs] for k, vs in self._slots.items()}
        return params, slots, int(self._t.numpy())

    def set_state(
        self, params: Sequence[np.ndarray], slots: dict[str, list[np.ndarray]], t: int
    ) -> None:
        for var, value in zip(self._params, params, strict=True):
            var.assign(np.asarray(value, dtype=np.float32))
        for name, variables in self._slots.items():
            for var, value in zip(variables, slots[name], strict=True):
                var.assign(np.asarray(value, dtype=np.float32))
        self._t.assign(int(t))
