from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def main(trainer: str) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--framework")
    p.add_argument("--device")
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--checkpoint-dir")
    args, _ = p.parse_known_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    task = os.environ.get("ORCHESTRATE_TASK", "")
    # A GPU task is given a device by the engine (CUDA_VISIBLE_DEVICES=<index>); the stand-in
    # "has" it then. Nothing here touches a GPU.
    if args.device == "gpu" and not os.environ.get("CUDA_VISIBLE_DEVICES"):
        print("error: --device gpu asked for but no GPU is usable", file=sys.stderr)
        return 3
    # A gang's worker (ORCHESTRATE_NODE_RANK) fails alone when planted as ``task@rank``.
    rank = os.environ.get("ORCHESTRATE_NODE_RANK")
    planted = os.environ.get("FAKE_FAIL_TASKS", "").split(",")
    if task and (task in planted or (rank is not None and f"{task}@{rank}" in planted)):
        print("error: planted failure", file=sys.stderr)
        return 1
    epoch_s = float(os.environ.get("FAKE_EPOCH_S", "0"))
    start = 0
    ckpt = Path(args.checkpoint_dir) / "epoch" if args.checkpoint_dir else None
    if ckpt and ckpt.exists():
        start = int(ckpt.read_text())
    with open(out / "timing.jsonl", "a") as log:
        log.write(json.dumps({"event": "start", "t": time.time()}) + "\n")
        for epoch in range(start + 1, args.epochs + 1):
            time.sleep(epoch_s)
            row = {
                "event": "epoch",
                "epoch": epoch,
                "wall_s": epoch_s,
                "samples_per_s": 1000.0,
                "loss": 1.0 / epoch,
                "error": 0.1 / epoch,
                "t": time.time(),
            }
            log.write(json.dumps(row) + "\n")
            log.flush()
            print(f"epoch {epoch}/{args.epochs} loss {1.0 / epoch:.3f}", flush=True)
            if ckpt:
                ckpt.parent.mkdir(parents=True, exist_ok=True)
                ckpt.write_text(str(epoch))
        log.write(json.dumps({"event": "end", "t": time.time()}) + "\n")
    metrics = {"trainer": trainer, "test_error": 0.1 / args.epochs, "samples_per_s": 1000.0}
    (out / "metrics.json").write_text(json.dumps(metrics))
    manifest = {"device_used": args.device, "pid": os.getpid(), "node_rank": rank}
    (out / "manifest.json").write_text(json.dumps(manifest))
    return 0
