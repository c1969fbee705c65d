"""The update rules as PyTensor graphs: ``(shared variable, new value)`` pairs for
``pytensor.function(updates=...)``, the Theano way.

Every new value is computed from the *old* values (a function's updates are applied together
after the outputs), so where the NumPy reference reuses an updated slot (momentum's ``v``), the
expression is written out again. Equations: `trainers.optim.reference`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from trainers.optim.config import OptimConfig

Update = tuple[Any, Any]


def make_slots(shared: Any, cfg: OptimConfig, params: Sequence[Any]) -> dict[str, list[Any]]:
    """Zeroed float32 shared variables beside each parameter."""
    return {
        name: [
            shared(np.zeros_like(p.get_value()), name=f"{name}_{i}") for i, p in enumerate(params)
        ]
        for name in cfg.slots
    }


def make_updates(
    pt: Any,
    cfg: OptimConfig,
    params: Sequence[Any],
    grads: Sequence[Any],
    slots: dict[str, list[Any]],
    t: Any,
) -> list[Update]:
    """The update pairs of one step of `cfg`'s rule; `t` is adam's float32 step counter."""
    lr, eps = np.float32(cfg.learning_rate), np.float32(cfg.epsilon)
    one = np.float32(1.0)
    ups: list[Update] = []
    if cfg.name in ("gd", "sgd", "minibatch"):
        ups += [(w, w - lr * g) for w, g in zip(params, grads, strict=True)]
    elif cfg.name in ("momentum", "nesterov"):
        mu = np.float32(cfg.momentum)
        for w, g, v in zip(params, grads, slots["velocity"], strict=True):
            v_new = mu * v - lr * g
            step = mu * v_new - lr * g if cfg.name == "nesterov" else v_new
            ups += [(v, v_new), (w, w + step)]
    elif cfg.name == "adagrad":
        for w, g, a in zip(params, grads, slots["accum"], strict=True):
            a_new = a + g * g
            ups += [(a, a_new), (w, w - lr * g / (pt.sqrt(a_new) + eps))]
    elif cfg.name == "rmsprop":
        rho = np.float32(cfg.decay)
        for w, g, s in zip(params, grads, slots["mean_square"], strict=True):
            s_new = rho * s + (one - rho) * g * g
            ups += [(s, s_new), (w, w - lr * g / (pt.sqrt(s_new) + eps))]
    elif cfg.name == "adam":
        b1, b2 = np.float32(cfg.beta1), np.float32(cfg.beta2)
        t_new = t + one
        c1 = one - b1**t_new
        c2 = one - b2**t_new
        ups.append((t, t_new))
        for w, g, m, v in zip(params, grads, slots["m"], slots["v"], strict=True):
            m_new = b1 * m + (one - b1) * g
            v_new = b2 * v + (one - b2) * g * g
            ups += [
                (m, m_new),
                (v, v_new),
                (w, w - lr * (m_new / c1) / (pt.sqrt(v_new / c2) + eps)),
            ]
    else:
        raise AssertionError(cfg.name)
    return ups
