"""Every optimizer on the full MNIST set (784-300-10, batch 500), in both frameworks.

momentum, nesterov, rmsprop and adam must beat 4.7 % test error within 10 epochs with their
default hyper-parameters (`trainers.optim.config`). Every optimizer's test error is printed.
Two run shorter, and the table says so: ``sgd`` (batch of one) is 60,000 steps per epoch, so it
gets one epoch on the first 10,000 samples; ``gd`` takes one step per epoch, so its 10 epochs
are 10 steps and only need to show it learns.

Runs in-process (one framework import per session) to stay within a few minutes on 2 cores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.mnist_data import MNIST_DIR, needs_mnist
from trainers.mnist import parse_config, run
from trainers.optim.config import OPTIMIZERS

# name -> (epochs, subset, the error it must beat)
PLAN: dict[str, tuple[int, int | None, float]] = {
    "gd": (10, None, 0.60),
    "sgd": (1, 10_000, 0.15),
    "minibatch": (10, None, 0.06),
    "momentum": (10, None, 0.047),
    "nesterov": (10, None, 0.047),
    "adagrad": (10, None, 0.06),
    "rmsprop": (10, None, 0.047),
    "adam": (10, None, 0.047),
}


@pytest.mark.slow
@needs_mnist
@pytest.mark.parametrize("framework", ["tensorflow", "theano"])
def test_every_optimizer_on_full_mnist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], framework: str
) -> None:
    assert set(PLAN) == set(OPTIMIZERS)
    results: dict[str, dict[str, Any]] = {}
    for name, (epochs, subset, _) in PLAN.items():
        argv = [
            "--framework", framework, "--optimizer", name, "--epochs", str(epochs),
            "--batch-size", "500", "--hidden", "300", "--out", str(tmp_path / name),
            "--data-dir", str(MNIST_DIR),
        ]  # fmt: skip
        if subset:
            argv += ["--subset", str(subset)]
        results[name] = run(parse_config(argv))

    lines = [f"\n{framework}: optimizer  epochs  train samples  test error  samples/s"]
    for name, m in results.items():
        epochs, subset, _ = PLAN[name]
        lines.append(
            f"  {name:<10} {epochs:>6}  {subset or 60_000:>13,}  {m['test_error']:>10.4f}"
            f"  {m['samples_per_s']:>9,.0f}"
        )
    with capsys.disabled():
        print("\n".join(lines))

    failed = {
        name: results[name]["test_error"]
        for name, (_, _, bound) in PLAN.items()
        if not results[name]["test_error"] < bound
    }
    assert not failed, f"test error over the bound: {failed}"
