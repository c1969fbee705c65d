"""Optimizer names, their hyper-parameters, and the defaults that train MNIST well in 10 epochs.

The eight optimizers of the course the project grew from. `gd`, `sgd` and `minibatch` share one
update rule (w -= lr * g) and differ only in how many samples make a gradient: the whole training
set, one sample, or ``--batch-size``. The others keep per-parameter state ("slots") whose names are
listed by `slot_names`, so checkpoints and tests can treat all frameworks alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Final

from trainers.errors import BadArgument

OPTIMIZERS: Final = (
    "gd",
    "sgd",
    "minibatch",
    "momentum",
    "nesterov",
    "adagrad",
    "rmsprop",
    "adam",
)

# Which slots (per-parameter state arrays) each rule keeps. Adam also counts its steps.
_SLOTS: Final[dict[str, tuple[str, ...]]] = {
    "gd": (),
    "sgd": (),
    "minibatch": (),
    "momentum": ("velocity",),
    "nesterov": ("velocity",),
    "adagrad": ("accum",),
    "rmsprop": ("mean_square",),
    "adam": ("m", "v"),
}


@dataclass(frozen=True)
class OptimConfig:
    """One optimizer and every hyper-parameter its update rule reads.

    Fields a rule does not use are carried anyway (and recorded in metrics.json) so a job file
    can set them uniformly across a matrix of optimizers.
    """

    name: str
    learning_rate: float
    momentum: float = 0.9  # mu of momentum / nesterov
    decay: float = 0.9  # rho of rmsprop's running mean of g^2
    epsilon: float = 1e-8  # keeps adagrad/rmsprop/adam's division finite
    beta1: float = 0.9  # adam's first-moment decay
    beta2: float = 0.999  # adam's second-moment decay

    @property
    def slots(self) -> tuple[str, ...]:
        return slot_names(self.name)

    @property
    def counts_steps(self) -> bool:
        """Adam's bias correction needs the step number t."""
        return self.name == "adam"


# Defaults chosen on full MNIST, 784-300-10, batch 500, 10 epochs (the slow test): momentum,
# nesterov, rmsprop and adam reach < 2.5 % test error with these. gd takes one step per epoch so
# it gets a large rate; sgd sees one sample per step so it gets a small one.
_DEFAULTS: Final[dict[str, OptimConfig]] = {
    "gd": OptimConfig("gd", learning_rate=0.5),
    "sgd": OptimConfig("sgd", learning_rate=0.01),
    "minibatch": OptimConfig("minibatch", learning_rate=0.2),
    "momentum": OptimConfig("momentum", learning_rate=0.05, momentum=0.9),
    "nesterov": OptimConfig("nesterov", learning_rate=0.05, momentum=0.9),
    "adagrad": OptimConfig("adagrad", learning_rate=0.05, epsilon=1e-8),
    "rmsprop": OptimConfig("rmsprop", learning_rate=0.001, decay=0.9, epsilon=1e-8),
    "adam": OptimConfig("adam", learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8),
}


def slot_names(name: str) -> tuple[str, ...]:
    """The state arrays optimizer `name` keeps per parameter (empty for the plain rules)."""
    _check_name(name)
    return _SLOTS[name]


def make_optim(
    name: str,
    *,
    learning_rate: float | None = None,
    momentum: float | None = None,
    decay: float | None = None,
    epsilon: float | None = None,
    beta1: float | None = None,
    beta2: float | None = None,
) -> OptimConfig:
    """The default config of `name` with any given hyper-parameter put in its place.

    Rules:
    1. An unknown name raises `BadArgument` naming the valid ones (and a close match).
    2. learning_rate and epsilon must be > 0; momentum, decay, beta1 and beta2 in [0, 1).
       Anything else raises `BadArgument` naming the parameter; nothing is clamped.
    """
    _check_name(name)
    given = {
        "learning_rate": learning_rate,
        "momentum": momentum,
        "decay": decay,
        "epsilon": epsilon,
        "beta1": beta1,
        "beta2": beta2,
    }
    chosen: dict[str, Any] = {k: float(v) for k, v in given.items() if v is not None}
    cfg = replace(_DEFAULTS[name], **chosen)
    _validate(cfg)
    return cfg


def batch_size_for(name: str, requested: int, n_train: int) -> int:
    """The batch a rule really uses: all of the data for `gd`, one sample for `sgd`."""
    _check_name(name)
    if name == "gd":
        return n_train
    if name == "sgd":
        return 1
    return min(requested, n_train)


def _check_name(name: str) -> None:
    if name in _SLOTS:
        return
    import difflib  # only on the error path

    close = difflib.get_close_matches(name, OPTIMIZERS, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise BadArgument(f"unknown optimizer {name!r} (choose from {', '.join(OPTIMIZERS)}){hint}")


def _validate(cfg: OptimConfig) -> None:
    for field in ("learning_rate", "epsilon"):
        value = getattr(cfg, field)
        if not (math.isfinite(value) and value > 0):
            raise BadArgument(f"{field} must be > 0, got {value}")
    for field in ("momentum", "decay", "beta1", "beta2"):
        value = getattr(cfg, field)
        if not (math.isfinite(value) and 0 <= value < 1):
            raise BadArgument(f"{field} must be in [0, 1), got {value}")
