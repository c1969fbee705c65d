"""Each framework's MLP + optimizer against the NumPy reference: same initial weights, same
batches -> same weights and optimizer state after a few steps, for every optimizer.

A small 20-16-10 net on random data keeps each case well under a second once the framework is
imported; two epochs with different orders check that state carries across `train_epoch` calls.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest

from trainers.mlp import epoch_order, init_params, train_reference
from trainers.optim.config import OPTIMIZERS, batch_size_for, make_optim

SIZES = (20, 16, 10)
N = 48


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((N, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], N).astype(np.int64)
    return x, y


def _build(framework: str, name: str, **hyper: float) -> tuple[Any, Any, np.ndarray, np.ndarray]:
    optim = make_optim(name, **hyper)
    x, y = _data()
    params = init_params(SIZES, seed=3)
    batch = batch_size_for(name, 16, N)
    if framework == "tensorflow":
        from trainers.tf_mlp import TfMlp as Model
    else:
        from trainers.pt_mlp import PtMlp as Model  # type: ignore[assignment]
    model = Model(optim, params, x, y, x, y, batch_size=batch)
    return model, optim, x, y


# Rates large enough that a wrong rule moves the weights visibly within a few steps.
HYPER: dict[str, dict[str, float]] = {
    "gd": {"learning_rate": 0.5},
    "sgd": {"learning_rate": 0.05},
    "minibatch": {"learning_rate": 0.2},
    "momentum": {"learning_rate": 0.1, "momentum": 0.8},
    "nesterov": {"learning_rate": 0.1, "momentum": 0.8},
    "adagrad": {"learning_rate": 0.05, "epsilon": 1e-6},
    "rmsprop": {"learning_rate": 0.01, "decay": 0.8, "epsilon": 1e-6},
    "adam": {"learning_rate": 0.01, "beta1": 0.8, "beta2": 0.9, "epsilon": 1e-6},
}


@pytest.mark.parametrize("framework", ["tensorflow", "theano"])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_weights_match_reference_after_k_steps(framework: str, name: str) -> None:
    model, optim, x, y = _build(framework, name, **HYPER[name])
    batch = batch_size_for(name, 16, N)
    start = init_params(SIZES, seed=3)
    orders = [epoch_order(0, 1, N), epoch_order(0, 2, N)]
    losses = [model.train_epoch(o) for o in orders]
    params, slots, t = model.get_state()
    want, state = train_reference(optim, start, x, y, orders, batch)

    assert all(np.isfinite(losses))
    for got, ref, init in zip(params, want, start, strict=True):
        # The step must have moved the weights, and to where the reference moved them.
        assert np.abs(ref - init).max() > 1e-3
        np.testing.assert_allclose(got, ref, rtol=2e-4, atol=2e-5)
    assert sorted(slots) == sorted(state.slots)
    for slot, values in slots.items():
        for got, ref in zip(values, state.slots[slot], strict=True):
            np.testing.assert_allclose(got, ref, rtol=2e-4, atol=2e-6)
    assert t == state.t


@pytest.mark.parametrize("framework", ["tensorflow", "theano"])
def test_compile_leaves_weights_alone_and_state_round_trips(framework: str) -> None:
    model, optim, x, y = _build(framework, "adam")
    before, _, _ = model.get_state()
    assert model.compile() >= 0.0
    after, slots, t = model.get_state()
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)
    assert t == 0 and all(not np.any(v) for vs in slots.values() for v in vs)

    model.train_epoch(epoch_order(0, 1, N))
    trained = model.get_state()
    model.set_state(before, slots, 0)
    model.set_state(*trained)
    model.train_epoch(epoch_order(0, 2, N))
    want, _ = train_reference(optim, before, x, y, [epoch_order(0, 1, N), epoch_order(0, 2, N)], 16)
    for got, ref in zip(model.get_state()[0], want, strict=True):
        np.testing.assert_allclose(got, ref, rtol=2e-4, atol=2e-5)
    assert 0.0 <= model.error() <= 1.0


@pytest.mark.gpu
@pytest.mark.parametrize("framework", ["tensorflow", "theano"])
def test_gpu_weights_match_reference(framework: str) -> None:
    """The same check on the GPU path (TensorFlow on /GPU:0; PyTensor's JAX mode).

    Looser tolerance: GPUs may run float32 matmuls in TF32 (JAX does by default on an H100).
    """
    from trainers.device import _find_gpu

    if _find_gpu(framework)[0] is None:
        pytest.skip(f"no GPU usable by {framework}")
    x, y = _data()
    start = init_params(SIZES, seed=3)
    orders = [epoch_order(0, 1, N), epoch_order(0, 2, N)]
    for name in OPTIMIZERS:
        optim = make_optim(name, **HYPER[name])
        batch = batch_size_for(name, 16, N)
        if framework == "tensorflow":
            from trainers.tf_mlp import TfMlp as Model
        else:
            from trainers.pt_mlp import PtMlp as Model  # type: ignore[assignment]
        model = Model(optim, start, x, y, x, y, batch_size=batch, device="gpu")
        for order in orders:
            model.train_epoch(order)
        want, _ = train_reference(optim, start, x, y, orders, batch)
        for got, ref in zip(model.get_state()[0], want, strict=True):
            np.testing.assert_allclose(got, ref, rtol=2e-2, atol=2e-3, err_msg=name)


@pytest.mark.parametrize("parts", [2, 3])
@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("framework", ["tensorflow", "theano"])
def test_batches_cut_in_parts_train_like_the_reference(
    framework: str, name: str, parts: int
) -> None:
    """The per-core parts (``TfMlp``'s shards, ``PtMlp``'s parts) add up to the whole batch's
    gradient: uneven parts, a short last batch, and sgd's batch of one (empty parts) included."""
    optim = make_optim(name, **HYPER[name])
    x, y = _data()
    start = init_params(SIZES, seed=3)
    batch = batch_size_for(name, 20, N)  # 48 = 20 + 20 + 8
    model: Any
    if framework == "tensorflow":
        from trainers.tf_mlp import TfMlp

        model = TfMlp(optim, start, x, y, x, y, batch_size=batch, shards=parts)
    else:
        from trainers.pt_mlp import PtMlp

        model = PtMlp(optim, start, x, y, x, y, batch_size=batch, parts=parts)
    orders = [epoch_order(0, 1, N), epoch_order(0, 2, N)]
    losses = [model.train_epoch(o) for o in orders]
    want, state = train_reference(optim, start, x, y, orders, batch)
    params, _, t = model.get_state()
    assert all(np.isfinite(losses)) and t == state.t
    for got, ref in zip(params, want, strict=True):
        np.testing.assert_allclose(got, ref, rtol=2e-4, atol=2e-5)


def test_pytensor_parts_give_the_loss_of_the_whole_batch() -> None:
    from trainers.pt_mlp import PtMlp

    optim = make_optim("minibatch", **HYPER["minibatch"])
    x, y = _data()
    start = init_params(SIZES, seed=3)
    order = epoch_order(0, 1, N)
    whole = PtMlp(optim, start, x, y, x, y, batch_size=20, parts=1).train_epoch(order)
    cut = PtMlp(optim, start, x, y, x, y, batch_size=20, parts=3).train_epoch(order)
    assert cut == pytest.approx(whole, rel=1e-5)


def test_pytensor_cuts_a_batch_per_core_on_small_cpu_machines_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from trainers.pt_mlp import cpu_parts

    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert cpu_parts(500, "cpu") == 2
    assert cpu_parts(99, "cpu") == 1
    assert cpu_parts(500, "gpu") == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # a task sharing the machine
    assert cpu_parts(500, "cpu") == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # an image baked without it
    assert cpu_parts(500, "cpu") == 1


def test_tf_cuts_a_batch_per_core_on_small_cpu_machines_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tensorflow as tf

    from trainers.tf_mlp import batch_shards

    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "2")
    assert batch_shards(tf, 500, "cpu") == 2
    assert batch_shards(tf, 99, "cpu") == 1  # parts under 50 rows: not measured to gain
    assert batch_shards(tf, 500, "gpu") == 1
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")  # a task sharing the machine
    assert batch_shards(tf, 500, "cpu") == 1
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "16")  # never measured: TF's own threading
    assert batch_shards(tf, 5000, "cpu") == 1
