"""The NumPy truth: every update rule, written once in plain NumPy, in float64.

Both frameworks' rules (`trainers.optim.tf_rules`, `trainers.optim.pt_rules`) are tested
against `apply_update`: same initial weights and same batches must give the same weights after k
steps, within float32 round-off. The equations (g is the gradient of the batch-mean loss):

    gd / sgd / minibatch   w -= lr * g
    momentum               v = mu * v - lr * g;           w += v
    nesterov               v = mu * v - lr * g;           w += mu * v - lr * g
    adagrad                a += g**2;                     w -= lr * g / (sqrt(a) + eps)
    rmsprop                s = rho * s + (1 - rho) g**2;  w -= lr * g / (sqrt(s) + eps)
    adam                   t += 1; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g**2
                           w -= lr * (m / (1 - b1**t)) / (sqrt(v / (1 - b2**t)) + eps)

Nesterov is the reformulation that needs no look-ahead forward pass (Sutskever et al. 2013, as
written in the course): the step applied is the momentum step taken again from the new velocity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trainers.optim.config import OptimConfig


@dataclass
class RefState:
    """Slots per parameter (slot name -> one array per parameter) and adam's step count."""

    slots: dict[str, list[np.ndarray]] = field(default_factory=dict)
    t: int = 0


def init_state(cfg: OptimConfig, params: list[np.ndarray]) -> RefState:
    """Zeroed slots shaped like `params` (every rule starts from zero state)."""
    return RefState(
        slots={s: [np.zeros_like(p, dtype=np.float64) for p in params] for s in cfg.slots}
    )


def apply_update(
    cfg: OptimConfig, params: list[np.ndarray], grads: list[np.ndarray], state: RefState
) -> None:
    """One step of `cfg`'s rule, in place on `params` and `state` (both float64 arrays)."""
    lr, eps = cfg.learning_rate, cfg.epsilon
    if cfg.name in ("gd", "sgd", "minibatch"):
        for w, g in zip(params, grads, strict=True):
            w -= lr * g
    elif cfg.name in ("momentum", "nesterov"):
        mu = cfg.momentum
        for w, g, v in zip(params, grads, state.slots["velocity"], strict=True):
            v *= mu
            v -= lr * g
            w += (mu * v - lr * g) if cfg.name == "nesterov" else v
    elif cfg.name == "adagrad":
        for w, g, a in zip(params, grads, state.slots["accum"], strict=True):
            a += g * g
            w -= lr * g / (np.sqrt(a) + eps)
    elif cfg.name == "rmsprop":
        rho = cfg.decay
        for w, g, s in zip(params, grads, state.slots["mean_square"], strict=True):
            s *= rho
            s += (1 - rho) * g * g
            w -= lr * g / (np.sqrt(s) + eps)
    elif cfg.name == "adam":
        state.t += 1
        b1, b2, t = cfg.beta1, cfg.beta2, state.t
        for w, g, m, v in zip(params, grads, state.slots["m"], state.slots["v"], strict=True):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            m_hat = m / (1 - b1**t)
            v_hat = v / (1 - b2**t)
            w -= lr * m_hat / (np.sqrt(v_hat) + eps)
    else:  # config.make_optim already refused unknown names
        raise AssertionError(cfg.name)
