"""A run directory (and, where there is one, the journal) -> frozen dataclasses for the report.

The report reads files only: ``summary.json`` for each task's status and skip reason, and per
task the ``timing.jsonl``, ``metrics.json`` and ``manifest.json`` the trainer wrote. The journal
adds what no file holds (machine prices and the hours each was held, the forecast). Without it,
``plan.json`` in the run directory (``orchestrate plan --json``), when present, gives the prices
and forecast, and each machine's hours are taken from the span of its tasks' timing logs.

Every field a trainer may leave out is ``None`` here, never a guess: a report of a run that was
stopped half-way shows what exists and a dash for the rest.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from orchestrator.cost import attempt_costs
from orchestrator.paths import RunPaths
from orchestrator.report.model import (
    AttemptUse,
    EpochRow,
    Hardware,
    MachineUse,
    PcaComponent,
    PcaResult,
    RunData,
    TaskResult,
)
from orchestrator.result_files import (
    ManifestKey as Mf,
)
from orchestrator.result_files import (
    MetricsKey as M,
)
from orchestrator.result_files import (
    ReferenceKey as R,
)
from orchestrator.result_files import (
    TimingEvent as E,
)
from orchestrator.result_files import (
    TimingKey as T,
)
from orchestrator.result_files import (
    flat_metrics,
    read_json,
    read_timing,
)
from orchestrator.state import Journal

FRAMEWORKS = ("tensorflow", "theano")
DEVICES = ("cpu", "gpu")


def load_run(run_dir: Path, journal: Journal | None = None) -> RunData:
    """Everything the report needs from ``runs/<run-id>/``, plus the journal where given."""
    paths = RunPaths(Path(run_dir))
    summary = read_json(paths.summary_json)
    run_id = str(summary.get("run_id") or paths.root.name)
    plan = read_json(paths.root / "plan.json")
    rows: dict[str, dict[str, Any]] = {}
    for t in summary.get("tasks", []):
        if isinstance(t, dict) and t.get("task_id"):
            rows[str(t["task_id"])] = dict(t)
    run_row = journal.run(run_id) if journal is not None else None
    if journal is not None and run_row is not None:
        for jt in journal.tasks(run_id):  # the journal is the truth; summary.json a copy of it
            rows[jt.task_id] = {
                "task_id": jt.task_id,
                "status": jt.status,
                "machine": jt.machine,
                "wall_s": jt.wall_s,
                "detail": jt.detail,
            }
    for child in (
        sorted(p for p in paths.root.iterdir() if p.is_dir()) if paths.root.is_dir() else []
    ):
        if child.name not in rows and (child / "timing.jsonl").exists():
            rows[child.name] = {"task_id": child.name, "status": "unknown", "machine": "-"}
    planned = {
        str(t["id"]): t for t in plan.get("tasks", []) if isinstance(t, dict) and t.get("id")
    }
    tasks = tuple(_task(paths, row, planned.get(str(row["task_id"]))) for row in rows.values())
    machines = _machines(journal, run_id, plan) if run_row is not None else ()
    if not machines:
        machines = _machines_from_plan(plan, tasks)
    forecast = _num(getattr(run_row, "forecast_usd", None)) if run_row is not None else None
    if forecast is None:
        forecast = _num(plan.get("forecast_usd"))
    return RunData(
        run_id=run_id,
        name=str(run_row.name if run_row else plan.get("experiment") or _name_of(run_id)),
        status=str(run_row.status if run_row else summary.get("status") or "unknown"),
        provider=run_row.provider if run_row else _str(plan.get("provider")),
        run_dir=paths.root,
        tasks=tasks,
        machines=machines,
        forecast_usd=forecast,
        budget_usd=_num(plan.get("budget_usd")),
        attempts=_attempts(journal, run_id) if journal is not None and run_row else (),
    )


def _task(paths: RunPaths, row: dict[str, Any], planned: dict[str, Any] | None) -> TaskResult:
    """One task's numbers; what it *was* comes from the plan when the run kept one (the only
    source for users' own scripts), else from its id."""
    tid = str(row["task_id"])
    timing = read_timing(paths.timing(tid))
    metrics = read_json(paths.metrics(tid))
    manifest = read_json(paths.manifest(tid))
    start = next((r for r in timing if r.get(T.EVENT) == E.START), {})
    trainer, framework, optimizer, device = _parse_id(tid)
    info = {**start, **metrics}
    if planned is not None:
        raw = planned.get("params")
        params: dict[str, Any] = raw if isinstance(raw, dict) else {}
        trainer = str(planned.get("trainer") or trainer)
        framework = str(planned.get("framework") or "-")
        device = str(planned.get("device") or device)
        optimizer = _str(params.get("optimizer")) or optimizer
        if trainer == "script":  # the script's own "trainer" label must not hide that it is one
            info = {k: v for k, v in info.items() if k not in ("trainer", "framework")}
    epochs = tuple(_epoch(r) for r in timing if r.get(T.EVENT) == E.EPOCH)
    compile_s = _num(metrics.get(M.COMPILE_TIME_S))
    if compile_s is None:
        compile_s = _sum_or_none(
            _num(r.get(T.COMPILE_S)) for r in timing if r.get(T.EVENT) == E.COMPILE
        )
    train_s = _num(metrics.get(M.TRAIN_TIME_S))
    if train_s is None and epochs:
        train_s = sum(e.wall_s for e in epochs)
    if train_s is None:  # PCA: the eigen-solve is its training (statistics and compile apart)
        train_s = _num(metrics.get(M.SOLVE_S))
    sps = _num(metrics.get(M.SAMPLES_PER_S))
    if sps is None:
        sps = _mean_or_none(e.samples_per_s for e in epochs)
    last = epochs[-1] if epochs else None
    times = [_num(r.get(T.T)) for r in timing]
    stamps = [t for t in times if t is not None]
    return TaskResult(
        task_id=tid,
        trainer=str(info.get(M.TRAINER) or trainer),
        framework=str(info.get(M.FRAMEWORK) or framework),
        optimizer=_str(info.get(M.OPTIMIZER)) or optimizer,
        device=device if device != "?" else str(info.get(M.DEVICE_REQUESTED) or "?"),
        status=str(row.get("status") or "unknown"),
        detail=_str(row.get("detail")),
        machine=str(row.get("machine") or "-"),
        wall_s=_num(row.get("wall_s")),
        compile_s=compile_s,
        train_s=train_s,
        samples_per_s=sps,
        test_error=_num(metrics.get(M.TEST_ERROR)) if metrics else (last.error if last else None),
        final_loss=_num(metrics.get(M.FINAL_LOSS)) if metrics else (last.loss if last else None),
        hidden=tuple(int(h) for h in info.get(M.HIDDEN) or () if isinstance(h, int | float)),
        batch_size=_int(info.get(M.BATCH_SIZE)),
        epochs=epochs,
        hardware=_hardware(manifest) if manifest else None,
        pca=_pca(metrics, timing) if (info.get(M.TRAINER) or trainer) == "pca" else None,
        started_t=min(stamps) if stamps else None,
        ended_t=max(stamps) if stamps else None,
    )


def _parse_id(task_id: str) -> tuple[str, str, str | None, str]:
    """``mnist-tensorflow-rmsprop-cpu-h300`` -> (mnist, tensorflow, rmsprop, cpu)."""
    parts = task_id.split("-")
    fw = next((i for i, p in enumerate(parts) if p in FRAMEWORKS), None)
    if fw is None:
        return (parts[0], "?", None, "?")
    dev = next((i for i in range(fw + 1, len(parts)) if parts[i] in DEVICES), None)
    if dev is None:
        return ("-".join(parts[:fw]), parts[fw], None, "?")
    optimizer = "-".join(parts[fw + 1 : dev]) or None
    return ("-".join(parts[:fw]), parts[fw], optimizer, parts[dev])


def _epoch(r: dict[str, Any]) -> EpochRow:
    return EpochRow(
        epoch=int(r.get(T.EPOCH) or 0),
        wall_s=_num(r.get(T.WALL_S)) or 0.0,
        samples_per_s=_num(r.get(T.SAMPLES_PER_S)),
        loss=_num(r.get(T.LOSS)),
        error=_num(r.get(T.ERROR)),
        t=_num(r.get(T.T)),
    )


def _hardware(m: dict[str, Any]) -> Hardware:
    cpu, gpu = _dict(m.get(Mf.CPU)), _dict(m.get(Mf.GPU))
    versions = _dict(m.get(Mf.VERSIONS))
    gpus = gpu.get("all")
    first = _dict(gpus[0]) if isinstance(gpus, list) and gpus else {}
    return Hardware(
        host=_str(m.get(Mf.HOST)),
        cpu_model=_str(cpu.get("model")),
        cpu_cores=_int(cpu.get("usable_cores") or cpu.get("logical_cores")),
        gpu_model=_str(gpu.get("model")),
        gpu_driver=_str(gpu.get("driver")),
        gpu_memory_mib=_int(first.get("memory_mib")),
        device_used=_str(m.get(Mf.DEVICE_USED)),
        versions=tuple(sorted((str(k), str(v)) for k, v in versions.items() if v)),
    )


def _pca(metrics: dict[str, Any], timing: list[dict[str, Any]]) -> PcaResult | None:
    """PCA's numbers (``metrics.json``, its NumPy ``reference`` lifted); a run stopped before
    its metrics were written still shows the components its timing log recorded."""
    comp_rows = [r for r in timing if r.get(T.EVENT) == E.COMPONENT]
    metrics = flat_metrics(metrics)
    values = _floats(metrics.get(M.EIGENVALUES)) or [
        v for v in (_num(r.get(T.EIGENVALUE)) for r in comp_rows) if v is not None
    ]
    if not values:
        return None
    ref = _floats(metrics.get(R.EIGENVALUES_NUMPY))
    rel = _floats(metrics.get(R.EIGENVALUE_REL_ERROR))
    angles = _floats(metrics.get(R.ANGLE_DEG))
    explained = _floats(metrics.get(M.EXPLAINED_VARIANCE_RATIO))
    total = _num(metrics.get(M.TOTAL_VARIANCE))
    if not explained and total:
        explained = [v / total for v in values]
    iters_raw = metrics.get(M.PCA_ITERATIONS)
    iters = [int(i) for i in _floats(iters_raw)] if isinstance(iters_raw, list) else []
    if not iters:
        iters = [int(n) for n in (_num(r.get(T.ITERATIONS)) for r in comp_rows) if n is not None]
    comps = tuple(
        PcaComponent(
            index=i,
            eigenvalue=v,
            eigenvalue_numpy=_at(ref, i),
            rel_error=_at(rel, i),
            angle_deg=_at(angles, i),
            explained=_at(explained, i),
            iterations=int(iters[i]) if i < len(iters) else None,
        )
        for i, v in enumerate(values)
    )
    total_iters = _int(iters_raw) if isinstance(iters_raw, int | float) else None
    conv = metrics.get(M.CONVERGED)
    return PcaResult(
        components=comps,
        iterations=total_iters if total_iters is not None else (sum(iters) if iters else None),
        converged=all(conv)
        if isinstance(conv, list)
        else (conv if isinstance(conv, bool) else None),
    )


def _machines(journal: Journal | None, run_id: str, plan: dict[str, Any]) -> tuple[MachineUse, ...]:
    if journal is None:
        return ()
    planned = {str(m.get("name")): m for m in plan.get("machines", []) if isinstance(m, dict)}
    out = []
    for m in journal.machines(run_id):
        hours = None
        if m.acquired_at is not None and m.released_at is not None:
            hours = max(m.released_at - m.acquired_at, 0.0) / 3600.0
        spend = _num(getattr(m, "spend_usd", None)) or None
        if spend is None and hours is not None:
            spend = hours * (m.hourly_usd or 0.0)
        out.append(
            MachineUse(
                name=m.name,
                provider=m.provider,
                instance_type=_str(m.instance_type),
                hourly_usd=m.hourly_usd,
                hours=hours,
                spend_usd=spend,
                forecast_usd=_planned_usd(planned.get(m.name)),
                basis="journal",
            )
        )
    return tuple(out)


def _attempts(journal: Journal, run_id: str) -> tuple[AttemptUse, ...]:
    """Each try of each task, with the instance it ran on and what it cost."""
    machines = {m.token: m for m in journal.machines(run_id)}
    costs = attempt_costs(journal, run_id)
    out = []
    for a in journal.attempts(run_id):
        m = machines.get(a.machine_token)
        out.append(
            AttemptUse(
                task_id=a.task_id,
                n=a.n,
                machine=a.machine,
                instance_id=m.machine_id if m else None,
                instance_type=m.instance_type if m else None,
                status=a.status,
                wall_s=a.wall_s,
                cost_usd=costs.get((a.task_id, a.n)),
                detail=a.detail,
                interrupted=a.interrupted,
            )
        )
    return tuple(out)


def _machines_from_plan(
    plan: dict[str, Any], tasks: tuple[TaskResult, ...]
) -> tuple[MachineUse, ...]:
    """Without the journal: prices from plan.json, hours from the span of each machine's logs."""
    planned = {str(m.get("name")): m for m in plan.get("machines", []) if isinstance(m, dict)}
    names = list(dict.fromkeys([*planned, *(t.machine for t in tasks if t.machine != "-")]))
    out = []
    for name in names:
        mine = [t for t in tasks if t.machine == name and t.started_t and t.ended_t]
        hours = None
        if mine:
            hours = (
                max(t.ended_t or 0.0 for t in mine) - min(t.started_t or 0.0 for t in mine)
            ) / 3600
        hourly = _num(planned.get(name, {}).get("hourly_usd"))
        out.append(
            MachineUse(
                name=name,
                provider=None,
                instance_type=None,
                hourly_usd=hourly,
                hours=hours,
                spend_usd=hours * hourly if hours is not None and hourly is not None else None,
                forecast_usd=_planned_usd(planned.get(name)),
                basis="task logs + plan.json" if name in planned else "task logs",
            )
        )
    return tuple(out)


def _planned_usd(m: dict[str, Any] | None) -> float | None:
    if not m:
        return None
    hours, hourly = _num(m.get("expected_hours")), _num(m.get("hourly_usd"))
    return hours * hourly if hours is not None and hourly is not None else None


def _name_of(run_id: str) -> str:
    # run ids are <name>-<YYYYmmdd>-<HHMMSS>-<hex4>; keep the name
    parts = run_id.split("-")
    return "-".join(parts[:-3]) if len(parts) > 3 else run_id


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _int(value: Any) -> int | None:
    n = _num(value)
    return int(n) if n is not None else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _floats(value: Any) -> list[float]:
    if not isinstance(value, list):
        return []
    return [float(v) for v in value if isinstance(v, int | float) and not isinstance(v, bool)]


def _at(values: list[float], i: int) -> float | None:
    return values[i] if i < len(values) else None


def _mean_or_none(values: Any) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _sum_or_none(values: Any) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None
