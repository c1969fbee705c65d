"""MNIST's published table (LeCun, Cortes and Burges, the MNIST database page), for placing ours.

Only the fully connected rows and LeNet-5 are kept: they are the architectures the MLP trainer
can match (a linear classifier is an MLP with no hidden layer), and LeNet-5 marks the bar a
convolutional net sets.
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCE = "LeCun et al. (yann.lecun.com/exdb/mnist)"


@dataclass(frozen=True)
class Published:
    method: str
    hidden: tuple[int, ...] | None  # None: not an MLP (LeNet-5)
    error: float  # fraction
    note: str = ""


PUBLISHED: tuple[Published, ...] = (
    Published("linear classifier (1-layer NN)", (), 0.120),
    Published("2-layer NN, 300 hidden units", (300,), 0.047, "mean square error"),
    Published("2-layer NN, 1000 hidden units", (1000,), 0.045),
    Published("3-layer NN, 300+100 hidden units", (300, 100), 0.0305),
    Published("2-layer NN, 800 hidden units", (800,), 0.016, "cross-entropy loss"),
    Published("LeNet-5 (convolutional)", None, 0.0095),
)


def architecture(hidden: tuple[int, ...]) -> str:
    """LeCun's naming: layers of weights, then hidden units (``(300, 100)`` -> 3-layer NN)."""
    if not hidden:
        return "linear classifier (1-layer NN)"
    units = "+".join(str(h) for h in hidden)
    return f"{len(hidden) + 1}-layer NN, {units} HU"


def same_architecture(hidden: tuple[int, ...]) -> Published | None:
    """The published row with the same hidden layers (the first, if several), else None."""
    return next((p for p in PUBLISHED if p.hidden == hidden), None)
