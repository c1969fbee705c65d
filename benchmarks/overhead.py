"""What the engine itself costs: per task, and to plan a large matrix.

1. Per-task overhead: N trivial tasks (``true``) through the real engine on the local provider
   (journal, detached start, polling, fetch, report events), side by side with the same N
   commands run in a plain ``subprocess.run`` loop. Overhead per task = (engine wall - sum of
   the tasks' own time) / N, where a task's own time is what ``trainers.measure`` recorded.
2. Planning: matrix expansion + placement + forecast for a 10,000-task experiment.

Goals (issue 2): under 50 ms per task locally, under 1 s to plan 10,000 tasks.
    python benchmarks/overhead.py [--tasks 100]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._results import machine, write_section  # noqa: E402
from infra.local import LocalProvider  # noqa: E402
from infra.provider import MachineRequest  # noqa: E402
from orchestrator.engine import Engine, EngineConfig  # noqa: E402
from orchestrator.events import RecordingReporter  # noqa: E402
from orchestrator.plan import MachineOffer, make_plan  # noqa: E402
from orchestrator.specfile import parse_experiment  # noqa: E402
from orchestrator.state import Journal  # noqa: E402
from orchestrator.workdir import select_workdir  # noqa: E402

TRAINERS = Path(__file__).resolve().parents[1] / "trainers"


def engine_overhead(n: int, tmp: Path) -> dict[str, float]:
    axis = list(range(n))
    text = f"name: overhead\njobs:\n  - name: t\n    run: 'true'\n    params: {{i: {axis}}}\n"
    (tmp / "exp.yaml").write_text(text)
    exp = parse_experiment(text, str(tmp / "exp.yaml"))
    provider = LocalProvider(workspace_root=str(tmp / "ws"), gpus=0)
    offer = MachineOffer(MachineRequest(run_id="bench", name="local"), slots=1, gpus=0)
    plan = make_plan(
        exp,
        spec_path=str(tmp / "exp.yaml"),
        run_id="bench",
        provider=provider,
        offers=[offer],
    )
    (tmp / "project").mkdir()
    workdir = select_workdir(tmp / "project", ship_secrets=[], spec_file="exp.yaml")
    plan = replace(plan, workdir=workdir)
    journal = Journal.in_dir(tmp / "state")
    engine = Engine(
        provider=provider,
        journal=journal,
        reporter=RecordingReporter(),
        config=EngineConfig(runs_root=tmp / "runs", trainers_src=TRAINERS, workdir=workdir),
    )
    t0 = time.perf_counter()
    summary = engine.run(plan)
    wall = time.perf_counter() - t0
    assert summary.status == "done", [t.detail for t in summary.tasks][:3]
    own = sum(
        json.loads((tmp / "runs" / "bench" / t.task_id / "process.json").read_text())["wall_s"]
        for t in summary.tasks
    )
    return {"wall_s": wall, "own_s": own, "per_task_ms": 1000 * (wall - own) / n}


def reference(n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        subprocess.run(["sh", "-c", "true"], check=True)
    return time.perf_counter() - t0


def planning(n_lr: int = 625) -> dict[str, float]:
    lrs = ", ".join(str(0.001 * (i + 1)) for i in range(n_lr))
    text = (
        "name: big\njobs:\n  - trainer: mnist\n    framework: [tensorflow, theano]\n"
        "    optimizer: [gd, sgd, minibatch, momentum, nesterov, adagrad, rmsprop, adam]\n"
        f"    learning_rate: [{lrs}]\n"
    )
    t0 = time.perf_counter()
    exp = parse_experiment(text, "big.yaml")
    t1 = time.perf_counter()
    provider = LocalProvider(workspace_root="/nonexistent", gpus=0)
    offer = MachineOffer(MachineRequest(run_id="p", name="local"), slots=1, gpus=0)
    plan = make_plan(
        exp,
        spec_path="big.yaml",
        run_id="p",
        provider=provider,
        offers=[offer],
    )
    t2 = time.perf_counter()
    json.dumps(plan.to_json())
    t3 = time.perf_counter()
    return {"tasks": len(plan.tasks), "parse_s": t1 - t0, "plan_s": t2 - t1, "json_s": t3 - t2}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tasks", type=int, default=100)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        ours = engine_overhead(args.tasks, Path(d))
    ref = reference(args.tasks)
    plan = planning()
    plan_total = plan["parse_s"] + plan["plan_s"]
    body = f"""
Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `benchmarks/overhead.py` on {machine()}.

**Per-task overhead** ({args.tasks} tasks of `true`, local provider, one slot):

| | wall s | tasks' own s | per task ms |
|---|---|---|---|
| orchestrate engine | {ours["wall_s"]:.2f} | {ours["own_s"]:.2f} | {ours["per_task_ms"]:.1f} |
| plain `subprocess.run` loop (reference) | {ref:.2f} | - | {1000 * ref / args.tasks:.1f} |

The engine costs {ours["per_task_ms"]:.1f} ms per task beyond the task itself (goal: < 50 ms):
{ours["wall_s"] / ref:.1f}x the plain loop's wall time, for a detached start that survives
the orchestrator, a journal row per state change, streamed logs, a fetch of the task's
results and `trainers.measure`'s process record.

**Planning** a {plan["tasks"]:,}-task matrix (2 frameworks x 8 optimizers x 625 learning rates):
parse + validate {plan["parse_s"]:.3f} s, expand + place + forecast {plan["plan_s"]:.3f} s,
total {plan_total:.3f} s (goal: < 1 s, so {plan_total:.2f}x of the budget); `plan --json`
serialisation another {plan["json_s"]:.3f} s.
"""
    print(body)
    write_section("## Engine overhead and planning time\n" + body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
