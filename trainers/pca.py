"""PCA by gradient ascent with deflation, never forming XᵀX: ``python -m trainers.pca``.

The method (the seed post's):

1. Centre the data: μ is streamed over X's row chunks first, in float64.
2. The leading eigenvector of the covariance C maximises vᵀCv on the unit sphere. Its gradient
   is 2Cv; a step ``v ← normalise(v + η·Cv)`` climbs it, and the step ``η → ∞`` (the default,
   ``--step-size inf``) is power iteration, the fastest fixed-step ascent. Cv is computed as
   Xcᵀ(Xc·v) chunk by chunk, so memory is O(chunk·D + k·D): no D×D matrix ever exists.
3. Component i maximises the same quotient for the deflated C − Σ_{j<i} λ_j v_j v_jᵀ
   (Hotelling deflation, applied to the vector, never formed as a matrix).
4. Converged when the relative residual ‖C_i v − ρ v‖ / ρ drops below ``--tol``, with ρ = vᵀC_i v
   the Rayleigh quotient; the residual bounds the angle to the true eigenvector by ‖r‖/gap, a
   safer test than a small change in ρ, which stalls long before v is right.

That is ``--method power``. The default, ``--method block``, is the same ascent made smarter
(`trainers.pca_block`): a block of k + guard vectors ascends at once, each step's size and
momentum chosen by Rayleigh–Ritz over [block, gradient, previous step], converged vectors
deflated by projection; about 10 passes over X instead of ~1000 on MNIST's top 10.

Normalisation (recorded in metrics.json as ``normalisation`` and ``n_norm``): the covariance is
``XcᵀXc / n_norm`` with ``n_norm = N`` for ``--normalisation biased`` (NumPy's ``bias=True``,
the maximum-likelihood estimate; the default) or ``N − 1`` for ``unbiased`` (``np.cov``'s
default, scikit-learn's ``explained_variance_``). It scales the eigenvalues, never the vectors.

The per-chunk product is the framework's: a ``tf.function`` (``--framework tensorflow``) or a
compiled ``pytensor.function`` (``--framework theano``). Data that fits in ``--resident-mb`` is
centred once and kept in the framework (on the GPU when there is one); larger data is streamed
from the ``.npy`` file on every iteration. Where D ≤ 4096 the result is checked against
``numpy.linalg.eigh`` of the covariance: relative eigenvalue error and angle in degrees.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from trainers.chunks import RowChunks, column_stats, write_npy_once
from trainers.data import default_cache_dir, load_mnist
from trainers.device import choose_device
from trainers.errors import PREEMPT_SIGNAL, BadArgument, DataError, Stopped, TrainerError
from trainers.manifest import write_manifest
from trainers.pca_block import BlockSettings, BlockStats, block_ascent
from trainers.pca_reference import compare, numpy_reference
from trainers.pca_types import Component, fix_sign
from trainers.scratch import private_tempdir
from trainers.timing import TimingLog

REFERENCE_MAX_D = 4096
METHOD_HELP = "block: k+guard vectors, Rayleigh-Ritz steps (default); power: one at a time"


class CovOperator(Protocol):
    """One framework's ``v ↦ Xcᵀ(Xc·v)`` (unnormalised), summed over chunks in float64."""

    device: str

    def load(self, chunks: RowChunks, mean: np.ndarray, *, resident: bool) -> float:
        """Prepare (compile, and for ``resident`` upload the centred chunks); return seconds."""
        ...

    def apply(self, v: np.ndarray) -> np.ndarray:
        """Xcᵀ(Xc·v) for a float64 (D,) vector, as float64 (D,)."""
        ...


@dataclass(frozen=True)
class PowerSettings:
    components: int
    n_norm: float
    tol: float = 1e-7
    max_iter: int = 10_000
    step_size: float = math.inf
    seed: int = 0


def deflated_power(
    apply: Callable[[np.ndarray], np.ndarray],
    d: int,
    settings: PowerSettings,
    *,
    on_component: Callable[[Component], None] | None = None,
) -> list[Component]:
    """The top ``settings.components`` eigenpairs of C = XcᵀXc / n_norm, one at a time.

    Args:
        apply: v ↦ XcᵀXc·v (unnormalised), the only access to the data.
        d: the dimension D.
        settings: components, normalisation, tolerance, iteration cap, step size, seed.
        on_component: called as each component is found (the timing log's row).

    Rules:
        1. Component i ascends vᵀC_i v with C_i = C − Σ_{j<i} λ_j v_j v_jᵀ; nothing D×D is made.
        2. The random start is orthogonalised against the components already found (it would
           converge there anyway; starting there saves iterations, not correctness).
        3. A component that hits ``max_iter`` is kept with ``converged=False``; the caller reports.
        4. If C_i v vanishes (rank of the data exhausted), the eigenvalue is 0 and we stop there.
    """
    rng = np.random.default_rng(settings.seed)
    found: list[Component] = []
    vecs = np.zeros((0, d))
    lams = np.zeros(0)
    for index in range(settings.components):
        start = time.perf_counter()
        v = rng.standard_normal(d)
        v -= vecs.T @ (vecs @ v)
        v /= np.linalg.norm(v)
        rho, residual, converged, it = 0.0, math.inf, False, 0
        for it in range(1, settings.max_iter + 1):  # noqa: B007 (it is read after the loop)
            w = apply(v) / settings.n_norm - vecs.T @ (lams * (vecs @ v))
            rho = float(v @ w)
            w_norm = float(np.linalg.norm(w))
            if w_norm <= 1e-300 or rho <= 0.0:
                rho, converged = max(rho, 0.0), True
                break
            residual = float(np.linalg.norm(w - rho * v)) / rho
            if residual < settings.tol:
                converged = True
                break
            step = w if math.isinf(settings.step_size) else v + settings.step_size * w
            v = step / np.linalg.norm(step)
        comp = Component(
            index=index,
            eigenvalue=rho,
            vector=fix_sign(v),
            iterations=it,
            wall_s=time.perf_counter() - start,
            converged=converged,
            residual=residual,
        )
        found.append(comp)
        vecs = np.vstack([vecs, comp.vector])
        lams = np.append(lams, comp.eigenvalue)
        if on_component is not None:
            on_component(comp)
    return found


# ---------------------------------------------------------------- the process: CLI in, files out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m trainers.pca",
        description="PCA by gradient ascent with deflation; writes timing.jsonl, metrics.json, "
        "manifest.json and components.npy to --out.",
    )
    p.add_argument("--framework", required=True, choices=["tensorflow", "theano"])
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    p.add_argument("--components", type=int, default=10, help="K, the number of eigenpairs")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data-dir", type=Path, help="folder holding MNIST (default: cache/download)")
    p.add_argument("--cache-dir", type=Path, help="MNIST cache (default: see trainers.data)")
    p.add_argument("--subset", type=int, help="use the first N MNIST training images")
    p.add_argument("--input", type=Path, help="a 2-D float .npy (N, D) to use instead of MNIST")
    p.add_argument("--tol", type=float, default=1e-7, help="relative residual to stop at")
    p.add_argument("--max-iter", type=int, default=10_000, help="iterations per component")
    p.add_argument("--chunk-rows", type=int, help="rows per chunk (default: ~32 MiB of rows)")
    p.add_argument("--normalisation", default="biased", choices=["biased", "unbiased"])
    p.add_argument(
        "--resident-mb",
        type=float,
        default=1024.0,
        help="keep X in the framework "
        "when it is at most this large; stream it from disk otherwise (0: always)",
    )
    p.add_argument("--method", default="block", choices=["block", "power"], help=METHOD_HELP)
    p.add_argument("--guard", type=int, help="block: extra vectors (default max(4, k/2))")
    p.add_argument("--warm-start", type=Path, help="block: a (r, D) .npy of starting vectors")
    p.add_argument("--step-size", type=float, default=math.inf, help="power: step η (inf: power)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-reference", action="store_true", help="skip the numpy.linalg.eigh check")
    p.add_argument("--allow-cpu-fallback", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one PCA; exit 0 ok, 2 bad argument or data, 3 requested device unavailable, 75
    preempted (SIGUSR1: stopped at the next ascent step; a restart recomputes, in seconds)."""
    args = build_parser().parse_args(argv)
    received: list[int] = []
    previous = signal.signal(PREEMPT_SIGNAL, lambda signum, frame: received.append(signum))
    try:
        with private_tempdir():  # the frameworks' generated sources: trainers.scratch
            _run(args, received)
    except TrainerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Stopped as exc:
        print(f"pca: preempted ({exc}); nothing is saved, a restart recomputes", file=sys.stderr)
        return exc.exit_code
    finally:
        signal.signal(PREEMPT_SIGNAL, previous)
    return 0


def _run(args: argparse.Namespace, received: list[int]) -> None:
    _check_args(args)
    started = time.time()
    choice = choose_device(args.framework, args.device, allow_cpu_fallback=args.allow_cpu_fallback)
    out: Path = args.out
    chunks, source = _open_data(args)
    k = args.components
    if k > chunks.d:
        raise BadArgument(f"--components {k} exceeds the data's dimension D={chunks.d}")
    n_norm = float(chunks.n if args.normalisation == "biased" else chunks.n - 1)
    if n_norm < 1:
        raise BadArgument(f"{args.normalisation} normalisation needs more rows than N={chunks.n}")
    resident = chunks.nbytes_f32 <= args.resident_mb * (1 << 20)
    write_manifest(
        out,
        framework=args.framework,
        device_used=choice.used if choice.used == "cpu" else f"gpu ({choice.name})",
        extra={"trainer": "pca", "data_source": source, "device_requested": args.device},
        started_at=started,
    )
    with TimingLog(out / "timing.jsonl") as log:
        log.start(
            trainer="pca",
            framework=args.framework,
            device=choice.used,
            n=chunks.n,
            d=chunks.d,
            components=k,
            resident=resident,
            chunk_rows=chunks.rows,
        )
        t0 = time.perf_counter()
        mean, squares = column_stats(chunks)
        stats_s = time.perf_counter() - t0
        op = _operator(args.framework, chunks.d, choice.used)
        compile_s = op.load(chunks, mean, resident=resident)
        log.compile(compile_s, resident=resident, stats_s=stats_s)

        def on_component(c: Component) -> None:
            log.write(
                "component",
                component=c.index,
                eigenvalue=c.eigenvalue,
                iterations=c.iterations,
                wall_s=c.wall_s,
                converged=c.converged,
                residual=c.residual,
            )
            # One plain line per component: what `orchestrate run` shows as the task's progress.
            print(
                f"component {c.index + 1}/{k}: eigenvalue {c.eigenvalue:.6g}, "
                f"{c.iterations} iterations, {c.wall_s:.2f} s",
                flush=True,
            )

        def apply(v: np.ndarray) -> np.ndarray:
            # Every ascent step calls this once: the boundary where a preemption stops the run.
            if received:
                log.end(status="preempted", signal=signal.Signals(received[0]).name)
                raise Stopped(received[0])
            return op.apply(v)

        t1 = time.perf_counter()
        found, stats = _solve(args, apply, chunks.d, n_norm, on_component)
        solve_s = time.perf_counter() - t1
        total_variance = squares / n_norm
        metrics = {
            "trainer": "pca",
            "framework": args.framework,
            "device": choice.used,
            "data_source": source,
            "n": chunks.n,
            "d": chunks.d,
            "components": k,
            "normalisation": args.normalisation,
            "n_norm": n_norm,
            "tol": args.tol,
            "max_iter": args.max_iter,
            "step_size": str(args.step_size) if math.isinf(args.step_size) else args.step_size,
            "seed": args.seed,
            "chunk_rows": chunks.rows,
            "n_chunks": chunks.n_chunks,
            "resident": resident,
            "eigenvalues": [c.eigenvalue for c in found],
            "total_variance": total_variance,
            "explained_variance_ratio": [c.eigenvalue / total_variance for c in found],
            "iterations": [c.iterations for c in found],
            "converged": [c.converged for c in found],
            "residuals": [c.residual for c in found],
            "component_s": [c.wall_s for c in found],
            "stats_s": stats_s,
            "compile_s": compile_s,
            "solve_s": solve_s,
            "total_s": stats_s + compile_s + solve_s,
            "s_per_iteration": solve_s / max(1, sum(c.iterations for c in found)),
            "method": args.method,
            **({} if stats is None else stats.metrics()),
        }
        if chunks.d <= REFERENCE_MAX_D and not args.no_reference:
            ref = numpy_reference(chunks, mean, k, n_norm)
            metrics["reference"] = {
                "scatter_s": ref.scatter_s,
                "eigh_s": ref.eigh_s,
                **compare(found, ref),
            }
        np.save(out / "components.npy", np.stack([c.vector for c in found]).astype(np.float32))
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        log.end(solve_s=solve_s, converged=all(c.converged for c in found))


def _solve(
    args: argparse.Namespace,
    apply: Callable[[np.ndarray], np.ndarray],
    d: int,
    n_norm: float,
    on_component: Callable[[Component], None],
) -> tuple[list[Component], BlockStats | None]:
    """Run the chosen method; ``--method block`` also returns its pass counts."""
    k = args.components
    if args.method == "power":
        settings = PowerSettings(k, n_norm, args.tol, args.max_iter, args.step_size, args.seed)
        return deflated_power(apply, d, settings, on_component=on_component), None
    init = None
    if args.warm_start is not None:
        init = np.load(args.warm_start)
        if init.ndim not in (1, 2) or init.shape[-1] != d:
            raise BadArgument(f"--warm-start holds shape {init.shape}; expected (r, {d})")
    block = BlockSettings(k, n_norm, args.tol, args.max_iter, guard=args.guard, seed=args.seed)
    return block_ascent(apply, d, block, init=init, on_component=on_component)


def _check_args(args: argparse.Namespace) -> None:
    checks = [
        (args.components >= 1, f"--components must be >= 1, got {args.components}"),
        (args.tol > 0, f"--tol must be > 0, got {args.tol}"),
        (args.max_iter >= 1, f"--max-iter must be >= 1, got {args.max_iter}"),
        (args.step_size > 0, f"--step-size must be > 0, got {args.step_size}"),
        (
            args.method == "power" or math.isinf(args.step_size),
            "--step-size applies to --method power (block steps are chosen by Rayleigh-Ritz)",
        ),
        (args.guard is None or args.guard >= 0, f"--guard must be >= 0, got {args.guard}"),
        (args.resident_mb >= 0, f"--resident-mb must be >= 0, got {args.resident_mb}"),
        (args.subset is None or args.subset >= 2, f"--subset must be >= 2, got {args.subset}"),
        (
            args.input is None or (args.data_dir is None and args.subset is None),
            "--input replaces MNIST: it does not combine with --data-dir or --subset",
        ),
    ]
    problems = [msg for ok, msg in checks if not ok]
    if problems:
        raise BadArgument("; ".join(problems))


def _open_data(args: argparse.Namespace) -> tuple[RowChunks, str]:
    """The matrix to decompose, as row chunks, and where it came from."""
    if args.input is not None:
        if not args.input.is_file():
            raise DataError(f"--input {args.input} does not exist")
        return RowChunks.from_npy(args.input, args.chunk_rows), f"npy:{args.input}"
    mnist = load_mnist(args.data_dir, cache_dir=args.cache_dir, subset=args.subset)
    x = mnist.x_train
    cache = args.cache_dir if args.cache_dir is not None else default_cache_dir()
    # Staged once as .npy and streamed from there like any --input; a read-only cache only
    # costs the staging, so fall back to the array in memory.
    try:
        path = write_npy_once(cache / f"mnist-x_train-{x.shape[0]}x{x.shape[1]}-f32.npy", x)
    except OSError:
        return RowChunks.from_array(x, args.chunk_rows), mnist.source
    source = mnist.source
    del mnist, x
    return RowChunks.from_npy(path, args.chunk_rows), f"{source} via {path}"


def _operator(framework: str, d: int, device: str) -> CovOperator:
    if framework == "tensorflow":
        from trainers.tf_pca import TfCovOperator

        return TfCovOperator(d, device=device)
    from trainers.pt_pca import PtCovOperator

    return PtCovOperator(d, device=device)


if __name__ == "__main__":
    raise SystemExit(main())
