"""What a PCA solver returns per component, shared by `trainers.pca` and `trainers.pca_block`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Component:
    index: int
    eigenvalue: float
    vector: np.ndarray  # float64 (D,), unit norm, sign fixed (largest |entry| positive)
    iterations: int
    wall_s: float
    converged: bool
    residual: float  # ‖C_i v − ρ v‖ / ρ at the last iteration


def fix_sign(v: np.ndarray) -> np.ndarray:
    """Eigenvectors are defined up to sign; make the largest |entry| positive, as a convention."""
    v = np.asarray(v, dtype=np.float64)
    return v if v[int(np.argmax(np.abs(v)))] >= 0 else -v
