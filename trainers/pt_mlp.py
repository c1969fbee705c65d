"""The MNIST MLP in PyTensor (the `theano` framework): shared variables, `pytensor.grad`, and
`pytensor.function(updates=...)`, as the course wrote it in Theano.

The training and test sets are shared variables, so they are copied to the backend once and a
step receives only the int32 row indices of its batch. On the CPU the graph is compiled by
PyTensor's Numba backend (mode ``NUMBA``); for ``--device gpu`` it is compiled by JAX (mode
``JAX``) and the shared values are placed on the CUDA device with `jax.device_put`, so they stay
there between steps. JAX is imported only on that path.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np

from trainers.mlp import N_CLASSES, batch_parts, n_batches
from trainers.optim import pt_rules
from trainers.optim.config import OptimConfig
from trainers.pt_dot import numba_mode
from trainers.pt_parts import PartedStep, blas_threads, nogil_mode


def cpu_parts(batch: int, device: str) -> int:
    """Batch parts for this process (`trainers.mlp.batch_parts`): its cores are
    ``OMP_NUM_THREADS`` when set (the engine's thread share), else the CPUs it may use."""
    cores = int(os.environ.get("OMP_NUM_THREADS") or 0) or len(os.sched_getaffinity(0))
    try:
        import threadpoolctl  # noqa: F401  # parts need BLAS held to one thread each
    except ImportError:  # an image baked before it was in the spec: the whole-batch step
        return 1
    return batch_parts(batch, device, cores)


class PtMlp:
    """A ReLU MLP compiled by PyTensor; implements `trainers.mlp.MlpModel`."""

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
        parts: int | None = None,
    ) -> None:
        import pytensor.tensor as pt
        from pytensor.compile.maker import function
        from pytensor.compile.sharedvalue import shared
        from pytensor.gradient import grad

        self._batch = int(batch_size)
        self._n_train = len(x_train)
        self._mode = "JAX" if device == "gpu" else "NUMBA"
        if self._mode == "JAX":
            # PyTensor tells, once per graph, that JAX cannot keep its broadcast-shape asserts;
            # the shapes here are fixed by construction, so the notice is only noise on stderr.
            warnings.filterwarnings("ignore", message="Skipping Assert", category=UserWarning)
        f32 = np.float32
        self._x = shared(np.asarray(x_train, dtype=f32), name="x_train")
        # One-hot targets make the loss a plain product and sum: cheaper to differentiate than
        # advanced indexing of the log-probabilities, and the same number.
        self._y1h = shared(np.eye(N_CLASSES, dtype=f32)[np.asarray(y_train)], name="y_train")
        self._x_test = shared(np.asarray(x_test, dtype=f32), name="x_test")
        self._y_test = shared(np.asarray(y_test, dtype=np.int64), name="y_test")
        self._params = [
            shared(np.asarray(p, dtype=f32), name=f"p{i}") for i, p in enumerate(params)
        ]
        self._slots = pt_rules.make_slots(shared, optim, self._params)
        self._t = shared(f32(0.0), name="t")

        mode = numba_mode() if self._mode == "NUMBA" else self._mode
        self._parts = parts if parts is not None else cpu_parts(self._batch, device)
        idx = pt.ivector("idx")
        if self._parts == 1:
            scale = 1.0 / pt.cast(idx.shape[0], "float32")
            loss_sum, grads = self._loss_and_grads(pt, grad, idx, scale)
            updates = pt_rules.make_updates(pt, optim, self._params, grads, self._slots, self._t)
            step = function([idx], loss_sum * scale, updates=updates, mode=mode)
            # Indices are made here as int32 arrays; skipping PyTensor's per-call input checks
            # matters for batch-of-one sgd, where that check costs as much as the step.
            step.trust_input = True
            self._step: Callable[[np.ndarray], Any] = step
        else:
            self._step = self._parted_step(pt, function, grad, optim, mode)
        pred = pt.argmax(self._logits(pt, self._x_test), axis=1)
        wrong = pt.mean(pt.neq(pred, self._y_test), dtype="float64")
        self._error_fn = function([], wrong, mode=mode)
        if self._mode == "JAX":
            self._place_on_gpu()

    def _loss_and_grads(self, pt: Any, grad: Any, idx: Any, scale: Any) -> tuple[Any, list[Any]]:
        """The summed loss of rows ``idx``, and its gradient times ``scale`` (1/B: the mean's)."""
        xb, yb = self._x[idx], self._y1h[idx]
        logits = self._logits(pt, xb)
        log_p = pt.special.log_softmax(logits, axis=1)
        loss_sum = -pt.sum(yb * log_p)
        # The gradient of the mean cross-entropy w.r.t. the logits is given, not derived:
        # (softmax − onehot) / B. Differentiating log_softmax instead leaves a softmax, a row
        # sum and two products per step in the graph (issue 18); `grad` does the layers below.
        d_logits = (pt.exp(log_p) - yb) * scale
        grads = cast(list[Any], grad(None, self._params, known_grads={logits: d_logits}))
        return loss_sum, grads

    def _parted_step(
        self, pt: Any, function: Any, grad: Any, optim: OptimConfig, mode: Any
    ) -> PartedStep:
        """`trainers.pt_parts.PartedStep`: a gradient function per part, one update function."""
        idx = pt.ivector("idx")
        scale = pt.scalar("scale", dtype="float32")
        loss_sum, grads = self._loss_and_grads(pt, grad, idx, scale)
        grad_fns = []
        for _ in range(self._parts):  # one Function per thread: each has its own storage
            fn = function([idx, scale], [loss_sum, *grads], mode=nogil_mode(mode))
            fn.trust_input = True
            grad_fns.append(fn)
        part_grads = [[p.type() for p in self._params] for _ in range(self._parts)]
        summed = [sum(gs[1:], gs[0]) for gs in zip(*part_grads, strict=True)]
        updates = pt_rules.make_updates(pt, optim, self._params, summed, self._slots, self._t)
        flat = [g for gs in part_grads for g in gs]
        update_fn = function(flat, [], updates=updates, mode=mode)
        update_fn.trust_input = True
        shapes = [p.get_value(borrow=True).shape for p in self._params]
        return PartedStep(grad_fns, update_fn, shapes)

    def _logits(self, pt: Any, x: Any) -> Any:
        h = x
        n_layers = len(self._params) // 2
        for i in range(n_layers):
            h = pt.dot(h, self._params[2 * i]) + self._params[2 * i + 1]
            if i < n_layers - 1:
                h = pt.maximum(h, np.float32(0.0))
        return h

    def _shared(self) -> list[Any]:
        slots = [v for vs in self._slots.values() for v in vs]
        return [self._x, self._y1h, self._x_test, self._y_test, *self._params, *slots, self._t]

    def _place_on_gpu(self) -> None:
        import jax  # type: ignore[import-not-found]  # only on the GPU path; trainers.device checked it imports and sees a GPU

        gpu = jax.devices("gpu")[0]
        for var in self._shared():
            # Set the storage directly: the shared variable's filter would turn a device array
            # back into a host NumPy array, and every call would copy the data set again.
            var.container.storage[0] = jax.device_put(var.get_value(borrow=True), gpu)

    # ------------------------------------------------------------------ MlpModel

    def compile(self) -> float:
        """Compile both functions by calling them once, then put the weights back as they were.

        PyTensor rewrites the graph when `pytensor.function` runs (in __init__; the caller
        times that as build time), but Numba/JAX compile on the first call; real steps on the
        first batch trigger that, and their effect is undone.
        """
        before = self.get_state()
        first = np.arange(min(self._batch, self._n_train), dtype=np.int32)
        t0 = time.perf_counter()
        # Twice: under JAX the second call can compile again, once the shared values are the
        # device arrays the first call returned rather than the ones placed by __init__.
        self._step(first)
        self._step(first)
        self._error_fn()
        seconds = time.perf_counter() - t0
        self.set_state(*before)
        return seconds

    def train_epoch(self, order: np.ndarray) -> float:
        order = np.ascontiguousarray(order, dtype=np.int32)
        n, b = len(order), self._batch
        total = 0.0
        step = self._step
        with blas_threads(1 if self._parts > 1 else None):
            for i in range(n_batches(n, b)):
                idx = order[i * b : (i + 1) * b]
                total += float(step(idx)) * len(idx)
        return total / max(n, 1)

    def error(self) -> float:
        return float(self._error_fn())

    def get_state(self) -> tuple[list[np.ndarray], dict[str, list[np.ndarray]], int]:
        params = [np.array(p.get_value()) for p in self._params]
        slots = {k: [np.array(v.get_value()) for v in vs] for k, vs in self._slots.items()}
        return params, slots, int(self._t.get_value())

    def set_state(
        self, params: Sequence[np.ndarray], slots: dict[str, list[np.ndarray]], t: int
    ) -> None:
        for var, value in zip(self._params, params, strict=True):
            var.set_value(np.asarray(value, dtype=np.float32))
        for name, variables in self._slots.items():
            for var, value in zip(variables, slots[name], strict=True):
                var.set_value(np.asarray(value, dtype=np.float32))
        self._t.set_value(np.float32(t))
        if self._mode == "JAX":
            self._place_on_gpu()
