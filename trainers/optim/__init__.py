"""Optimizers written out by hand: names and hyper-parameters (`config`), NumPy truth (`reference`).

The TensorFlow and PyTensor versions of the same equations live beside their MLPs
(`trainers.tf_mlp`, `trainers.pt_mlp`) and are tested against `reference`.
"""

from __future__ import annotations

from trainers.optim.config import OPTIMIZERS, OptimConfig, make_optim, slot_names

__all__ = ["OPTIMIZERS", "OptimConfig", "make_optim", "slot_names"]
