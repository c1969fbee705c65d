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


class AlreadyExists(OrchestrateError):
    exit_code = 2


def cmd_init(args: argparse.Namespace) -> int:
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
    print(f"wrote {target}; next: orchestrate plan {args.file}")
    return 0


def add_init_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("init", parents=[common], help="write a starter experiment.yaml here")
    p.add_argument("--file", default="experiment.yaml", help="name of the file to write")
    p.add_argument("--directory", default=".", help="the project folder (default: here)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=cmd_init)
