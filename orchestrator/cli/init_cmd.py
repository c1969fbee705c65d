"""``orchestrate init``: a commented starter experiment for the current directory."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from orchestrator.errors import OrchestrateError

_TEMPLATE = """\
# {name}: an orchestrate experiment. Check it with `orchestrate plan {file}`,
# try it here with `orchestrate run {file} --local`, then run it where `provider:` says.
name: {name}
provider: local              # local | ssh (add hosts:) | aws (add machines:, region:, ssh_cidr:)

budget:
  max_usd: 5.00              # plan refuses more, the guard stops at it, instances self-destruct
  max_hours: 2               # per machine

workdir: .                   # shipped to each machine; .gitignore and .orchestrateignore apply;
                             # files like .env or *.pem are refused unless listed in ship_secrets:

jobs:
  - name: {job}
{setup}    run: python {script} --lr {{lr}} --out $ORCHESTRATE_OUT
    params:                  # each list is a matrix axis: 2 values -> 2 tasks
      lr: [0.1, 0.01]
    device: [cpu]            # add gpu for GPU variants (one GPU task per GPU at a time)
    outputs: []              # globs under workdir to pull back besides $ORCHESTRATE_OUT

  # The built-in trainers, for comparison (remove if not wanted):
  # - trainer: mnist
  #   framework: [tensorflow, theano]
  #   optimizer: [momentum, adam]
  #   epochs: 2

# Environment each command gets: ORCHESTRATE_OUT (its results dir, pulled back),
# ORCHESTRATE_TASK, ORCHESTRATE_RUN, ORCHESTRATE_PARAMS (JSON), CUDA_VISIBLE_DEVICES.
# `from trainers.timing import TimingLog` gives per-epoch rows the report can plot.
"""


# Written when the folder has no train*.py / main*.py, so the starter runs as it is: a fit of
# y = 3x + 1 by gradient descent (stdlib only), one timing row per epoch, metrics at the end.
_TRAIN_PY = """\
\"\"\"A starter training script: replace the model, keep the contract.

orchestrate runs it as `python train.py --lr LR --out $ORCHESTRATE_OUT`; whatever it writes
under --out comes back to runs/<run-id>/<task-id>/.
\"\"\"

import argparse
import json
import random
import time
from pathlib import Path

try:  # per-epoch rows the report can plot; shipped with orchestrate's trainers
    from trainers.timing import TimingLog
except ImportError:  # run by hand, without orchestrate
    TimingLog = None


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--out", default="out")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    data = [(x, 3 * x + 1 + rng.gauss(0, 0.1)) for x in (rng.uniform(-1, 1) for _ in range(1000))]
    w = b = 0.0
    log = TimingLog(out / "timing.jsonl") if TimingLog else None
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        gw = sum(2 * (w * x + b - y) * x for x, y in data) / len(data)
        gb = sum(2 * (w * x + b - y) for x, y in data) / len(data)
        w, b = w - args.lr * gw, b - args.lr * gb
        loss = sum((w * x + b - y) ** 2 for x, y in data) / len(data)
        wall = time.perf_counter() - t0
        print(f"epoch {epoch}/{args.epochs}: loss {loss:.4f}", flush=True)
        if log:
            log.epoch(epoch, wall_s=wall, samples_per_s=len(data) / wall, loss=loss)
    (out / "metrics.json").write_text(json.dumps({"w": w, "b": b, "final_loss": loss}))


if __name__ == "__main__":
    main()
"""

# Results and caches stay out of the shipped workdir (old runs were sent with every run).
_IGNORE = "runs/\n__pycache__/\n*.pyc\n.venv/\n"


class AlreadyExists(OrchestrateError):
    exit_code = 2


def cmd_init(args: argparse.Namespace) -> int:
    """Write a commented starter experiment file here (over an existing one only with --force)."""
    here = Path(args.directory).resolve()
    target = here / args.file
    if target.exists() and not args.force:
        raise AlreadyExists(f"{target} exists; pass --force to overwrite it")
    scripts = sorted(p.name for p in here.glob("*.py") if p.name.startswith(("train", "main")))
    script = scripts[0] if scripts else "train.py"
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", here.name).strip("-.") or "experiment"
    setup = ""
    if (here / "requirements.txt").exists():
        setup = "    setup: pip install -q -r requirements.txt   # once per machine\n"
    target.write_text(
        _TEMPLATE.format(name=name, file=args.file, job="train", script=script, setup=setup)
    )
    written = [target.name]
    if not scripts and not (here / script).exists():
        (here / script).write_text(_TRAIN_PY)
        written.append(script)
    ignore = here / ".orchestrateignore"
    lines = ignore.read_text().splitlines() if ignore.exists() else []
    if "runs/" not in lines:
        ignore.write_text("\n".join([*lines, *_IGNORE.splitlines()]) + "\n")
        written.append(ignore.name)
    print(f"wrote {', '.join(written)} in {here}; next: orchestrate plan {args.file}")
    return 0


def add_init_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    """Register ``init``."""
    p = sub.add_parser("init", parents=[common], help="write a starter experiment.yaml here")
    p.add_argument("--file", default="experiment.yaml", help="name of the file to write")
    p.add_argument("--directory", default=".", help="the project folder (default: here)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=cmd_init)
