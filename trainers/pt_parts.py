"""A PyTensor training step with the batch cut into one part per core, as `trainers.tf_mlp`
does for TensorFlow.

On a small CPU machine the step's GEMMs spread over all cores by OpenBLAS, but everything
between them (the batch gather, bias and ReLU, softmax, the bias sums) runs in one Numba thread
while the other cores spin: a third of the step at batch 500 on 2 cores (issue 18). Here each
part's gradient is computed by its own compiled function, in its own thread, with BLAS at one
thread per call; the parts meet in an update function that adds their gradients and applies
the rule. The sums are those of the whole batch (each part's gradient is scaled by 1/B of the
whole batch), up to float rounding.

Two things PyTensor does not offer and are done here: releasing the GIL while a compiled Numba
graph runs (its `NumbaLinker` compiles without ``nogil``; `NogilNumbaLinker` adds it), and a
compiled `Function` per part (one `Function` keeps its inputs and outputs in its own storage, so
two threads must never call the same one).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from pytensor.link.numba.linker import NumbaLinker

GradFn = Callable[..., list[np.ndarray]]


class NogilNumbaLinker(NumbaLinker):  # type: ignore[misc]  # pytensor is untyped
    """PyTensor's Numba linker, with the final function compiled ``nogil``: the graph it runs
    touches only its own inputs and outputs, so other Python threads may run meanwhile."""

    def jit_compile(self, fn_and_cache: Any) -> Any:
        from pytensor.link.numba.dispatch.basic import numba_njit

        fn, cache_key = fn_and_cache
        return numba_njit(fn.py_func, final_function=True, cache=cache_key is not None, nogil=True)


def nogil_mode(base: Any) -> Any:
    """``base`` (a NUMBA mode, rewrites included) with `NogilNumbaLinker`."""
    from pytensor.compile.mode import Mode

    return Mode(linker=NogilNumbaLinker(), optimizer=base.provided_optimizer)


@contextlib.contextmanager
def blas_threads(limit: int | None) -> Iterator[None]:
    """BLAS libraries at ``limit`` threads inside the block (threadpoolctl); None: as they are.

    Each part's GEMMs must stay on its own core: OpenBLAS's own threads would fight the other
    parts' for the same cores.
    """
    if limit is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=limit, user_api="blas"):
        yield


def part_bounds(size: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` row ranges of a batch of ``size``, equal but for the last; empty ones dropped."""
    rows = -(-size // parts)
    return [(lo, min(lo + rows, size)) for lo in range(0, size, rows)]


class PartedStep:
    """One step = ``len(grad_fns)`` part gradients at once, then ``update_fn`` on all of them.

    ``grad_fns[j](idx, scale)`` returns ``[loss_sum, *grads]`` for the rows ``idx`` with the
    gradients scaled by ``scale``; ``update_fn(*grads_of_part_0, *grads_of_part_1, ...)``
    applies the rule to their sum. A part a short batch leaves empty contributes zeros.
    """

    def __init__(
        self,
        grad_fns: Sequence[GradFn],
        update_fn: Callable[..., Any],
        shapes: Sequence[tuple[int, ...]],
    ) -> None:
        self._grad_fns = list(grad_fns)
        self._update_fn = update_fn
        self._zeros = [np.zeros(s, dtype=np.float32) for s in shapes]
        self._pool = ThreadPoolExecutor(len(grad_fns) - 1, thread_name_prefix="batch-part")

    def __call__(self, idx: np.ndarray) -> float:
        """The batch's mean loss; the weights are updated."""
        size = len(idx)
        scale = np.float32(1.0 / size)
        bounds = part_bounds(size, len(self._grad_fns))
        futures = [
            self._pool.submit(fn, idx[lo:hi], scale)
            for fn, (lo, hi) in zip(self._grad_fns[1:], bounds[1:], strict=False)
        ]
        lo, hi = bounds[0]
        results = [self._grad_fns[0](idx[lo:hi], scale)]
        results += [f.result() for f in futures]
        grads: list[np.ndarray] = []
        for r in results:
            grads += r[1:]
        for _ in range(len(self._grad_fns) - len(results)):
            grads += self._zeros
        self._update_fn(*grads)
        return float(sum(float(r[0]) for r in results)) / size

    def close(self) -> None:
        self._pool.shutdown(wait=True)
