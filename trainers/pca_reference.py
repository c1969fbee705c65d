"""The NumPy truth a PCA run is checked against: ``numpy.linalg.eigh`` of the covariance,
and how far each found component is from it (relative eigenvalue error, angle in degrees).

The covariance is formed here, which is why ``trainers.pca`` caps D for the check
(``REFERENCE_MAX_D``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from trainers.chunks import RowChunks, scatter_matrix
from trainers.pca_types import Component, fix_sign


@dataclass(frozen=True)
class Reference:
    eigenvalues: np.ndarray  # top k, descending
    vectors: np.ndarray  # (k, D), sign fixed
    scatter_s: float
    eigh_s: float


def numpy_reference(chunks: RowChunks, mean: np.ndarray, k: int, n_norm: float) -> Reference:
    """``numpy.linalg.eigh`` of the covariance (formed here, which is why D is capped)."""
    t0 = time.perf_counter()
    cov = scatter_matrix(chunks, mean) / n_norm
    t1 = time.perf_counter()
    values, vectors = np.linalg.eigh(cov)
    t2 = time.perf_counter()
    order = np.argsort(values)[::-1][:k]
    vecs = np.stack([fix_sign(vectors[:, i]) for i in order])
    return Reference(values[order], vecs, scatter_s=t1 - t0, eigh_s=t2 - t1)


def compare(found: list[Component], ref: Reference) -> dict[str, list[float]]:
    """Relative eigenvalue error and the angle (degrees) of each vector to NumPy's."""
    rel, angles = [], []
    for comp, lam, u in zip(found, ref.eigenvalues, ref.vectors, strict=False):
        rel.append(abs(comp.eigenvalue - float(lam)) / max(abs(float(lam)), 1e-300))
        cos = min(1.0, abs(float(comp.vector @ u)))
        angles.append(math.degrees(math.acos(cos)))
    return {
        "eigenvalues_numpy": [float(x) for x in ref.eigenvalues],
        "eigenvalue_rel_error": rel,
        "angle_deg": angles,
    }
