"""The MLP every framework trains: its shape, initial weights, batch order, and a NumPy version.

Kept framework-free so TensorFlow, PyTensor and the NumPy reference start from bit-identical
float32 weights (drawn from one NumPy RNG seeded by ``--seed``) and visit the same batches: that
is what lets the tests compare weights after k steps, and lets a resumed run redo exactly the
epochs it lost.

Parameters are a flat list ``[W1, b1, W2, b2, ...]`` with ``W_i`` of shape (fan_in, fan_out).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from trainers.optim.config import OptimConfig
from trainers.optim.reference import RefState, apply_update, init_state

N_INPUTS = 784
N_CLASSES = 10


@dataclass(frozen=True)
class MnistConfig:
    """Everything one MNIST MLP run needs; built from the CLI by `trainers.mnist`."""

    framework: str  # "tensorflow" | "theano"
    device: str  # requested: "cpu" | "gpu"
    optim: OptimConfig
    epochs: int
    batch_size: int  # as requested; gd and sgd override it (see optim.config.batch_size_for)
    hidden: tuple[int, ...]
    out: Path
    seed: int = 0
    subset: int | None = None
    data_dir: Path | None = None
    cache_dir: Path | None = None
    checkpoint_dir: Path | None = None
    allow_cpu_fallback: bool = False

    @property
    def sizes(self) -> tuple[int, ...]:
        return (N_INPUTS, *self.hidden, N_CLASSES)


@dataclass(frozen=True)
class MnistMetrics:
    """The final numbers written to metrics.json."""

    test_error: float
    final_loss: float
    train_time_s: float
    compile_time_s: float
    samples_per_s: float
    epochs_run: int
    resumed_from_epoch: int


class MlpModel(Protocol):
    """What the training loop needs from a framework's MLP (`tf_mlp.TfMlp`, `pt_mlp.PtMlp`)."""

    def compile(self) -> float:
        """Build/trace/JIT everything without changing any weight; returns the seconds it took."""
        ...

    def train_epoch(self, order: np.ndarray) -> float:
        """Step over the training rows in `order`, one batch at a time; mean loss per sample."""
        ...

    def error(self) -> float:
        """Fraction of the test set misclassified by the current weights."""
        ...

    def get_state(self) -> tuple[list[np.ndarray], dict[str, list[np.ndarray]], int]:
        """(params, slots, adam step) as NumPy arrays, for checkpoints and tests."""
        ...

    def set_state(
        self, params: Sequence[np.ndarray], slots: dict[str, list[np.ndarray]], t: int
    ) -> None:
        """Load weights and optimizer state (a resumed run)."""
        ...


def init_params(sizes: Sequence[int], seed: int) -> list[np.ndarray]:
    """He-normal weights (std sqrt(2 / fan_in), suited to ReLU) and zero biases, float32."""
    rng = np.random.default_rng(seed)
    params: list[np.ndarray] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        w = rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)
        params += [w.astype(np.float32), np.zeros(fan_out, dtype=np.float32)]
    return params


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The shuffled row order of `epoch` (1-based): a pure function of (seed, epoch).

    Deriving it afresh per epoch, rather than from one RNG stream, means a resumed run needs no
    saved RNG state to see the same batches the killed one would have.
    """
    return np.random.default_rng([seed, epoch]).permutation(n).astype(np.int32)


def n_batches(n: int, batch: int) -> int:
    """Batches per epoch; the last one may be short so every sample is seen once."""
    return -(-n // batch)


MIN_PART_ROWS = 50  # the smallest batch part measured to gain (issue 18: batch 100 on 2 cores)
MAX_PARTS = 8  # more cores than this were never measured: the frameworks keep their own threading


def batch_parts(batch: int, device: str, cores: int) -> int:
    """How many parts a CPU batch is cut into, one per core (`tf_mlp`, `pt_parts`): 1 on a GPU,
    past ``MAX_PARTS`` cores, or where a part would have under ``MIN_PART_ROWS`` rows."""
    if device == "gpu" or cores > MAX_PARTS:
        return 1
    return max(1, min(cores, batch // MIN_PART_ROWS))


# ----------------------------------------------------------------- NumPy reference network


def forward(params: Sequence[np.ndarray], x: np.ndarray) -> np.ndarray:
    """Logits of the ReLU MLP, in float64."""
    h = x.astype(np.float64)
    n_layers = len(params) // 2
    for i in range(n_layers):
        h = h @ params[2 * i] + params[2 * i + 1]
        if i < n_layers - 1:
            h = np.maximum(h, 0.0)
    return h


def loss_and_grads(
    params: Sequence[np.ndarray], x: np.ndarray, y: np.ndarray
) -> tuple[float, list[np.ndarray]]:
    """Mean softmax cross-entropy of a batch and its gradient w.r.t. every parameter (float64)."""
    acts = [x.astype(np.float64)]
    n_layers = len(params) // 2
    h = acts[0]
    for i in range(n_layers):
        h = h @ params[2 * i] + params[2 * i + 1]
        if i < n_layers - 1:
            h = np.maximum(h, 0.0)
            acts.append(h)
    z = h - h.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    rows = np.arange(len(y))
    loss = float(-log_p[rows, y].mean())
    delta = np.exp(log_p)
    delta[rows, y] -= 1.0
    delta /= len(y)
    grads: list[np.ndarray] = [np.empty(0)] * len(params)
    for i in reversed(range(n_layers)):
        grads[2 * i] = acts[i].T @ delta
        grads[2 * i + 1] = delta.sum(axis=0)
        if i > 0:
            delta = (delta @ params[2 * i].T) * (acts[i] > 0)
    return loss, grads


def train_reference(
    optim: OptimConfig,
    params: Sequence[np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    orders: Sequence[np.ndarray],
    batch: int,
) -> tuple[list[np.ndarray], RefState]:
    """What a framework's `train_epoch` must do, in NumPy: one epoch per entry of `orders`.

    Returns the float64 weights and optimizer state after the last step.
    """
    weights = [np.asarray(p, dtype=np.float64).copy() for p in params]
    state = init_state(optim, weights)
    for order in orders:
        for i in range(n_batches(len(order), batch)):
            idx = order[i * batch : (i + 1) * batch]
            _, grads = loss_and_grads(weights, x[idx], y[idx])
            apply_update(optim, weights, grads, state)
    return weights, state
