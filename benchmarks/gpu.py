"""GPU device check (issue 18, item 3): a whole epoch as one compiled program, data resident.

    python -m benchmarks.gpu [--device gpu] [--batch-sizes 500,4096] [--epochs 3] [--json OUT]

One short prepared script for a lent GPU machine, tested on the CPU for correctness
(``--device cpu``; tests/benchmarks/test_gpu.py):

1. **Peak**: a float32 GEMM (8192² on the GPU, 2048² on the CPU) timed in this same script, at
   the same matmul precision as the MLP (``--precision highest``: true fp32, no TF32).
2. **MLP**: 784-300-10, plain SGD. The epoch is one PyTensor ``scan`` over the batches, compiled
   in JAX mode (``NUMBA`` on the CPU), so one call runs all steps. X, the one-hot labels and
   the weights are device arrays passed as trusted inputs (PyTensor's JAX linker would copy a
   shared variable's host value on every call); the new weights come back as device arrays and
   go straight into the next call. Only the epoch's permutation crosses from the host. Reports
   samples/s per batch size and the fraction of the measured peak (958.8k FLOPs per sample).
3. **PCA**: `trainers.pca_block.block_ascent` on `trainers.pt_pca.PtCovOperator` (JAX on the
   GPU), MNIST top 10: ms per pass over X and total, against centring + XᵀX + ``eigh`` on the
   same device (``jnp.linalg.eigh`` on the GPU, NumPy on the CPU).

Prints one JSON object (also written to ``--json``); nothing is written to RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.trainers import flops_per_sample  # noqa: E402
from trainers.mlp import init_params  # noqa: E402

Arrays = list[Any]


def epoch_program(
    sizes: Sequence[int], lr: float, mode: str
) -> Callable[[Any, Any, Any, Arrays], tuple[Arrays, float]]:
    """``run(x, y1h, order, params) -> (new params, mean loss)``: all of one epoch's steps.

    ``order`` is (steps, batch) int32: row indices, one batch per row (full batches only).
    """
    import pytensor as _pytensor
    import pytensor.tensor as _pt
    from pytensor.gradient import grad as _grad

    # PyTensor is typed loosely (Variable | Sequence | None everywhere); Any keeps it honest.
    pytensor: Any = _pytensor
    pt: Any = _pt
    grad: Any = _grad
    x = pt.matrix("x", dtype="float32")
    y1h = pt.matrix("y1h", dtype="float32")
    order = pt.imatrix("order")
    params = [
        pt.tensor(f"p{i}", dtype="float32", shape=(None,) * (2 if i % 2 == 0 else 1))
        for i in range(2 * (len(sizes) - 1))
    ]
    f32 = np.float32

    def step(idx: Any, *ps: Any) -> list[Any]:
        h = x[idx]
        for i in range(len(ps) // 2):
            h = pt.dot(h, ps[2 * i]) + ps[2 * i + 1]
            if i < len(ps) // 2 - 1:
                h = pt.maximum(h, f32(0.0))
        loss = -pt.mean(pt.sum(y1h[idx] * pt.special.log_softmax(h, axis=1), axis=1))
        grads = grad(loss, list(ps))
        return [p - f32(lr) * g for p, g in zip(ps, grads, strict=True)] + [loss]

    outs = pytensor.scan(
        step,
        sequences=[order],
        outputs_info=[*params, None],
        return_updates=False,
    )
    final = [o[-1] for o in outs[:-1]]
    fn = pytensor.function(
        [x, y1h, order, *params], [*final, pt.mean(outs[-1])], mode=mode, trust_input=True
    )

    def run(xd: Any, yd: Any, od: Any, ps: Arrays) -> tuple[Arrays, float]:
        *new, loss = fn(xd, yd, od, *ps)
        return list(new), float(loss)

    return run


class Device:
    """Where arrays live and how to wait for them: JAX's GPU, or plain NumPy on the CPU."""

    def __init__(self, kind: str, precision: str) -> None:
        self.kind = kind
        self.mode = "JAX" if kind == "gpu" else "NUMBA"
        self._jax: Any = None
        if kind == "gpu":
            import jax  # type: ignore[import-not-found]  # GPU hosts only

            jax.config.update("jax_default_matmul_precision", precision)
            self._jax = jax
            self.name = str(jax.devices("gpu")[0].device_kind)
        else:
            self.name = "cpu"

    def put(self, a: np.ndarray) -> Any:
        return self._jax.device_put(a, self._jax.devices("gpu")[0]) if self._jax else a

    def wait(self, a: Any) -> Any:
        return a.block_until_ready() if hasattr(a, "block_until_ready") else a

    def gemm_flops(self) -> float:
        """Best FLOP/s of a square float32 product, timed here, on this device."""
        size = 8192 if self._jax else 2048
        a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
        if self._jax:
            jnp = self._jax.numpy
            ad = self.put(a)
            mm = self._jax.jit(lambda m: jnp.dot(m, m))
        else:
            ad, mm = a, lambda m: m @ m
        self.wait(mm(ad))
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            self.wait(mm(ad))
            best = min(best, time.perf_counter() - t0)
        return 2.0 * size**3 / best


def run_mlp(
    dev: Device, x: np.ndarray, y: np.ndarray, batch: int, epochs: int, lr: float = 0.1
) -> dict[str, Any]:
    """Compile the epoch for ``batch``, run a warm-up epoch and ``epochs`` timed ones."""
    sizes = (x.shape[1], 300, 10)
    steps = len(x) // batch
    t0 = time.perf_counter()
    run = epoch_program(sizes, lr, dev.mode)
    build_s = time.perf_counter() - t0
    xd = dev.put(np.ascontiguousarray(x, dtype=np.float32))
    yd = dev.put(np.eye(10, dtype=np.float32)[y])
    params = [dev.put(p) for p in init_params(sizes, 0)]
    rates, losses = [], []
    for epoch in range(epochs + 1):
        perm = np.random.default_rng([0, epoch]).permutation(len(x))[: steps * batch]
        order = dev.put(perm.reshape(steps, batch).astype(np.int32))
        t0 = time.perf_counter()
        params, loss = run(xd, yd, order, params)
        dev.wait(params[0])
        if epoch:  # epoch 0 compiles (JAX/Numba JIT on the first call)
            rates.append(steps * batch / (time.perf_counter() - t0))
        losses.append(loss)
    return {
        "batch": batch,
        "samples_per_s": float(np.median(rates)) if rates else 0.0,
        "rates": rates,
        "losses": losses,
        "build_s": build_s,
        "params": [np.asarray(p) for p in params],
    }


def run_pca(dev: Device, x: np.ndarray, k: int, tol: float) -> dict[str, Any]:
    """Block gradient PCA on the device vs centring + XᵀX + eigh on the same device."""
    from trainers.chunks import RowChunks, column_stats
    from trainers.pca_block import BlockSettings, block_ascent
    from trainers.pt_pca import PtCovOperator

    chunks = RowChunks.from_array(np.ascontiguousarray(x, dtype=np.float32))
    t0 = time.perf_counter()
    mean, _ = column_stats(chunks)
    op = PtCovOperator(chunks.d, device=dev.kind)
    op.load(chunks, mean, resident=True)
    t1 = time.perf_counter()
    found, stats = block_ascent(op.apply, chunks.d, BlockSettings(k, float(chunks.n), tol=tol))
    t2 = time.perf_counter()
    if dev.kind == "gpu":
        jnp = dev._jax.numpy
        xd = dev.put(chunks._array if chunks._array is not None else x)
        dev.wait(xd)
        t3 = time.perf_counter()
        xc = xd - jnp.mean(xd, axis=0)
        values = dev.wait(jnp.linalg.eigh((xc.T @ xc) / chunks.n)[0])
        ref_s = time.perf_counter() - t3
        ref = np.sort(np.asarray(values))[::-1][:k]
    else:
        t3 = time.perf_counter()
        xc = x - x.mean(axis=0, dtype=np.float64).astype(np.float32)
        ref = np.linalg.eigh((xc.T @ xc).astype(np.float64) / chunks.n)[0][::-1][:k]
        ref_s = time.perf_counter() - t3
    got = np.array([c.eigenvalue for c in found])
    return {
        "k": k,
        "setup_s": t1 - t0,
        "solve_s": t2 - t1,
        "total_s": t2 - t0,
        "passes": stats.passes,
        "ms_per_pass": 1e3 * (t2 - t1) / max(stats.passes, 1),
        "eigh_s": ref_s,
        "ratio_to_eigh": (t2 - t0) / ref_s,
        "max_rel_err": float(np.max(np.abs(got - ref) / np.abs(ref))),
        "converged": all(c.converged for c in found),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="gpu", choices=["gpu", "cpu"])
    p.add_argument("--batch-sizes", default="500,4096")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--precision", default="highest", choices=["highest", "high", "default"])
    p.add_argument("--subset", type=int, help="first N training images (tests use a few)")
    p.add_argument("--pca-k", type=int, default=10)
    p.add_argument("--pca-tol", type=float, default=1e-6)
    p.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "datasets")
    p.add_argument("--json", type=Path, help="also write the result here")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from trainers.data import load_mnist

    data = load_mnist(args.data_dir if args.data_dir.is_dir() else None, subset=args.subset)
    dev = Device(args.device, args.precision)
    peak = dev.gemm_flops()
    per_sample = flops_per_sample((784, 300, 10))
    result: dict[str, Any] = {"device": dev.name, "gemm_flops": peak, "precision": args.precision}
    result["mlp"] = []
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        r = run_mlp(dev, data.x_train, data.y_train, batch, args.epochs)
        r.pop("params")
        r["fraction_of_peak"] = r["samples_per_s"] * per_sample / peak
        result["mlp"].append(r)
    result["pca"] = run_pca(dev, data.x_train, args.pca_k, args.pca_tol)
    text = json.dumps(result, indent=2, default=float)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
