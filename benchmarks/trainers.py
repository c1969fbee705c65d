"""MLP training throughput: our hand-written loops against Keras ``model.fit``, side by side.

Run from the repository root (as a module: run as a file, this name would shadow the
``trainers`` package)::

    .venv/bin/python -m benchmarks.trainers [--epochs 4] [--batch-size 500] [--no-results]

Same net (784-300-10 ReLU, softmax cross-entropy), same data (full MNIST, 60,000 samples), same
batch and the same plain SGD rule for all three contestants:

1. ``tf loop``: `trainers.tf_mlp.TfMlp` (tf.Variable + GradientTape, one tf.function per epoch);
2. ``keras fit``: `keras.Sequential` of two Dense layers, ``SGD`` optimizer, ``model.fit``;
3. ``pytensor``: `trainers.pt_mlp.PtMlp` (shared variables, grad, function(updates=...), Numba).

Each is compiled/warmed first, then timed for ``--epochs`` epochs; the figure is the median
epoch's samples/s (training only, no evaluation). Contestants take turns epoch by epoch, so a
burst of load from elsewhere on the machine hits all of them alike.

Writes the section "## Trainers: MLP throughput" of benchmarks/RESULTS.md (other sections kept),
then runs ``benchmarks.pca`` (gradient PCA vs numpy/scikit-learn; ``--skip-pca`` to leave it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._results import write_section

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


def keras_fit(data: Any, hidden: int, batch: int, lr: float) -> EpochFn:
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
    # One warm-up epoch traces and compiles the train function, as the loops' compile() does.
    model.fit(x, y, batch_size=batch, epochs=1, shuffle=True, verbose=0)

    def run_epoch(epoch: int) -> None:
        model.fit(x, y, batch_size=batch, epochs=1, shuffle=True, verbose=0)

    return run_epoch


def measure(contestants: dict[str, EpochFn], n: int, epochs: int) -> dict[str, list[float]]:
    """samples/s of every epoch of every contestant, taking turns epoch by epoch."""
    rates: dict[str, list[float]] = {name: [] for name in contestants}
    for epoch in range(1, epochs + 1):
        for name, run_epoch in contestants.items():
            t0 = time.perf_counter()
            run_epoch(epoch)
            rates[name].append(n / (time.perf_counter() - t0))
    return rates


def machine_line() -> str:
    from trainers.manifest import cpu_info, framework_versions

    cpu = cpu_info()
    v = framework_versions()
    return (
        f"{cpu.get('model')}, {cpu.get('logical_cores')} logical cores "
        f"({len(os.sched_getaffinity(0))} usable); tensorflow-cpu {v.get('tensorflow-cpu')}, "
        f"pytensor {v.get('pytensor')}, numba {v.get('numba')}, numpy {v.get('numpy')}"
    )


def render(rates: dict[str, list[float]], args: argparse.Namespace) -> str:
    med = {k: statistics.median(v) for k, v in rates.items()}
    keras = med["keras fit"]
    tf = med["tf loop"]
    rows = [
        ("tf loop", "TensorFlow: tf.Variable + GradientTape, tf.function per epoch"),
        ("keras fit", "TensorFlow: keras.Sequential + model.fit"),
        ("pytensor", "PyTensor (theano): shared + grad + function(updates), Numba"),
    ]
    lines = [
        SECTION,
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine_line()}. "
        f"Load average {args.load_before:.1f} before, {os.getloadavg()[0]:.1f} after (the "
        "machine is shared with other work: treat the figures as indicative).",
        f"Net 784-{args.hidden}-10, full MNIST (60,000 samples), batch {args.batch_size}, plain "
        f"SGD (lr {args.learning_rate}); median of {args.epochs} timed epochs after a warm-up, "
        "contestants taking turns. Command: `.venv/bin/python -m benchmarks.trainers`.",
        "",
        "| contestant | what | samples/s (median) | min..max | vs Keras fit | vs tf loop |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for key, what in rows:
        lo, hi = min(rates[key]), max(rates[key])
        lines.append(
            f"| {key} | {what} | {med[key]:,.0f} | {lo:,.0f}..{hi:,.0f} | "
            f"{med[key] / keras:.2f}x | {med[key] / tf:.2f}x |"
        )
    lines += [
        "",
        f"Our TensorFlow loop runs at {tf / keras:.2f}x Keras fit; PyTensor at "
        f"{med['pytensor'] / tf:.2f}x our TensorFlow loop.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--hidden", type=int, default=300)
    p.add_argument("--learning-rate", type=float, default=0.1)
    p.add_argument("--data-dir", type=Path, default=SHARED_DATA if SHARED_DATA.is_dir() else None)
    p.add_argument("--results", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    p.add_argument("--no-results", action="store_true", help="print only; keep RESULTS.md")
    p.add_argument(
        "--skip-pca", action="store_true", help="only the MLP; benchmarks/pca.py runs PCA alone"
    )
    args = p.parse_args()
    args.load_before = os.getloadavg()[0]

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from trainers.data import load_mnist

    data = load_mnist(args.data_dir)
    shape = (data, args.hidden, args.batch_size, args.learning_rate)
    contestants = {
        "tf loop": tf_loop(*shape),
        "keras fit": keras_fit(*shape),
        "pytensor": pytensor_loop(*shape),
    }
    rates = measure(contestants, len(data.x_train), args.epochs)
    section = render(rates, args)
    print(section)
    if not args.no_results:
        write_section(section, args.results)
        print(f"wrote {args.results}")
    if not args.skip_pca:
        # The trainers' other question (gradient PCA vs numpy eigh and scikit-learn, time and
        # peak memory) has its own script, since each method must run in its own process.
        import subprocess
        import sys

        cmd = [sys.executable, "-m", "benchmarks.pca"]
        if args.no_results:
            cmd.append("--no-results")
        subprocess.run(cmd, cwd=REPO, check=True)


if __name__ == "__main__":
    main()
