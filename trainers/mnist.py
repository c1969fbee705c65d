"""``python -m trainers.mnist``: train the MNIST MLP with one optimizer in one framework.

    python -m trainers.mnist --framework tensorflow|theano --device cpu|gpu --optimizer NAME \\
        --epochs N --batch-size B --hidden 300 [--hidden 100 ...] --out OUTDIR [...]

Writes OUTDIR/timing.jsonl (as it goes), OUTDIR/manifest.json (at the start) and
OUTDIR/metrics.json (at the end). Exit codes: 0 ok, 2 bad input, 3 GPU asked for and none
usable, 75 preempted by SIGUSR1 (a spot interruption, sent by ``trainers.measure``), 143
stopped by SIGTERM and 130 by Ctrl-C. A signal stops the run once the epoch in progress is
finished and saved, after the log's ``end`` row (status ``preempted`` or ``stopped``) and
without metrics.json; a ``--checkpoint-dir`` run started again resumes at the next epoch.

TensorFlow and PyTensor are imported only once the arguments are known to be good and the
device is chosen, so ``--help`` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from trainers.errors import PREEMPT_SIGNAL, BadArgument, Stopped, TrainerError
from trainers.mlp import MnistConfig
from trainers.optim.config import OPTIMIZERS, make_optim

FRAMEWORKS = ("tensorflow", "theano")
DEVICES = ("cpu", "gpu")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints the usage and exits 2; the contract wants one line, so raise instead.
        raise BadArgument(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m trainers.mnist", description=__doc__.split("\n\n")[0])
    p.add_argument("--framework", required=True, choices=FRAMEWORKS)
    p.add_argument("--device", default="cpu", choices=DEVICES)
    p.add_argument("--optimizer", required=True, help=f"one of {', '.join(OPTIMIZERS)}")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=500, help="ignored by gd (all) and sgd (1)")
    p.add_argument(
        "--hidden", type=int, action="append", help="units of a hidden layer; repeat (default 300)"
    )
    hyper = p.add_argument_group("hyper-parameters (default: the optimizer's own)")
    for flag in ("learning-rate", "momentum", "decay", "epsilon", "beta1", "beta2"):
        hyper.add_argument(f"--{flag}", type=float, default=None)
    p.add_argument("--out", type=Path, required=True, help="folder for timing/metrics/manifest")
    p.add_argument("--data-dir", type=Path, default=None, help="folder holding mnist.npz")
    p.add_argument("--cache-dir", type=Path, default=None, help="where fetched MNIST is kept")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--subset", type=int, default=None, help="train on the first N samples")
    p.add_argument("--checkpoint-dir", type=Path, default=None, help="save/resume each epoch")
    p.add_argument("--allow-cpu-fallback", action="store_true", help="gpu missing: use the CPU")
    return p


def parse_config(argv: Sequence[str]) -> MnistConfig:
    """Arguments -> a checked `MnistConfig`; raises `BadArgument` on the first bad one."""
    a = build_parser().parse_args(list(argv))
    optim = make_optim(
        a.optimizer,
        learning_rate=a.learning_rate,
        momentum=a.momentum,
        decay=a.decay,
        epsilon=a.epsilon,
        beta1=a.beta1,
        beta2=a.beta2,
    )
    hidden = tuple(a.hidden) if a.hidden else (300,)
    for name, value, low in (("epochs", a.epochs, 1), ("batch-size", a.batch_size, 1)):
        if value < low:
            raise BadArgument(f"--{name} must be >= {low}, got {value}")
    if any(h < 1 for h in hidden):
        raise BadArgument(f"--hidden sizes must be >= 1, got {list(hidden)}")
    if a.subset is not None and a.subset < 1:
        raise BadArgument(f"--subset must be >= 1, got {a.subset}")
    if a.out.exists() and not a.out.is_dir():
        raise BadArgument(f"--out {a.out} exists and is not a folder")
    return MnistConfig(
        framework=a.framework,
        device=a.device,
        optim=optim,
        epochs=a.epochs,
        batch_size=a.batch_size,
        hidden=hidden,
        out=a.out,
        seed=a.seed,
        subset=a.subset,
        data_dir=a.data_dir,
        cache_dir=a.cache_dir,
        checkpoint_dir=a.checkpoint_dir,
        allow_cpu_fallback=a.allow_cpu_fallback,
    )


def run(cfg: MnistConfig, stop_signal: Callable[[], int | None] = lambda: None) -> dict[str, Any]:
    """Choose the device, load the data, train, and write the three output files.

    `stop_signal` is polled between epochs (see `trainers.mlp_run.run_training`). When
    ``TF_CONFIG`` names several workers this process is one of them (`trainers.tf_workers`).
    The frameworks' generated sources go to a folder removed at the end (`trainers.scratch`).
    """
    from trainers.scratch import private_tempdir

    with private_tempdir():
        return _run(cfg, stop_signal)


def _run(cfg: MnistConfig, stop_signal: Callable[[], int | None]) -> dict[str, Any]:
    from trainers.cluster import cluster_from_env
    from trainers.data import load_mnist
    from trainers.device import choose_device
    from trainers.manifest import write_manifest
    from trainers.mlp_run import run_training
    from trainers.timing import TimingLog

    started = time.time()
    cluster = cluster_from_env()
    device = choose_device(cfg.framework, cfg.device, allow_cpu_fallback=cfg.allow_cpu_fallback)
    data = load_mnist(cfg.data_dir, cache_dir=cfg.cache_dir, subset=cfg.subset)
    cfg.out.mkdir(parents=True, exist_ok=True)
    write_manifest(
        cfg.out,
        framework=cfg.framework,
        device_used=device.used if device.used == "cpu" else f"gpu:0 ({device.name})",
        extra={
            "device_requested": device.requested,
            "device_fallback_reason": device.reason or None,
            "data_source": data.source,
            "optimizer": cfg.optim.__dict__,
            "workers": cluster.size if cluster else 1,
            "worker_index": cluster.index if cluster else 0,
            "worker_hosts": cluster.hosts if cluster else None,
        },
        started_at=started,
    )
    with TimingLog(cfg.out / "timing.jsonl") as log:
        try:
            metrics = run_training(cfg, device, data, log, stop_signal, cluster)
        except Stopped as stop:
            log.end(status=stop.status, signal=str(stop))
            raise
        except TrainerError as exc:
            log.end(status="error", error=str(exc))
            raise
    _write_json(cfg.out / "metrics.json", metrics)
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    """The process entry: returns the exit code; errors are one line on stderr."""

    received: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        # Only note it: the loop stops after the epoch in progress (see run_training rule 4).
        received.append(signum)

    stops = (signal.SIGTERM, signal.SIGINT, PREEMPT_SIGNAL)
    previous = {s: signal.signal(s, note) for s in stops}
    try:
        cfg = parse_config(sys.argv[1:] if argv is None else argv)
        metrics = run(cfg, lambda: received[0] if received else None)
    except TrainerError as exc:
        print(f"trainers.mnist: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Stopped as exc:
        if exc.preempted:
            print(f"trainers.mnist: preempted ({exc}): finished epochs are saved", file=sys.stderr)
        else:
            print(f"trainers.mnist: stopped by {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    print(
        f"{metrics['framework']}/{metrics['optimizer']} on {metrics['device']}: "
        f"test error {metrics['test_error']:.4f}, {metrics['samples_per_s']:.0f} samples/s"
    )
    return 0


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
