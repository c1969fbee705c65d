"""MLP training throughput: our hand-written loops against Keras ``model.fit``, side by side.

Run from the repository root (as a module: run as a file, this name would shadow the
``trainers`` package)::

    .venv/bin/python -m benchmarks.trainers [--epochs 4] [--batch-size 500] [--no-results]

Same net (784-300-10 ReLU, softmax cross-entropy), same data (full MNIST, 60,000 samples), same
batch and the same plain SGD rule for all three contestants:

1. ``tf loop``: `trainers.tf_mlp.TfMlp` (tf.Variable, backward written out, a batch part per
   core on a small CPU machine, one tf.function per epoch);
2. ``keras fit``: `keras.Sequential` of two Dense layers, ``SGD`` optimizer, one ``model.fit``
   call whose epochs are the turns (`keras_fit`);
3. ``pytensor``: `trainers.pt_mlp.PtMlp` (shared variables, grad, function(updates=...), Numba;
   transposed products handed to BLAS, a batch part per core on a small CPU machine).

Honest measurement (issue 18): **every contestant runs in its own process**. Sharing one
process made TensorFlow's thread pools and Numba's/OpenBLAS's compete (threads of one library
spin-waiting while the other computes) and under-reported TF by up to 3x on some hosts. The
parent starts one child per contestant plus two ``gemm`` children; each child loads MNIST, compiles
and runs one untimed warm-up epoch, then waits on its stdin. Rounds follow: in each, the parent
asks every child in turn (the order rotates) for one timed epoch, with a short pause between
turns so no idle child's spinning threads steal from the next; a burst of load from elsewhere
on the machine thus hits all of them alike. Two ``gemm`` children time a 2048² float32 matrix
product in their turns, one with NumPy's BLAS (OpenBLAS) and one with TensorFlow's (oneDNN),
and a third with the scipy-openblas32 wheel's OpenBLAS that the PyTensor step calls, where it
is installed: the machine's attainable FLOP rate in that same round is the best of them. All
are needed: an environment may pin OpenBLAS to older kernels (``OPENBLAS_CORETYPE=Haswell``, i.e.
AVX2 on an AVX-512 CPU, which halves its rate), and a bound from that alone would flatter
every contestant whose GEMMs do not go through OpenBLAS.

The bound: GEMM FLOP/s divided by the FLOPs one sample costs (forward 2·(784·300 + 300·10),
backward twice that minus the unused input gradient: 958.8k for 784-300-10). Each contestant's
median samples/s is printed as a fraction of it.

Writes the section "## Trainers: MLP throughput" of benchmarks/RESULTS.md (other sections kept),
then runs ``benchmarks.pca`` (gradient PCA vs numpy/scikit-learn; ``--skip-pca`` to leave it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from benchmarks._results import write_section
from trainers.pt_blas import library_path

REPO = Path(__file__).resolve().parents[1]
SECTION = "## Trainers: MLP throughput"
SHARED_DATA = REPO / ".." / "shared" / "datasets"

EpochFn = Callable[[int], None]


def tf_loop(data: Any, hidden: int, batch: int, lr: float) -> EpochFn:
    from trainers.mlp import epoch_order, init_params
    from trainers.optim.config import make_optim
    from trainers.tf_mlp import TfMlp

    n = len(data.x_train)
    model = TfMlp(
        make_optim("minibatch", learning_rate=lr),
        init_params((784, hidden, 10), 0),
        data.x_train,
        data.y_train,
        data.x_test,
        data.y_test,
        batch_size=batch,
    )
    model.compile()

    def run_epoch(epoch: int) -> None:
        model.train_epoch(epoch_order(0, epoch, n))

    return run_epoch


def pytensor_loop(data: Any, hidden: int, batch: int, lr: float) -> EpochFn:
    from trainers.mlp import epoch_order, init_params
    from trainers.optim.config import make_optim
    from trainers.pt_mlp import PtMlp

    n = len(data.x_train)
    model = PtMlp(
        make_optim("minibatch", learning_rate=lr),
        init_params((784, hidden, 10), 0),
        data.x_train,
        data.y_train,
        data.x_test,
        data.y_test,
        batch_size=batch,
    )
    model.compile()

    def run_epoch(epoch: int) -> None:
        model.train_epoch(epoch_order(0, epoch, n))

    return run_epoch


class _NoMoreTurns(Exception):
    """The parent closed the child's stdin: the long `fit` call ends here."""


def keras_fit(data: Any, hidden: int, batch: int, lr: float, turns: IO[str], out: IO[str]) -> None:
    """Keras ``fit`` as the protocol's contestant: one long call, one epoch per ``go`` line.

    Its epochs are timed inside a single ``fit(epochs=...)`` call, as a user trains for several
    epochs, by a callback that waits for the parent's next ``go`` before each epoch starts.
    Calling ``fit(epochs=1)`` once per turn instead charged Keras its per-call set-up every epoch
    (on the AMD EPYC host, 2026-12-07, epochs inside one call ran 5-10% faster: issue 18), and
    the reference must not be slowed by the way it is measured. The first epoch is the untimed
    warm-up, which traces the train step as the loops' ``compile()`` does. Between turns no
    epoch is under way, so Keras's input pipeline is idle while the others run.
    """
    import keras  # type: ignore[import-untyped]

    model = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x, y = data.x_train, data.y_train

    class TakeTurns(keras.callbacks.Callback):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.t0 = 0.0

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            if epoch > 0 and not turns.readline().startswith("go"):
                raise _NoMoreTurns
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            seconds = time.perf_counter() - self.t0
            line = "ready" if epoch == 0 else json.dumps({"value": len(x) / seconds})
            print(line, file=out, flush=True)

    with contextlib.suppress(_NoMoreTurns):
        model.fit(
            x,
            y,
            batch_size=batch,
            epochs=MAX_TURNS,
            shuffle=True,
            verbose=0,
            callbacks=[TakeTurns()],
        )


MAX_TURNS = 1_000_000  # Keras's fit runs until the parent stops asking


def gemm_rate(library: str, size: int = 2048, repeats: int = 5) -> float:
    """Best FLOP/s of ``repeats`` float32 size² matrix products by NumPy's, TensorFlow's or the
    scipy-openblas32 wheel's BLAS.

    Several libraries because any may be the fastest on a given host (module docstring).
    """
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    product: Callable[[], object] = lambda: a @ b  # noqa: E731
    if library == "tensorflow":
        import tensorflow as tf

        ta, tb = tf.constant(a), tf.constant(b)
        product = lambda: tf.matmul(ta, tb).numpy()  # noqa: E731 (.numpy() waits for it)
    elif library == "scipy-openblas32":
        product = _wheel_product(a, b)
    product()  # warm-up: BLAS threads start, pages fault in
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        product()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * size**3 / best


def _wheel_product(a: Any, b: Any) -> Callable[[], object]:
    """``a @ b`` (square, C-ordered float32) by the wheel's ``cblas_sgemm``, through ctypes."""
    import ctypes

    import numpy as np

    from trainers.pt_blas import NO_TRANS, ROW_MAJOR, cblas_sgemm

    sgemm = cblas_sgemm()
    assert sgemm is not None
    out = np.empty_like(a)
    n, one, zero = len(a), ctypes.c_float(1.0), ctypes.c_float(0.0)
    pa, pb, pc = (ctypes.c_void_p(m.ctypes.data) for m in (a, b, out))

    def product() -> Any:
        sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, n, n, n, one, pa, n, pb, n, zero, pc, n)
        return out

    return product


def flops_per_sample(sizes: tuple[int, ...]) -> float:
    """FLOPs of one SGD step per sample: forward, backward (weights; inputs but the first)."""
    fwd = sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    return 3 * fwd - 2 * sizes[0] * sizes[1]


LOOPS: dict[str, Callable[[Any, int, int, float], EpochFn]] = {
    "tf loop": tf_loop,
    "pytensor": pytensor_loop,
}
KERAS = "keras fit"
CONTESTANTS = ["tf loop", KERAS, "pytensor"]


# The GEMM children: their name and the library each times. The PyTensor step calls the
# scipy-openblas32 wheel's GEMM where it is installed (`trainers.pt_blas`): then that library's
# rate is a candidate for the bound too, or the bound would flatter PyTensor on a host where it
# is the fastest.
GEMMS = {"gemm": "numpy", "gemm tf": "tensorflow"}
if library_path() is not None:
    GEMMS["gemm wheel"] = "scipy-openblas32"


def child(name: str, args: argparse.Namespace) -> None:
    """One contestant in this process: warm up, say ``ready``, then one epoch per ``go``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    out = sys.stdout
    if name in GEMMS:
        run: Callable[[int], float] = lambda _epoch: gemm_rate(GEMMS[name])  # noqa: E731
        run(0)
    else:
        from trainers.data import load_mnist

        data = load_mnist(args.data_dir)
        if name == KERAS:  # its own loop drives the turns (keras_fit)
            keras_fit(data, args.hidden, args.batch_size, args.learning_rate, sys.stdin, out)
            return
        n = len(data.x_train)
        epoch_fn = LOOPS[name](data, args.hidden, args.batch_size, args.learning_rate)

        def run(epoch: int) -> float:
            t0 = time.perf_counter()
            epoch_fn(epoch)
            return n / (time.perf_counter() - t0)

        run(0)  # untimed warm-up epoch, alike for all (keras_fit's first epoch too)
    print("ready", file=out, flush=True)
    for line in sys.stdin:
        if not line.startswith("go"):
            break
        print(json.dumps({"value": run(int(line.split()[1]))}), file=out, flush=True)


class Child:
    """A contestant's process, driven over its stdin/stdout one line at a time."""

    def __init__(self, name: str, args: argparse.Namespace) -> None:
        argv = [sys.executable, "-m", "benchmarks.trainers", "--child", name]
        argv += ["--hidden", str(args.hidden), "--batch-size", str(args.batch_size)]
        argv += ["--learning-rate", str(args.learning_rate)]
        if args.data_dir is not None:
            argv += ["--data-dir", str(args.data_dir)]
        self.name = name
        self.proc = subprocess.Popen(
            argv, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def _line(self) -> str:
        stdout: IO[str] | None = self.proc.stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"contestant {self.name!r} died (exit {self.proc.wait()})")
        return line

    def wait_ready(self) -> None:
        while self._line().strip() != "ready":
            pass

    def epoch(self, epoch: int) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"go {epoch}\n")
        self.proc.stdin.flush()
        return float(json.loads(self._line())["value"])

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def measure(args: argparse.Namespace) -> dict[str, list[float]]:
    """samples/s of every timed epoch per contestant (and GEMM FLOP/s), taking turns by round.

    Children are started one at a time (their imports and compiles would otherwise compete)
    and each waits, blocked on its stdin, while the others run.
    """
    names = [*GEMMS, *CONTESTANTS]
    children: list[Child] = []
    try:
        for name in names:
            c = Child(name, args)
            children.append(c)
            c.wait_ready()
        values: dict[str, list[float]] = {name: [] for name in names}
        for epoch in range(1, args.epochs + 1):
            shift = (epoch - 1) % len(children)
            for c in children[shift:] + children[:shift]:
                time.sleep(args.pause)
                values[c.name].append(c.epoch(epoch))
        return values
    finally:
        for c in children:
            try:
                c.close()
            except (OSError, subprocess.TimeoutExpired):
                c.proc.kill()


def machine_line() -> str:
    from trainers.manifest import cpu_info, framework_versions

    cpu = cpu_info()
    v = framework_versions()
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    return (
        f"{cpu.get('model')}, {cpu.get('logical_cores')} logical cores "
        f"({len(os.sched_getaffinity(0))} usable); tensorflow-cpu {v.get('tensorflow-cpu')}, "
        f"pytensor {v.get('pytensor')}, numba {v.get('numba')}, numpy {v.get('numpy')}; "
        + (f"OPENBLAS_CORETYPE={coretype}" if coretype else "OPENBLAS_CORETYPE unset")
    )


ROWS = [
    (
        "tf loop",
        "TensorFlow: tf.Variable + backward written out, tf.function per epoch, "
        "a batch part per core",
    ),
    ("keras fit", "TensorFlow: keras.Sequential + model.fit"),
    (
        "pytensor",
        "PyTensor (theano): shared + grad + function(updates), Numba, every product to "
        "BLAS (the scipy-openblas32 wheel's where installed), a batch part per core",
    ),
]


def render(values: dict[str, list[float]], args: argparse.Namespace) -> str:
    med = {k: statistics.median(v) for k, v in values.items()}
    lib = max(GEMMS, key=lambda k: med[k])  # the faster BLAS on this host sets the bound
    gemm = med[lib]
    per_sample = flops_per_sample((784, args.hidden, 10))
    bound = gemm / per_sample
    best_bound = max(values[lib]) / per_sample  # the quietest moment, for the best epochs
    rates = ", ".join(
        f"{GEMMS[k]} {med[k] / 1e9:.1f} ({min(values[k]) / 1e9:.1f}..{max(values[k]) / 1e9:.1f})"
        for k in GEMMS
    )
    keras, tf = med["keras fit"], med["tf loop"]
    keras_best = max(values["keras fit"])
    lines = [
        SECTION,
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine_line()}. "
        f"Load average {args.load_before:.1f} before, {os.getloadavg()[0]:.1f} after (the "
        "machine is shared with other work: treat the figures as indicative).",
        f"Net 784-{args.hidden}-10, full MNIST (60,000 samples), batch {args.batch_size}, plain "
        f"SGD (lr {args.learning_rate}); median of {args.epochs} timed epochs after a warm-up "
        "epoch; **each contestant in its own process**, taking turns epoch by epoch. Command: "
        "`.venv/bin/python -m benchmarks.trainers`.",
        f"Bound: 2048² float32 GEMM measured in the same rounds, GFLOP/s median (min..max): "
        f"{rates}; the best, {GEMMS[lib]}'s {gemm / 1e9:.1f} GFLOP/s, over "
        f"{per_sample / 1e3:.1f}k FLOPs per sample = {bound:,.0f} samples/s.",
        "",
        "| contestant | what | samples/s (median) | min..max | vs Keras fit "
        "| vs Keras fit's fastest epoch | vs tf loop | of bound "
        "| best epoch of best GEMM's bound |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, what in ROWS:
        lo, hi = min(values[key]), max(values[key])
        lines.append(
            f"| {key} | {what} | {med[key]:,.0f} | {lo:,.0f}..{hi:,.0f} | "
            f"{med[key] / keras:.2f}x | {med[key] / keras_best:.2f}x | {med[key] / tf:.2f}x | "
            f"{med[key] / bound:.0%} | {hi / best_bound:.0%} |"
        )
    pt = med["pytensor"]
    goal = "met" if min(tf, pt) / bound >= 0.6 and min(tf, pt) / keras >= 2.7 else "not met"
    lines += [
        "",
        f"Our TensorFlow loop: {tf / keras:.2f}x Keras fit, {tf / bound:.0%} of the bound; "
        f"PyTensor: {pt / keras:.2f}x Keras fit, {pt / bound:.0%} of the bound "
        f"(goal: >= 2.7x and >= 60% for both: {goal}).",
        keras_reach(values["keras fit"], bound),
        "",
    ]
    return "\n".join(lines)


RATIO_GOAL = 2.7  # issue 18: each loop >= 2.7x Keras fit


def keras_reach(keras_epochs: list[float], bound: float) -> str:
    """Where the reference's epochs fall against the bound, and so whether the ratio goal can
    be met at all on this host.

    Keras ``fit`` epochs on one host are not one speed: on the 2-core AMD EPYC VM (2026-12-07)
    they ranged 18k-119k samples/s in one run, standalone as well as in the harness (the median
    step differed from epoch to epoch, 4.4-6.8 ms, and some epochs waited 0.45 s for their first
    batch). A median over a few of them lands anywhere between, and the ratio with it. A loop
    cannot beat the bound, so the ratio goal is out of reach wherever 2.7x Keras's fastest epoch
    is above it: that is said, not hidden behind a lucky median.
    """
    lo, hi = min(keras_epochs), max(keras_epochs)
    needed = RATIO_GOAL * hi / bound
    verdict = (
        "above the bound: no loop can be that fast against Keras fit's fast epochs on this host"
        if needed > 1.0
        else "within the bound"
    )
    return (
        f"Keras fit's epochs: {lo:,.0f}..{hi:,.0f} samples/s, {lo / bound:.0%}..{hi / bound:.0%} "
        f"of the bound; {RATIO_GOAL}x its fastest epoch is {needed:.0%} of the bound, {verdict}."
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=4, help="timed rounds (one epoch each)")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--hidden", type=int, default=300)
    p.add_argument("--learning-rate", type=float, default=0.1)
    p.add_argument("--pause", type=float, default=0.3, help="seconds between turns")
    p.add_argument("--data-dir", type=Path, default=SHARED_DATA if SHARED_DATA.is_dir() else None)
    p.add_argument("--results", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    p.add_argument("--no-results", action="store_true", help="print only; keep RESULTS.md")
    p.add_argument(
        "--skip-pca", action="store_true", help="only the MLP; benchmarks/pca.py runs PCA alone"
    )
    p.add_argument("--child", choices=[*GEMMS, *CONTESTANTS], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        from trainers.scratch import private_tempdir

        with private_tempdir():  # the frameworks' generated sources (trainers.scratch)
            child(args.child, args)
        return
    args.load_before = os.getloadavg()[0]
    values = measure(args)
    section = render(values, args)
    print(section)
    if not args.no_results:
        write_section(section, args.results)
        print(f"wrote {args.results}")
    if not args.skip_pca:
        # The trainers' other question (gradient PCA vs numpy eigh and scikit-learn, time and
        # peak memory) has its own script, since each method must run in its own process.
        cmd = [sys.executable, "-m", "benchmarks.pca"]
        if args.no_results:
            cmd.append("--no-results")
        subprocess.run(cmd, cwd=REPO, check=True)


if __name__ == "__main__":
    main()
