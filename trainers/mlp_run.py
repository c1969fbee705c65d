"""The epoch loop shared by both frameworks: timing rows, checkpoints, resume, final metrics.

Framework code stops at `trainers.mlp.MlpModel`; everything a run records is done here once, so
TensorFlow and PyTensor runs are timed and logged identically and their numbers compare.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from trainers.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from trainers.cluster import Cluster
from trainers.device import DeviceChoice
from trainers.errors import BadArgument, Stopped
from trainers.mlp import MlpModel, MnistConfig, MnistMetrics, epoch_order, init_params
from trainers.optim.config import batch_size_for
from trainers.timing import TimingLog, read_timing


def fingerprint(cfg: MnistConfig, n_train: int) -> str:
    """What a checkpoint must match to be resumed: everything that shapes the weights."""
    key = {
        "framework": cfg.framework,
        "sizes": cfg.sizes,
        "optim": cfg.optim.__dict__,
        "batch": batch_size_for(cfg.optim.name, cfg.batch_size, n_train),
        "seed": cfg.seed,
        "n_train": n_train,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def build_model(
    cfg: MnistConfig, device: DeviceChoice, data: Any, cluster: Cluster | None = None
) -> MlpModel:
    """The framework's MLP with the seed's initial weights and the data on its device; with a
    `cluster` of several workers, TensorFlow's multi-worker one (`trainers.tf_workers`)."""
    batch = batch_size_for(cfg.optim.name, cfg.batch_size, len(data.x_train))
    params = init_params(cfg.sizes, cfg.seed)
    args = (cfg.optim, params, data.x_train, data.y_train, data.x_test, data.y_test)
    if cluster is not None:
        if cfg.framework != "tensorflow":
            raise BadArgument(f"{cluster.size} workers need TensorFlow: {cfg.framework} has none")
        from trainers.tf_workers import TfMlpWorkers

        return TfMlpWorkers(*args, batch_size=batch, cluster=cluster, device=device.used)
    if cfg.framework == "tensorflow":
        from trainers.tf_mlp import TfMlp

        return TfMlp(*args, batch_size=batch, device=device.used)
    from trainers.pt_mlp import PtMlp

    return PtMlp(*args, batch_size=batch, device=device.used)


def run_training(
    cfg: MnistConfig,
    device: DeviceChoice,
    data: Any,
    log: TimingLog,
    stop_signal: Callable[[], int | None] = lambda: None,
    cluster: Cluster | None = None,
) -> dict[str, Any]:
    """Train for ``cfg.epochs`` epochs (fewer when resuming) and return metrics.json's content.

    Rules:
    1. Rows go to `log` as they happen: start, compile, one per epoch, end.
    2. With ``cfg.checkpoint_dir`` the state is saved after every epoch, before its row is
       written; a later run with the same fingerprint resumes after the last saved epoch and its
       metrics cover every epoch, the earlier process's included.
    3. Epoch wall time covers training only; the test-error pass is timed apart (``eval_s``).
    4. `stop_signal` is asked after every epoch (and before the first); when it returns a
       signal number the run raises `Stopped` with the finished epochs saved and logged. It is
       polled, never raised from a signal handler: an exception thrown into Numba- or
       TensorFlow-compiled code while it runs surfaces as a SystemError, not as itself.
       `PREEMPT_SIGNAL` (SIGUSR1, a spot interruption) stops the same way; the caller ends
       the log with status ``preempted`` and exits `PREEMPTED_EXIT_CODE` (`trainers.errors`).
    5. With a `cluster` of several workers, only the chief (worker 0) reads and writes the
       checkpoint; every worker then takes the chief's state and epoch count, so all resume
       from the same epoch with the same weights (`trainers.tf_workers`, rule 3).
    """
    chief = cluster is None or cluster.is_chief
    n_train = len(data.x_train)
    batch = batch_size_for(cfg.optim.name, cfg.batch_size, n_train)
    key = fingerprint(cfg, n_train)
    ckpt = load_checkpoint(cfg.checkpoint_dir, key) if cfg.checkpoint_dir and chief else None
    history: list[dict[str, Any]] = list(ckpt.history) if ckpt else []
    t0 = time.perf_counter()
    model = build_model(cfg, device, data, cluster)  # first: it may start the workers' runtime
    build_s = time.perf_counter() - t0
    if ckpt is not None:
        model.set_state(ckpt.params, ckpt.slots, ckpt.t)
    done = ckpt.epoch if ckpt else 0
    if cluster is not None:
        from trainers.tf_workers import TfMlpWorkers

        assert isinstance(model, TfMlpWorkers)
        done = model.adopt_chief_state(done)
    log.start(
        trainer="mnist",
        framework=cfg.framework,
        device=device.used,
        device_requested=device.requested,
        optimizer=cfg.optim.name,
        epochs=cfg.epochs,
        batch_size=batch,
        hidden=list(cfg.hidden),
        n_train=n_train,
        n_test=len(data.x_test),
        resumed_from_epoch=done,
        workers=cluster.size if cluster else 1,
        worker_index=cluster.index if cluster else 0,
    )
    first_call_s = model.compile()
    compile_s = build_s + first_call_s
    log.compile(compile_s, build_s=build_s, first_call_s=first_call_s)
    if ckpt is not None:
        _log_missing_epochs(log, history)

    for epoch in range(done + 1, cfg.epochs + 1):
        if (signum := stop_signal()) is not None:
            raise Stopped(signum)
        order = epoch_order(cfg.seed, epoch, n_train)
        t0 = time.perf_counter()
        loss = model.train_epoch(order)
        wall_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        error = model.error()
        eval_s = time.perf_counter() - t0
        row: dict[str, Any] = {
            "epoch": epoch,
            "wall_s": wall_s,
            "samples_per_s": n_train / wall_s,
            "loss": loss,
            "error": error,
            "eval_s": eval_s,
        }
        history.append(row)
        if cfg.checkpoint_dir is not None and chief:
            params, slots, t = model.get_state()
            save_checkpoint(cfg.checkpoint_dir, Checkpoint(epoch, key, params, slots, t, history))
        log.epoch(
            epoch,
            wall_s=wall_s,
            samples_per_s=n_train / wall_s,
            loss=loss,
            error=error,
            eval_s=eval_s,
        )
        # One plain line per epoch: what `orchestrate run` shows as the task's progress.
        print(
            f"epoch {epoch}/{cfg.epochs}: loss {loss:.4f}, error {error:.4f}, "
            f"{n_train / wall_s:,.0f} samples/s",
            flush=True,
        )

    metrics = _metrics(cfg, device, batch, history, compile_s, done)
    metrics["workers"] = cluster.size if cluster else 1
    log.end(
        status="ok",
        test_error=metrics["test_error"],
        final_loss=metrics["final_loss"],
        train_time_s=metrics["train_time_s"],
    )
    return metrics


def _log_missing_epochs(log: TimingLog, history: list[dict[str, Any]]) -> None:
    """Write the rows a killed run saved in its checkpoint but did not live to log.

    The state is saved before the row is written, so a kill between the two leaves the log one
    epoch short; the row is rebuilt from the checkpoint's history and marked ``restored``.
    """
    logged = {r.get("epoch") for r in read_timing(log.path) if r.get("event") == "epoch"}
    for row in history:
        if row["epoch"] not in logged:
            log.epoch(**row, restored=True)


def _metrics(
    cfg: MnistConfig,
    device: DeviceChoice,
    batch: int,
    history: list[dict[str, Any]],
    compile_s: float,
    resumed_from: int,
) -> dict[str, Any]:
    last = history[-1] if history else {}
    result = MnistMetrics(
        test_error=float(last.get("error", math.nan)),
        final_loss=float(last.get("loss", math.nan)),
        train_time_s=float(sum(r["wall_s"] for r in history)),
        compile_time_s=compile_s,
        samples_per_s=float(np.mean([r["samples_per_s"] for r in history])) if history else 0.0,
        epochs_run=len(history) - resumed_from,
        resumed_from_epoch=resumed_from,
    )
    o = cfg.optim
    return {
        "trainer": "mnist",
        "framework": cfg.framework,
        "optimizer": o.name,
        "device": device.used,
        "device_requested": device.requested,
        "device_name": device.name,
        "epochs": len(history),
        "hidden": list(cfg.hidden),
        "batch_size": batch,
        "learning_rate": o.learning_rate,
        "hyper": {
            "momentum": o.momentum,
            "decay": o.decay,
            "epsilon": o.epsilon,
            "beta1": o.beta1,
            "beta2": o.beta2,
        },
        "seed": cfg.seed,
        **result.__dict__,
        "history": history,
    }
