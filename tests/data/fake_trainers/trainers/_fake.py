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
        _mark_failed(task, rank)
        return 1
    if task and rank is not None and f"{task}@{rank}~" in planted:
        # Fails once another worker has failed, as a collective op does when a peer is gone.
        _wait_for_a_failed_peer(task, rank)
        print("error: a peer is gone", file=sys.stderr)
        return 1
    _meet(task)
    epoch_s = float(_setting("FAKE_EPOCH_S", "0"))
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


def _mark_failed(task: str, rank: str | None) -> None:
    """With ``FAKE_PEER_DIR``: leave ``<task>@<rank>.failed`` there, for peers planted ``~``."""
    where = os.environ.get("FAKE_PEER_DIR")
    if where and rank is not None:
        (Path(where) / f"{task}@{rank}.failed").write_text("")


def _wait_for_a_failed_peer(task: str, rank: str) -> None:
    where = Path(os.environ["FAKE_PEER_DIR"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(p.name != f"{task}@{rank}.failed" for p in where.glob(f"{task}@*.failed")):
            return
        time.sleep(0.01)


def _setting(name: str, default: str) -> str:
    """A ``FAKE_*`` setting from the environment, else from ``fake_env.json`` shipped beside
    this file: a task on an SSH host gets the engine's environment, not the test's."""
    if name in os.environ:
        return os.environ[name]
    shipped = Path(__file__).with_name("fake_env.json")
    if shipped.is_file():
        return str(json.loads(shipped.read_text()).get(name, default))
    return default


def _meet(task: str) -> None:
    """With ``FAKE_MEET_DIR`` and ``FAKE_MEET_N``: sign in there and wait (up to a minute) until
    N tasks have signed in, so a test of spreading work over machines does not depend on how
    fast each machine comes up (a fast one could otherwise run every task alone)."""
    where = _setting("FAKE_MEET_DIR", "")
    if not where:
        return
    meet = Path(where)
    meet.mkdir(parents=True, exist_ok=True)
    (meet / (task or str(os.getpid()))).touch()
    deadline = time.monotonic() + 60
    while len(list(meet.iterdir())) < int(_setting("FAKE_MEET_N", "2")):
        if time.monotonic() > deadline:
            return
        time.sleep(0.02)
