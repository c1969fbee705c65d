"""The NumPy reference itself: update equations worked by hand, the MLP gradient against finite
differences, and the optimizer configuration's checks. Everything else is tested against these."""

from __future__ import annotations

import numpy as np
import pytest

from trainers.errors import BadArgument
from trainers.mlp import epoch_order, init_params, loss_and_grads, n_batches
from trainers.optim.config import OPTIMIZERS, batch_size_for, make_optim, slot_names
from trainers.optim.reference import apply_update, init_state


def _steps(name: str, grads: list[float], **hyper: float) -> list[float]:
    """Weights of a one-element parameter after each step with the given gradients."""
    cfg = make_optim(name, **hyper)
    w = [np.array([1.0])]
    state = init_state(cfg, w)
    out = []
    for g in grads:
        apply_update(cfg, w, [np.array([g])], state)
        out.append(float(w[0][0]))
    return out


def test_plain_rules_step_against_the_gradient() -> None:
    for name in ("gd", "sgd", "minibatch"):
        assert _steps(name, [2.0, -1.0], learning_rate=0.1) == pytest.approx([0.8, 0.9])


def test_momentum_and_nesterov_by_hand() -> None:
    # v1 = -0.1*2 = -0.2, w1 = 0.8; v2 = 0.5*-0.2 - 0.1*2 = -0.3, w2 = 0.5
    assert _steps("momentum", [2.0, 2.0], learning_rate=0.1, momentum=0.5) == pytest.approx(
        [0.8, 0.5]
    )
    # nesterov: w += mu*v_new - lr*g -> w1 = 1 + 0.5*-0.2 - 0.2 = 0.7; w2 = 0.7 - 0.15 - 0.2
    assert _steps("nesterov", [2.0, 2.0], learning_rate=0.1, momentum=0.5) == pytest.approx(
        [0.7, 0.35]
    )


def test_adaptive_rules_by_hand() -> None:
    eps = 1e-12
    # adagrad: a1 = 4 -> step 0.1*2/2; a2 = 4 + 1 = 5 -> step 0.1*1/sqrt(5)
    got = _steps("adagrad", [2.0, 1.0], learning_rate=0.1, epsilon=eps)
    assert got == pytest.approx([0.9, 0.9 - 0.1 / np.sqrt(5)])
    # rmsprop: s1 = 0.1*4 = 0.4 -> step 0.1*2/sqrt(0.4)
    got = _steps("rmsprop", [2.0], learning_rate=0.1, decay=0.9, epsilon=eps)
    assert got == pytest.approx([1 - 0.2 / np.sqrt(0.4)])
    # adam: bias correction makes the first step lr * sign(g), whatever |g| is
    assert _steps("adam", [5.0], learning_rate=0.01, epsilon=eps) == pytest.approx([0.99])
    assert _steps("adam", [-1e-3], learning_rate=0.01, epsilon=eps) == pytest.approx([1.01])
    # second step with the same gradient: m_hat = g, v_hat = g^2 -> again lr * sign(g)
    assert _steps("adam", [3.0, 3.0], learning_rate=0.01, epsilon=eps) == pytest.approx(
        [0.99, 0.98]
    )


def test_mlp_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(0)
    params = [p.astype(np.float64) for p in init_params((6, 5, 4, 3), seed=1)]
    params[1] += 0.1  # non-zero biases so their gradient is exercised through the ReLU
    x = rng.standard_normal((7, 6))
    y = rng.integers(0, 3, 7)
    _, grads = loss_and_grads(params, x, y)
    h = 1e-6
    for p, g in zip(params, grads, strict=True):
        assert g.shape == p.shape
        for i in range(min(p.size, 12)):
            idx = np.unravel_index(i, p.shape)
            orig = p[idx]
            p[idx] = orig + h
            up, _ = loss_and_grads(params, x, y)
            p[idx] = orig - h
            down, _ = loss_and_grads(params, x, y)
            p[idx] = orig
            assert g[idx] == pytest.approx((up - down) / (2 * h), rel=1e-4, abs=1e-8)


def test_initial_weights_and_orders_are_pure_functions_of_the_seed() -> None:
    a, b, c = (
        init_params((784, 30, 10), 0),
        init_params((784, 30, 10), 0),
        init_params((784, 30, 10), 1),
    )
    assert [p.shape for p in a] == [(784, 30), (30,), (30, 10), (10,)]
    assert all(p.dtype == np.float32 for p in a)
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])
    assert a[0].std() == pytest.approx(np.sqrt(2 / 784), rel=0.05)
    order = epoch_order(0, 3, 1000)
    assert np.array_equal(order, epoch_order(0, 3, 1000))
    assert not np.array_equal(order, epoch_order(0, 4, 1000))
    assert sorted(order.tolist()) == list(range(1000))
    assert n_batches(1000, 300) == 4 and n_batches(1000, 1000) == 1


def test_config_defaults_overrides_and_checks() -> None:
    assert len(OPTIMIZERS) == 8
    for name in OPTIMIZERS:
        cfg = make_optim(name)
        assert cfg.name == name and cfg.learning_rate > 0
        assert cfg.slots == slot_names(name)
    assert make_optim("rmsprop", decay=0.5, epsilon=1e-3).decay == 0.5
    assert make_optim("adam", learning_rate=0.01).learning_rate == 0.01
    assert batch_size_for("gd", 500, 60000) == 60000
    assert batch_size_for("sgd", 500, 60000) == 1
    assert batch_size_for("adam", 500, 300) == 300
    with pytest.raises(BadArgument, match="did you mean 'rmsprop'"):
        make_optim("rmsporp")
    for bad in (
        {"learning_rate": 0.0},
        {"learning_rate": float("nan")},
        {"epsilon": -1.0},
        {"momentum": 1.0},
        {"decay": -0.1},
        {"beta2": 1.5},
    ):
        with pytest.raises(BadArgument, match=next(iter(bad))):
            make_optim("adam", **bad)
