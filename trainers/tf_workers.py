"""The MNIST MLP trained by several worker processes at once, on TensorFlow's own runtime.

Why: a job that says ``nodes: N`` runs one trainer process per machine; the orchestrator gives
each one ``TF_CONFIG`` (every worker's address and this one's index), and the workers must then
act as one optimizer. `tf.distribute.MultiWorkerMirroredStrategy` does the communication: its
collective all-reduce runs over gRPC between the workers, so no home-made protocol is needed.

How the work is shared (the rules the tests check):
1. Every worker holds the whole (small) data set and derives the same epoch order from the seed
   (`trainers.mlp.epoch_order`); the *global* batch ``order[i*B:(i+1)*B]`` of ``b <= B`` rows is
   cut into W contiguous pieces, and worker k takes piece k: the data is sharded by worker.
2. Each worker's gradient is of ``sum(loss over its piece) / b``; the strategy's all-reduce
   (SUM) makes every worker hold the gradient of the global batch's mean loss, the quantity a
   single process computes. Every worker then applies the same update to its copy of the
   weights, which start identical (one seed), so the copies stay equal: the "mirrored" of the
   strategy's name, kept by construction rather than by a broadcast per step.
3. A resumed run takes the chief's (worker 0's) weights, optimizer state and epoch count: the
   chief alone reads and writes checkpoints; `adopt_chief_state` all-reduces the chief's
   values with zeros from the others, which copies them to every worker.

The strategy configures TensorFlow's collective ops, which is only allowed before TensorFlow
runs its first operation: build this model before anything else touches a tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from trainers.cluster import Cluster
from trainers.errors import BadArgument
from trainers.optim import tf_rules
from trainers.optim.config import OptimConfig
from trainers.tf_mlp import TfMlp


class TfMlpWorkers(TfMlp):
    """`TfMlp` whose batches are split over the workers of a MultiWorkerMirroredStrategy.

    Implements `trainers.mlp.MlpModel`; ``batch_size`` is the global batch.
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
        cluster: Cluster,
        device: str = "cpu",
    ) -> None:
        import tensorflow as tf

        # First, before any tensor exists (see the module's last paragraph). It reads TF_CONFIG,
        # starts this worker's gRPC server and waits for the others.
        self._strategy = tf.distribute.MultiWorkerMirroredStrategy()
        if self._strategy.num_replicas_in_sync != cluster.size:
            raise BadArgument(
                f"{self._strategy.num_replicas_in_sync} replicas for {cluster.size} workers: "
                "one device per worker is supported"
            )
        self._cluster = cluster
        super().__init__(
            optim,
            params,
            x_train,
            y_train,
            x_test,
            y_test,
            batch_size=batch_size,
            device=device,
            shards=1,  # the strategy's runtime is up: its threading is set
        )
        self._adopt_fn = tf.function(self._adopt)

    def _all_reduce(self, values: Any) -> Any:
        """SUM over the workers, from inside a replica function."""
        tf = self._tf
        ctx = tf.distribute.get_replica_context()
        # identity: gives graph inputs this replica's device; the collective needs one.
        placed = tf.nest.map_structure(tf.identity, values)
        return ctx.all_reduce(tf.distribute.ReduceOp.SUM, placed)

    def _step(self, idx: Any, b: Any) -> Any:
        tf = self._tf
        xb = tf.gather(self._x, idx)
        yb = tf.gather(self._y, idx)
        with tf.GradientTape() as tape:
            per_sample = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=yb, logits=self._logits(xb)
            )
            piece = tf.reduce_sum(per_sample)
            loss = piece / tf.cast(b, tf.float32)
        grads = self._all_reduce(tape.gradient(loss, self._params))
        tf_rules.apply_updates(tf, self._optim, self._params, grads, self._slots, self._t)
        return piece

    def _epoch(self, order: Any) -> Any:
        tf = self._tf
        n = tf.shape(order)[0]
        batch = tf.constant(self._batch, tf.int32)
        k, w = self._cluster.index, self._cluster.size
        steps = (n + batch - 1) // batch
        total = tf.constant(0.0, tf.float32)
        for i in tf.range(steps):
            start = i * batch
            b = tf.minimum(start + batch, n) - start
            idx = order[start + (b * k) // w : start + (b * (k + 1)) // w]
            total += self._strategy.run(self._step, args=(idx, b))
        total = self._strategy.run(self._all_reduce, args=(total,))
        return total / tf.cast(tf.maximum(n, 1), tf.float32)

    def _adopt(self, values: Any, counters: Any) -> Any:
        # Two reductions: one all-reduce packs its tensors together, so they share a dtype.
        return (
            self._strategy.run(self._all_reduce, args=(values,)),
            self._strategy.run(self._all_reduce, args=(counters,)),
        )

    def adopt_chief_state(self, epoch: int) -> int:
        """Every worker takes the chief's weights, optimizer state and finished epochs (rule 3).

        Called on every worker at the same point, after the chief has loaded its checkpoint;
        returns the chief's epoch count.
        """
        tf = self._tf
        chief = self._cluster.is_chief
        params, slots, t = self.get_state()
        names = sorted(slots)
        flat = [*params, *(v for name in names for v in slots[name])]
        values = [tf.constant(a if chief else np.zeros_like(a)) for a in flat]
        counters = tf.constant([t, epoch] if chief else [0, 0], tf.int64)
        with tf.device(self._device):
            got = self._adopt_fn(values, counters)
        arrays = [v.numpy() for v in got[0]]
        t_all, epoch_all = (int(c) for c in got[1].numpy())
        n = len(params)
        new_slots = {name: arrays[n + j * n : n + (j + 1) * n] for j, name in enumerate(names)}
        self.set_state(arrays[:n], new_slots, t_all)
        return epoch_all
