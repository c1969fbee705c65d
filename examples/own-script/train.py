"""A user's own training script: softmax regression in plain NumPy on synthetic data.

It knows nothing of orchestrate except two optional conveniences: it writes its results to
``--out`` (the engine passes ``$ORCHESTRATE_OUT``), and, where ``trainers.timing`` can be
imported (orchestrate ships it), it logs per-epoch rows in the trainers' ``timing.jsonl``
schema so the report can plot it beside the built-in trainers.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

try:
    from trainers.timing import TimingLog
except ImportError:  # run by hand, outside orchestrate
    TimingLog = None


def make_data(seed: int = 0, n: int = 6000, d: int = 20, k: int = 4):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=0.35, size=(k, d))
    y = rng.integers(0, k, size=n)
    x = centres[y] + rng.normal(size=(n, d))
    return x[:5000], y[:5000], x[5000:], y[5000:]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    xtr, ytr, xte, yte = make_data()
    k = int(ytr.max()) + 1
    w = np.zeros((xtr.shape[1], k))
    b = np.zeros(k)
    log = TimingLog(out / "timing.jsonl") if TimingLog else None
    if log:
        log.start(framework="numpy", lr=args.lr, batch=args.batch)
    rng = np.random.default_rng(1)
    t_all = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        order = rng.permutation(len(xtr))
        loss = 0.0
        for i in range(0, len(order), args.batch):
            idx = order[i : i + args.batch]
            logits = xtr[idx] @ w + b
            logits -= logits.max(axis=1, keepdims=True)
            prob = np.exp(logits)
            prob /= prob.sum(axis=1, keepdims=True)
            loss -= float(np.log(prob[np.arange(len(idx)), ytr[idx]] + 1e-12).sum())
            prob[np.arange(len(idx)), ytr[idx]] -= 1
            w -= args.lr * xtr[idx].T @ prob / len(idx)
            b -= args.lr * prob.mean(axis=0)
        wall = time.perf_counter() - t0
        error = float(np.mean(np.argmax(xte @ w + b, axis=1) != yte))
        print(
            f"epoch {epoch}/{args.epochs} loss {loss / len(xtr):.4f} error {error:.4f}", flush=True
        )
        if log:
            log.epoch(
                epoch, wall_s=wall, samples_per_s=len(xtr) / wall, loss=loss / len(xtr), error=error
            )
    ckpt = Path("checkpoints")
    ckpt.mkdir(exist_ok=True)
    np.savez(ckpt / f"model-lr{args.lr}-b{args.batch}.npz", w=w, b=b)
    metrics = {
        "trainer": "softmax-numpy",
        "test_error": error,
        "final_loss": loss / len(xtr),
        "train_time_s": time.perf_counter() - t_all,
        "lr": args.lr,
        "batch": args.batch,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if log:
        log.end(test_error=error)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
