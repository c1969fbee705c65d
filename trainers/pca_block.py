"""Block gradient ascent for PCA (``--method block``, the default of ``trainers.pca``).

Still gradient ascent on the Rayleigh quotient with deflation, never forming XᵀX; what changes
from the one-vector power steps of `trainers.pca.deflated_power` is how each step is taken:

1. **A block.** ``b = k + guard`` vectors ascend together (the guard vectors widen the gap that
   sets the convergence rate: λ_{b+1}/λ_i instead of λ_{i+1}/λ_i). One product ``Xcᵀ(Xc·S)`` of
   a D×m block costs about what one matrix-vector pair costs while m is small, because the
   pass over X (memory) dominates; a block makes every pass do m times the work.
2. **Gradient + momentum, with the best step.** The search space of a step is the current block
   X, its gradient W = C·X − X·Θ (the Rayleigh quotient's gradient, the residual) and the
   previous step's direction P (momentum). The step sizes are not fixed: Rayleigh–Ritz on
   span[X, W, P] picks the combination that maximises the quotient (an exact line search over
   every direction at once). This is LOBPCG (Knyazev 2001) without a preconditioner.
3. **Orthogonalization.** [W, P] is orthonormalised against X (and, for a later group, against
   the components already found) in float64, each column normalised first so a tiny residual
   keeps its digits; columns that vanish are dropped. The product of the new columns is always
   computed afresh, so float32 product errors never accumulate through recurrences.
4. **Deflation.** Components are found in groups of at most ``max_block``; a group's search
   space is kept orthogonal to every component already found (projection deflation, the same
   eigenpairs as Hotelling's C − Σ λ_j v_j v_jᵀ since the v_j are eigenvectors), and a column
   that has converged stays in the block but needs no more attention (soft locking).
5. **Warm starts.** A group starts from ``init`` rows when given (e.g. a previous run's
   components), then from the previous group's unconverged guard vectors, then random ones.

Convergence test per component: the relative residual ‖C·v − ρ·v‖ / ρ < ``tol`` (as in
`deflated_power`); a column with ρ ≤ 1e-12·ρ_1 is a zero eigenvalue (rank exhausted).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from trainers.pca_types import Component, fix_sign

Apply = Callable[[np.ndarray], np.ndarray]


_controllers: list[Any] = []  # threadpoolctl's, made once: see `_one_blas_thread`


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """NumPy's BLAS on one thread for the small D×m algebra between products.

    Those calls are tiny; with their default thread pool, the pool's workers wake up and then
    spin-wait next to the framework's own threads, and on a 2-core machine that doubled an
    MNIST solve (measured). The framework's product runs outside this, with every thread.
    threadpoolctl comes with scikit-learn; without it, nothing changes. Its controller is made
    once: `threadpool_limits` scans the process's loaded libraries (/proc/self/maps) on every
    entry, 0.5 ms, which was 11 of the 15 s of a 10,000-iteration solve of a 100×10 matrix.
    """
    if not _controllers:
        try:
            from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]
        except ImportError:
            _controllers.append(None)
        else:
            _controllers.append(ThreadpoolController())
    controller = _controllers[0]
    if controller is None:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield


@dataclass(frozen=True)
class BlockSettings:
    components: int
    n_norm: float
    tol: float = 1e-7
    max_iter: int = 10_000  # block iterations per group
    guard: int | None = None  # extra vectors per group; None: max(4, k // 2)
    max_block: int = 32
    seed: int = 0


@dataclass(frozen=True)
class BlockStats:
    iterations: int  # block iterations over all groups
    products: int  # columns multiplied by C (= matrix-vector pairs' worth of work)
    passes: int  # calls of apply (passes over X)
    block_size: int

    def metrics(self) -> dict[str, int]:
        """metrics.json's keys for the block method (``iterations`` stays per component)."""
        return {
            "block_size": self.block_size,
            "block_iterations": self.iterations,
            "passes": self.passes,
            "products": self.products,
        }


def block_ascent(
    apply: Apply,
    d: int,
    settings: BlockSettings,
    *,
    init: np.ndarray | None = None,
    on_component: Callable[[Component], None] | None = None,
) -> tuple[list[Component], BlockStats]:
    """The top ``settings.components`` eigenpairs of C = XcᵀXc / n_norm; see the module doc.

    Args:
        apply: V ↦ XcᵀXc·V (unnormalised) for a float64 (D, m) block, the only access to X.
        d: the dimension D.
        settings: components, normalisation, tolerance, caps, seed.
        init: optional (r, D) starting vectors (warm start); fewer or more than b are fine.
        on_component: called as each component converges, in index order.
    """
    k = settings.components
    rng = np.random.default_rng(settings.seed)
    found: list[Component] = []
    locked = np.zeros((d, 0))
    carry = np.zeros((d, 0)) if init is None else np.asarray(init, dtype=np.float64).T.copy()
    total_it = products = passes = 0
    guard = settings.guard if settings.guard is not None else max(4, k // 2)
    block_size = 0
    t_last = time.perf_counter()
    while len(found) < k:
        want = min(k - len(found), settings.max_block)
        b = min(want + guard, d - locked.shape[1])
        block_size = max(block_size, b)
        x0 = np.concatenate([carry, rng.standard_normal((d, b))], axis=1)[:, :b]
        for _ in range(2):
            x0 = x0 - locked @ (locked.T @ x0)
        x = np.linalg.qr(x0)[0]  # QR, not SVD: the warm-start columns keep their span
        group_start_it = total_it
        state = _Group(apply, settings, locked, x)
        products += state.products
        passes += 1
        done = 0
        for it in range(settings.max_iter + 1):
            if it:  # iteration 0 only tests the start (a warm start may be the answer already)
                total_it += 1
                state.step()
                products += state.products
                passes += 1
            conv = state.converged()
            while done < want and conv[done]:
                t_now = time.perf_counter()
                comp = state.component(done, len(found), total_it - group_start_it, t_now - t_last)
                group_start_it = total_it
                t_last = t_now
                found.append(comp)
                if on_component is not None:
                    on_component(comp)
                done += 1
            if done == want:
                break
        while done < want:  # the cap: keep what we have, marked unconverged
            t_now = time.perf_counter()
            comp = state.component(done, len(found), total_it - group_start_it, t_now - t_last)
            group_start_it, t_last = total_it, t_now
            found.append(comp)
            if on_component is not None:
                on_component(comp)
            done += 1
        locked = np.concatenate([locked, np.stack([c.vector for c in found[-want:]], 1)], 1)
        carry = state.x[:, want:]
    stats = BlockStats(total_it, products, passes, block_size)
    return found, stats


class _Group:
    """One group's LOBPCG state: X (D×b, orthonormal), C·X, the momentum block P, Θ."""

    def __init__(self, apply: Apply, settings: BlockSettings, locked: np.ndarray, x: np.ndarray):
        self._apply = apply
        self._n = settings.n_norm
        self._tol = settings.tol
        self._locked = locked
        self._b = x.shape[1]
        self.products = x.shape[1]
        ax = self._product(x)
        with _one_blas_thread():
            self._rayleigh_ritz(x, ax)
        self._p = np.zeros((x.shape[0], 0))

    def _product(self, s: np.ndarray) -> np.ndarray:
        return np.asarray(self._apply(s), dtype=np.float64).reshape(s.shape) / self._n

    def _rayleigh_ritz(self, s: np.ndarray, a_s: np.ndarray) -> np.ndarray:
        """Best b-dimensional subspace of span(s) (orthonormal columns) for the quotient."""
        h = s.T @ a_s
        theta, y = np.linalg.eigh((h + h.T) / 2)
        order = np.argsort(theta)[::-1][: self._b]
        y = y[:, order]
        self.theta = theta[order]
        self.x = s @ y
        self.ax = a_s @ y
        return y

    def residuals(self) -> np.ndarray:
        r = self.ax - self.x * self.theta
        return np.linalg.norm(r, axis=0) / np.maximum(np.abs(self.theta), 1e-300)

    def converged(self) -> np.ndarray:
        tiny = self.theta <= 1e-12 * max(float(np.max(self.theta)), 0.0)
        return (self.residuals() < self._tol) | tiny

    def step(self) -> None:
        with _one_blas_thread():
            active = ~self.converged()
            w = (self.ax - self.x * self.theta)[:, active]
            basis = np.concatenate([self.x, self._locked], axis=1)
            extra = _orth(np.concatenate([w, self._p], axis=1), basis)
        if extra.shape[1] == 0:
            self.products = 0
            return
        self.products = extra.shape[1]
        a_extra = self._product(extra)
        with _one_blas_thread():
            s = np.concatenate([self.x, extra], axis=1)
            a_s = np.concatenate([self.ax, a_extra], axis=1)
            y = self._rayleigh_ritz(s, a_s)
            # Momentum: the part of the step that left the old block, for the columns moving.
            self._p = (extra @ y[self._b :, :])[:, active]

    def component(self, j: int, index: int, iterations: int, wall_s: float) -> Component:
        res = float(self.residuals()[j])
        theta = max(float(self.theta[j]), 0.0)
        return Component(
            index=index,
            eigenvalue=theta,
            vector=fix_sign(self.x[:, j]),
            iterations=iterations,
            wall_s=wall_s,
            converged=bool(self.converged()[j]),
            residual=res,
        )


def _orth(block: np.ndarray, against: np.ndarray) -> np.ndarray:
    """Orthonormal basis of ``block``'s columns with ``against``'s span removed (float64).

    Columns are normalised first (a residual of 1e-9 keeps its digits), projected out twice
    (classical Gram–Schmidt twice is as good as modified), and an SVD keeps the directions
    whose singular value is above 1e-10 of the largest: near-dependent columns are dropped.
    """
    if block.shape[1] == 0:
        return block
    norms = np.linalg.norm(block, axis=0)
    keep = norms > 0
    z = block[:, keep] / norms[keep]
    for _ in range(2):
        if against.shape[1]:
            z = z - against @ (against.T @ z)
    if z.shape[1] == 0:
        return z
    u, s, _ = np.linalg.svd(z, full_matrices=False)
    rank = int(np.sum(s > 1e-10 * max(float(s[0]), 1e-300))) if len(s) else 0
    return np.ascontiguousarray(u[:, :rank])
