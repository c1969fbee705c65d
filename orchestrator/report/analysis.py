"""The report's analysis, as tables built from a loaded run (the ``Table`` shape itself is
``report.table``); pure functions, no printing, no plotting.

Which comparisons are made (the experiment's questions): CPU vs GPU for the same work, the
optimizers against each other (error per epoch, time to a target error), our MNIST numbers
beside the published table, PCA against NumPy, and what it all cost against the forecast.
"""

from __future__ import annotations

from orchestrator.report.costs import (
    attempts_table,
    has_cost,
    machine_cost_table,
    task_cost_table,
)
from orchestrator.report.lecun import PUBLISHED, SOURCE, architecture, same_architecture
from orchestrator.report.model import RunData, TaskResult
from orchestrator.report.table import (
    FLOAT,
    INT,
    PCT,
    RATE,
    RATIO,
    SCI,
    SECONDS,
    USD,
    Cell,
    Column,
    Table,
)
from orchestrator.state import TaskStatus

DEFAULT_TARGET_ERROR = 0.10  # reachable in a couple of epochs by every adaptive optimizer


def time_to_target(task: TaskResult, target: float) -> tuple[float, int] | None:
    """Training seconds (compile excluded) until the test error first is <= target, and the
    epoch; None when it never got there."""
    elapsed = 0.0
    for e in task.epochs:
        elapsed += e.wall_s
        if e.error is not None and e.error <= target:
            return elapsed, e.epoch
    return None


def speedups(run: RunData) -> dict[str, float]:
    """GPU task id -> CPU training time / GPU training time, where both variants finished."""
    cpu = {t.variant: t for t in run.tasks if t.device == "cpu" and t.status == TaskStatus.DONE}
    out: dict[str, float] = {}
    for t in run.tasks:
        base = cpu.get(t.variant)
        if t.device != "gpu" or t.status != TaskStatus.DONE or base is None:
            continue
        if base.train_s and t.train_s:
            out[t.task_id] = base.train_s / t.train_s
    return out


def usd_per_epoch(run: RunData, task: TaskResult) -> float | None:
    """What one epoch of the task cost (its share of the machine's price), if priced."""
    cost = run.task_cost_usd(task)
    return cost / len(task.epochs) if cost is not None and task.epochs else None


def hardware_table(run: RunData) -> Table:
    """What each machine was: CPU, GPU and driver, as the trainers' manifests say."""
    cols = (
        Column("machine", "machine"),
        Column("host", "host"),
        Column("cpu", "CPU"),
        Column("cores", "cores", INT),
        Column("gpu", "GPU"),
        Column("driver", "driver"),
        Column("gpu_mib", "GPU MiB", INT),
        Column("versions", "frameworks"),
        Column("tasks", "tasks", INT),
    )
    groups: dict[tuple[str, str], list[TaskResult]] = {}
    for t in run.tasks:
        if t.hardware is not None:
            groups.setdefault((t.machine, t.hardware.host or "?"), []).append(t)
    rows: list[tuple[Cell, ...]] = []
    for (machine, host), tasks in groups.items():
        hw = next((t.hardware for t in tasks if t.hardware and t.hardware.gpu_model), None)
        hw = hw or tasks[0].hardware
        assert hw is not None
        wanted = ("tensorflow", "tensorflow-cpu", "pytensor", "numba", "jax", "numpy")
        versions = ", ".join(f"{k} {v}" for k, v in hw.versions if k in wanted)
        rows.append(
            (
                machine,
                host,
                hw.cpu_model,
                hw.cpu_cores,
                hw.gpu_model or "none",
                hw.gpu_driver,
                hw.gpu_memory_mib,
                versions,
                len(tasks),
            )
        )
    return Table("hardware", "Machines (from the task manifests)", cols, tuple(rows))


def device_table(run: RunData) -> Table:
    """CPU against GPU for the same work: epoch time, throughput, and the speedup."""
    cols = (
        Column("trainer", "trainer"),
        Column("framework", "framework"),
        Column("optimizer", "optimizer"),
        Column("device", "device"),
        Column("status", "status"),
        Column("machine", "machine"),
        Column("wall_s", "wall s", SECONDS),
        Column("compile_s", "compile s", SECONDS),
        Column("train_s", "train s", SECONDS),
        Column("samples_per_s", "samples/s", RATE),
        Column("speedup", "GPU speedup", RATIO),
        Column("usd_per_epoch", "$/epoch", USD),
        Column("note", "note"),
    )
    fast = speedups(run)
    order = {"cpu": 0, "gpu": 1}
    tasks = sorted(run.tasks, key=lambda t: (t.variant, order.get(t.device, 2), t.task_id))
    rows: list[tuple[Cell, ...]] = []
    for t in tasks:
        note = t.detail if t.status != TaskStatus.DONE else None
        if t.status == TaskStatus.DONE and t.hardware and t.hardware.device_used:
            note = f"ran on {t.hardware.device_used}"
        rows.append(
            (
                t.trainer,
                t.framework,
                t.optimizer or "-",
                t.device,
                t.status,
                t.machine,
                t.wall_s,
                t.compile_s,
                t.train_s,
                t.samples_per_s,
                fast.get(t.task_id),
                usd_per_epoch(run, t),
                note,
            )
        )
    reasons = sorted({t.detail for t in run.tasks if t.status == TaskStatus.SKIPPED and t.detail})
    skipped = sum(1 for t in run.tasks if t.status == TaskStatus.SKIPPED)
    notes = (
        "GPU speedup = CPU training seconds / GPU training seconds for the same work "
        "(compile time apart).",
        *(f"{skipped} task(s) skipped: {r}" for r in reasons),
    )
    return Table("cpu_vs_gpu", "CPU vs GPU", cols, tuple(rows), notes)


def _mnist(run: RunData) -> list[TaskResult]:
    return [t for t in run.tasks if t.trainer == "mnist" and t.epochs]


def _curves(run: RunData) -> list[TaskResult]:
    """Tasks with per-epoch rows: built-in MNIST and users' own scripts that log them."""
    return [t for t in run.tasks if t.trainer in ("mnist", "script") and t.epochs]


def optimizer_table(run: RunData, target: float) -> Table:
    """The optimizers against each other: final error and time to ``target``."""
    cols = (
        Column("task", "task"),
        Column("framework", "framework"),
        Column("device", "device"),
        Column("optimizer", "optimizer"),
        Column("epochs", "epochs", INT),
        Column("test_error", "test error", PCT),
        Column("best_error", "best error", PCT),
        Column("final_loss", "final loss", FLOAT),
        Column("train_s", "train s", SECONDS),
        Column("target_s", "s to target", SECONDS),
        Column("target_epoch", "epoch at target", INT),
    )
    rows: list[tuple[Cell, ...]] = []
    for t in sorted(_curves(run), key=lambda t: (t.framework, t.device, t.test_error or 1.0)):
        hit = time_to_target(t, target)
        errors = [e.error for e in t.epochs if e.error is not None]
        rows.append(
            (
                t.task_id,
                t.framework,
                t.device,
                t.optimizer or "-",
                len(t.epochs),
                t.test_error,
                min(errors) if errors else None,
                t.final_loss,
                t.train_s,
                hit[0] if hit else None,
                hit[1] if hit else None,
            )
        )
    note = f"target test error {100 * target:.2f}%; '-' means never reached"
    return Table(
        "optimizers", "Optimizers: final numbers and time to target", cols, tuple(rows), (note,)
    )


def per_epoch_table(run: RunData, what: str) -> Table:
    """Test error (``what="error"``) or training loss (``"loss"``) of every task, per epoch."""
    tasks = _curves(run)
    n = max((len(t.epochs) for t in tasks), default=0)
    fmt = PCT if what == "error" else FLOAT
    cols = (Column("task", "task"), *(Column(f"e{i}", f"epoch {i}", fmt) for i in range(1, n + 1)))
    rows: list[tuple[Cell, ...]] = []
    for t in tasks:
        by_epoch = {e.epoch: (e.error if what == "error" else e.loss) for e in t.epochs}
        rows.append((t.task_id, *(by_epoch.get(i) for i in range(1, n + 1))))
    title = "Test error per epoch" if what == "error" else "Training loss per epoch"
    return Table(f"{what}_per_epoch", title, cols, tuple(rows))


def lecun_table(run: RunData) -> Table:
    """Our MNIST error beside LeCun's published table for the same architecture."""
    cols = (
        Column("method", "method"),
        Column("architecture", "architecture"),
        Column("test_error", "test error", PCT),
        Column("source", "source"),
        Column("published_same_arch", "published, same architecture", PCT),
    )
    entries: list[tuple[Cell, ...]] = [
        (
            p.method + (f" ({p.note})" if p.note else ""),
            architecture(p.hidden) if p.hidden is not None else "convolutional",
            p.error,
            SOURCE,
            None,
        )
        for p in PUBLISHED
    ]
    for t in _mnist(run):
        if t.status != TaskStatus.DONE or t.test_error is None:
            continue
        same = same_architecture(t.hidden)
        method = f"ours: {t.framework}/{t.optimizer} on {t.device}, {len(t.epochs)} epochs"
        entries.append(
            (
                method,
                architecture(t.hidden),
                t.test_error,
                f"this run ({t.task_id})",
                same.error if same else None,
            )
        )
    rows = sorted(entries, key=lambda r: -float(r[2] or 0.0))
    note = (
        "Published rows trained to convergence (tens of epochs, some with distortions); "
        "ours ran the epochs shown."
    )
    return Table(
        "lecun", "MNIST: our results in LeCun's published table", cols, tuple(rows), (note,)
    )


def pca_table(run: RunData) -> Table:
    """Each PCA task: eigenvalues against NumPy's, iterations, time."""
    cols = (
        Column("task", "task"),
        Column("framework", "framework"),
        Column("device", "device"),
        Column("status", "status"),
        Column("components", "components", INT),
        Column("top_eigenvalue", "top eigenvalue", FLOAT),
        Column("explained", "explained variance", PCT),
        Column("max_rel_error", "max rel. error vs numpy", SCI),
        Column("max_angle_deg", "max angle (deg)", SCI),
        Column("iterations", "iterations", INT),
        Column("train_s", "time s", SECONDS),
        Column("note", "note"),
    )
    rows: list[tuple[Cell, ...]] = []
    for t in (t for t in run.tasks if t.trainer == "pca"):
        p = t.pca
        rows.append(
            (
                t.task_id,
                t.framework,
                t.device,
                t.status,
                len(p.components) if p else None,
                p.components[0].eigenvalue if p and p.components else None,
                p.explained_total if p else None,
                p.max_rel_error if p else None,
                p.max_angle_deg if p else None,
                p.iterations if p else None,
                t.train_s if t.train_s is not None else t.wall_s,
                t.detail if t.status != TaskStatus.DONE else None,
            )
        )
    return Table("pca", "PCA by gradient ascent vs numpy.linalg.eigh", cols, tuple(rows))


def pca_components_table(run: RunData) -> Table:
    """Per component: eigenvalue, its error and angle against NumPy's vector."""
    cols = (
        Column("task", "task"),
        Column("index", "#", INT),
        Column("eigenvalue", "eigenvalue", FLOAT),
        Column("eigenvalue_numpy", "numpy", FLOAT),
        Column("rel_error", "rel. error", SCI),
        Column("angle_deg", "angle (deg)", SCI),
        Column("explained", "explained", PCT),
        Column("cumulative", "cumulative", PCT),
        Column("iterations", "iterations", INT),
    )
    rows: list[tuple[Cell, ...]] = []
    for t in run.tasks:
        if t.pca is None:
            continue
        cum: float | None = 0.0
        for c in t.pca.components:
            cum = None if cum is None or c.explained is None else cum + c.explained
            rows.append(
                (
                    t.task_id,
                    c.index + 1,
                    c.eigenvalue,
                    c.eigenvalue_numpy,
                    c.rel_error,
                    c.angle_deg,
                    c.explained,
                    cum,
                    c.iterations,
                )
            )
    return Table("pca_components", "PCA spectrum, component by component", cols, tuple(rows))


def build_tables(run: RunData, target_error: float = DEFAULT_TARGET_ERROR) -> tuple[Table, ...]:
    """Every table the run has data for, in reading order."""
    tables = [hardware_table(run), device_table(run)]
    if _curves(run):
        tables += [
            optimizer_table(run, target_error),
            per_epoch_table(run, "error"),
            per_epoch_table(run, "loss"),
        ]
    if _mnist(run):
        tables.append(lecun_table(run))
    if any(t.trainer == "pca" for t in run.tasks):
        tables += [pca_table(run), pca_components_table(run)]
    if has_cost(run):
        tables += [task_cost_table(run), machine_cost_table(run)]
    else:  # a free run (this machine, your own hosts): no table of zeros
        tables = [t.without("usd_per_epoch") for t in tables]
    attempts = attempts_table(run)
    return tuple(tables if attempts is None else [*tables, attempts])
