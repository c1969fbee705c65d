"""The update rules in TensorFlow primitives: `tf.Variable.assign*` on slots kept as Variables.

Called inside the trainer's `tf.function`, so each rule becomes part of the one compiled step;
TensorFlow's automatic control dependencies order the assigns as written. The equations are the
ones in `trainers.optim.reference` (the NumPy truth these are tested against).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trainers.optim.config import OptimConfig


def make_slots(tf: Any, cfg: OptimConfig, params: Sequence[Any]) -> dict[str, list[Any]]:
    """Zeroed slot Variables beside each parameter (created where the parameter lives)."""
    slots: dict[str, list[Any]] = {}
    for name in cfg.slots:
        slots[name] = []
        for p in params:
            with tf.device(p.device):
                slots[name].append(tf.Variable(tf.zeros_like(p), name=f"{name}", trainable=False))
    return slots


def apply_updates(
    tf: Any,
    cfg: OptimConfig,
    params: Sequence[Any],
    grads: Sequence[Any],
    slots: dict[str, list[Any]],
    t: Any,
) -> None:
    """Apply one step of `cfg`'s rule to `params` (tf.Variables); `t` is adam's step Variable."""
    lr, eps = cfg.learning_rate, cfg.epsilon
    if cfg.name in ("gd", "sgd", "minibatch"):
        for w, g in zip(params, grads, strict=True):
            # TensorFlow's own fused kernel: w -= lr·g in one in-place pass over w, where
            # `w.assign_sub(lr * g)` is two ops and a temporary the size of w (issue 18).
            tf.raw_ops.ResourceApplyGradientDescent(
                var=w.handle, alpha=tf.constant(lr, w.dtype), delta=g
            )
    elif cfg.name in ("momentum", "nesterov"):
        mu = cfg.momentum
        for w, g, v in zip(params, grads, slots["velocity"], strict=True):
            v_new = v.assign(mu * v - lr * g)
            w.assign_add(mu * v_new - lr * g if cfg.name == "nesterov" else v_new)
    elif cfg.name == "adagrad":
        for w, g, a in zip(params, grads, slots["accum"], strict=True):
            a_new = a.assign_add(g * g)
            w.assign_sub(lr * g / (tf.sqrt(a_new) + eps))
    elif cfg.name == "rmsprop":
        rho = cfg.decay
        for w, g, s in zip(params, grads, slots["mean_square"], strict=True):
            s_new = s.assign(rho * s + (1.0 - rho) * g * g)
            w.assign_sub(lr * g / (tf.sqrt(s_new) + eps))
    elif cfg.name == "adam":
        b1, b2 = cfg.beta1, cfg.beta2
        step = tf.cast(t.assign_add(1), tf.float32)
        # Bias corrections computed once per step, shared by every parameter.
        c1 = 1.0 - tf.pow(b1, step)
        c2 = 1.0 - tf.pow(b2, step)
        for w, g, m, v in zip(params, grads, slots["m"], slots["v"], strict=True):
            m_new = m.assign(b1 * m + (1.0 - b1) * g)
            v_new = v.assign(b2 * v + (1.0 - b2) * g * g)
            w.assign_sub(lr * (m_new / c1) / (tf.sqrt(v_new / c2) + eps))
    else:
        raise AssertionError(cfg.name)
