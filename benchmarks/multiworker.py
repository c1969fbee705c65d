"""MNIST MLP samples/s with 1 worker vs 2 MultiWorkerMirroredStrategy workers on loopback.

    .venv/bin/python -m benchmarks.multiworker [--rounds 3] [--epochs 3] [--no-results]

Each contestant is a fresh set of ``python -m trainers.mnist`` processes (the 2-worker one two
processes, each with its own ``TF_CONFIG`` naming 127.0.0.1 and a free port), rounds
alternating. The figure is the trainer's own: mean over epochs of n_train / epoch wall time
(compile and start-up excluded), from the chief's metrics.json. Both contestants get the
machine's cores: one worker all of them, two workers half each (the thread pools pinned as the
orchestrator pins a slot's), so the 2-worker figure shows what the all-reduce costs when the
hardware does not grow. Scaling efficiency = samples/s(2) / (2 x samples/s(1)).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._results import machine, write_section
from infra.local import thread_env
from tests.mnist_data import MNIST_DIR

REPO = Path(__file__).resolve().parents[1]
HEADING = "## Multi-node: 1 vs 2 workers on loopback (issue 19)"


def _ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def run_once(workers: int, args: argparse.Namespace, tmp: Path) -> float:
    """One contestant's run; returns the chief's mean samples/s."""
    cores = os.cpu_count() or 1
    argv = [
        sys.executable, "-m", "trainers.mnist", "--framework", "tensorflow",
        "--optimizer", "momentum", "--epochs", str(args.epochs), "--batch-size",
        str(args.batch_size), "--data-dir", str(MNIST_DIR), "--seed", "0",
    ]  # fmt: skip
    cluster = [f"127.0.0.1:{p}" for p in _ports(workers)]
    procs = []
    for i in range(workers):
        env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
        env.update(thread_env(max(cores // workers, 1)))
        env.pop("TF_CONFIG", None)
        if workers > 1:
            env["TF_CONFIG"] = json.dumps(
                {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": i}}
            )
        out = tmp / f"w{workers}-{i}-{time.monotonic_ns()}"
        procs.append((out, subprocess.Popen([*argv, "--out", str(out)], cwd=REPO, env=env)))
    for _, p in procs:
        if p.wait(timeout=900) != 0:
            raise SystemExit(f"a {workers}-worker run failed ({p.returncode})")
    metrics = json.loads((procs[0][0] / "metrics.json").read_text())
    assert metrics["workers"] == workers
    return float(metrics["samples_per_s"])


def main() -> None:
    """Measure, print the section, and write it to RESULTS.md unless --no-results."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--no-results", action="store_true")
    args = p.parse_args()
    before = machine()
    values: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for workers in (1, 2) if r % 2 == 0 else (2, 1):
                values[workers].append(run_once(workers, args, Path(tmp)))
                print(f"round {r + 1}: {workers} worker(s): {values[workers][-1]:,.0f} samples/s")
    one, two = (statistics.median(values[w]) for w in (1, 2))
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    section = "\n".join(
        [
            HEADING,
            "",
            f"Run {stamp} by `benchmarks/multiworker.py` on {before} (after: {machine()}). "
            f"MNIST MLP 784-300-10, full training set (60,000), momentum, global batch "
            f"{args.batch_size}, {args.epochs} epochs, tensorflow-cpu; each contestant its own "
            f"processes, {args.rounds} rounds alternating, median shown. Throughput is the "
            "trainer's own (n_train / epoch wall time, start-up and compile excluded).",
            "",
            "| workers | samples/s (median) | runs | threads each |",
            "|---|---|---|---|",
            *(
                f"| {w} | {statistics.median(values[w]):,.0f} | "
                f"{', '.join(f'{v:,.0f}' for v in values[w])} | "
                f"{max((os.cpu_count() or 1) // w, 1)} |"
                for w in (1, 2)
            ),
            "",
            f"Scaling efficiency: {two:,.0f} / (2 x {one:,.0f}) = **{two / (2 * one):.2f}** "
            f"(speed-up {two / one:.2f}x). Both contestants share this machine's "
            f"{os.cpu_count()} cores, so two workers get no more arithmetic than one: the figure "
            "is the price of the per-step gradient all-reduce over gRPC on loopback, the "
            "floor a real second machine starts from. A multi-GPU device machine was not "
            "measured here.",
        ]
    )
    print(section)
    if not args.no_results:
        write_section(section)


if __name__ == "__main__":
    main()
