"""The ``orchestrate`` command: parse -> call -> render; exceptions -> exit codes.

Exit codes: 0 ok · 1 a task failed · 2 bad input (nothing launched) · 3 capped by the budget ·
4 a provider/transport fault · 70 a bug (traceback) · 130 interrupted (after cleanup).
One module per verb group; this one only wires them.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from infra.errors import OrchestrateError
from orchestrator.cli.attach_cmd import add_attach_parser
from orchestrator.cli.cloud import add_cloud_parsers
from orchestrator.cli.gpus_cmd import add_gpus_parser
from orchestrator.cli.init_cmd import add_init_parser
from orchestrator.cli.inspect_cmds import cmd_down, cmd_logs, cmd_status
from orchestrator.cli.money import add_money_parsers
from orchestrator.cli.run import cmd_plan, cmd_run
from orchestrator.cli.schedule_cmd import add_schedule_parsers
from orchestrator.cli.ssh_cmd import add_ssh_parser
from orchestrator.paths import default_state_dir
from orchestrator.report.cli import add_report_parser

EXIT_BUG = 70


def build_parser() -> argparse.ArgumentParser:
    """Every verb's arguments, with the common ``--state-dir``/``--json``/``--debug``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="journal and workspaces (default: $ORCHESTRATE_STATE_DIR, else "
        "~/.local/state/orchestrate)",
    )
    common.add_argument("--json", action="store_true", help="machine-readable output")
    common.add_argument("--debug", action="store_true", help="tracebacks for every error")

    parser = argparse.ArgumentParser(
        prog="orchestrate",
        description="Run ML experiments on local, SSH or EC2 machines without surprises.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("plan", parents=[common], help="what would run, where, for how much")
    p.add_argument("file", help="the experiment file (YAML)")
    p.add_argument("--local", action="store_true", help="plan for this machine instead")
    p.add_argument(
        "--check-aws",
        action="store_true",
        help="also verify permissions (DryRun), the AMI and instance types in the region",
    )
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("run", parents=[common], help="run an experiment")
    p.add_argument("file", help="the experiment file (YAML)")
    p.add_argument(
        "--local", action="store_true", help="run on this machine, whatever the file says"
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan; launch nothing")
    p.add_argument("--resume", metavar="RUN", help="continue RUN, skipping finished tasks")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where results land")
    p.add_argument("--data-dir", help="MNIST directory passed to the trainers")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("status", parents=[common], help="runs in the journal, or one run")
    p.add_argument("run", nargs="?", help="a run id: its task table (default: list the runs)")
    p.add_argument("--limit", type=int, default=20, help="how many recent runs to list (20)")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("logs", parents=[common], help="a run's task logs")
    p.add_argument("run", help="a run id (see `orchestrate status`)")
    p.add_argument("task", nargs="?", help="one task id (default: every task, prefixed)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing while it runs")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("down", parents=[common], help="stop a run and release its machines")
    p.add_argument("run", help="a run id (see `orchestrate status`)")
    p.add_argument(
        "--wait",
        type=float,
        default=300.0,
        metavar="S",
        help="a live run's orchestrator gets this long to stop and clean up (default 300)",
    )
    p.set_defaults(func=cmd_down)
    add_attach_parser(sub, common)
    add_money_parsers(sub, common)
    add_schedule_parsers(sub, common)
    add_init_parser(sub, common)
    add_cloud_parsers(sub, common)
    add_gpus_parser(sub, common)
    add_ssh_parser(sub, common)
    add_report_parser(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; our errors print without a traceback and exit with their code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.state_dir is None:
        args.state_dir = default_state_dir()
    try:
        code: int = args.func(args)
        return code
    except OrchestrateError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}" if exc.exit_code != 130 else str(exc), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print(
            "orchestrate hit a bug (exit 70); the traceback above helps a report.", file=sys.stderr
        )
        return EXIT_BUG
