"""Job axes -> tasks, with ids a person can read and that stay the same from run to run.

A task id is ``<trainer>-<framework>[-<optimizer>]-<device>``, followed by the other axes that
vary inside the job (``-lr0.01``, ``-h300x100``), so ids only grow when the matrix does.
"""

from __future__ import annotations

import itertools
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from orchestrator.spec import Experiment, JobSpec

# Axes in id order; the first ones always appear, the rest only when they vary.
_ALWAYS = ("framework", "optimizer", "device")
_SHORT = {
    "epochs": "e",
    "batch_size": "b",
    "hidden": "h",
    "learning_rate": "lr",
    "momentum": "mu",
    "decay": "rho",
    "epsilon": "eps",
    "components": "k",
}
AXES = (*_ALWAYS, *_SHORT)


@dataclass(frozen=True)
class Task:
    """One trainer invocation: what to run, and its parameters."""

    id: str
    job_index: int
    trainer: str
    framework: str
    device: str
    params: Mapping[str, Any] = field(default_factory=dict)
    command: str | None = None  # ``run:`` jobs: the shell command, params substituted
    setup: str | None = None
    outputs: tuple[str, ...] = ()
    timeout_s: float | None = None  # the job's timeout_minutes: the task then ends `timeout`
    nodes: int = 1  # machines the task needs at once (gang placement); 1 is the usual task

    @property
    def is_script(self) -> bool:
        """Whether this is a user's ``run:`` command rather than a built-in trainer."""
        return self.command is not None

    def argv(self, *, python: str, out: str, data_dir: str | None) -> list[str]:
        """The trainer command line of ARCHITECTURE.md's process contract."""
        if self.command is not None:
            return ["sh", "-c", with_python_on_path(python, self.command)]
        argv = [python, "-m", f"trainers.{self.trainer}"]
        argv += ["--framework", self.framework, "--device", self.device, "--out", out]
        for key, value in self.params.items():
            flag = "--" + key.replace("_", "-")
            if key == "hidden":
                for size in value:
                    argv += ["--hidden", str(size)]
            elif value is not None:
                argv += [flag, str(value)]
        if data_dir:
            argv += ["--data-dir", data_dir]
        return argv


def _fmt(axis: str, value: Any) -> str:
    if axis == "hidden":
        return "h" + "x".join(str(v) for v in value)
    return f"{_SHORT[axis]}{value:g}" if isinstance(value, float) else f"{_SHORT[axis]}{value}"


def _id_part(key: str, value: Any) -> str:
    text = f"{key}{value:g}" if isinstance(value, float) else f"{key}{value}"
    return re.sub(r"[^A-Za-z0-9._]+", "_", text)


def expand_script_job(job: JobSpec, index: int) -> list[Task]:
    """``run:`` jobs: the cross product of ``params`` and ``device``, values shell-quoted."""
    assert job.run is not None
    names = list(job.params)
    tasks: list[Task] = []
    for device in job.device:
        for combo in itertools.product(*(job.params[n] for n in names)):
            values = dict(zip(names, combo, strict=True))
            varying = [_id_part(n, values[n]) for n in names if len(job.params[n]) > 1]
            task_id = "-".join([job.name or "script", *varying, device])
            quoted = {k: shlex.quote(str(v)) for k, v in values.items()}
            tasks.append(
                Task(
                    id=task_id,
                    job_index=index,
                    trainer="script",
                    framework="",
                    device=device,
                    params=values,
                    command=job.run.format(**quoted),
                    setup=job.setup,
                    outputs=tuple(job.outputs),
                    timeout_s=_timeout_s(job),
                    nodes=job.nodes,
                )
            )
    return tasks


def expand_job(job: JobSpec, index: int) -> list[Task]:
    """The cross product of one job's list-valued fields, in file order."""
    if job.run is not None:
        return expand_script_job(job, index)
    assert job.trainer is not None
    axes: dict[str, list[Any]] = {}
    for axis in AXES:
        values = getattr(job, axis)
        if values is not None:
            axes[axis] = list(values)
    names = list(axes)
    tasks: list[Task] = []
    for combo in itertools.product(*(axes[n] for n in names)):
        values = dict(zip(names, combo, strict=True))
        parts = [job.name or job.trainer, values["framework"]]
        if "optimizer" in values:
            parts.append(values["optimizer"])
        parts.append(values["device"])
        parts += [_fmt(a, values[a]) for a in _SHORT if a in values and len(axes[a]) > 1]
        params: dict[str, Any] = {
            k: v for k, v in values.items() if k not in ("framework", "device")
        }
        for scalar in ("tol", "max_iter", "normalisation", "subset"):
            value = getattr(job, scalar)
            if value is not None:
                params[scalar] = value
        if job.trainer == "mnist":
            params["seed"] = job.seed
        tasks.append(
            Task(
                id="-".join(str(p) for p in parts),
                job_index=index,
                trainer=job.trainer,
                framework=values["framework"],
                device=values["device"],
                params=params,
                timeout_s=_timeout_s(job),
                nodes=job.nodes,
            )
        )
    return tasks


def _timeout_s(job: JobSpec) -> float | None:
    return None if job.timeout_minutes is None else job.timeout_minutes * 60.0


def expand(exp: Experiment) -> list[Task]:
    """Every task of the experiment; duplicate ids are numbered so none is lost."""
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    for i, job in enumerate(exp.jobs):
        for task in expand_job(job, i):
            n = seen.get(task.id, 0)
            seen[task.id] = n + 1
            if n:
                task = replace(task, id=f"{task.id}-{n + 1}")
            tasks.append(task)
    return tasks


def with_python_on_path(python: str, command: str) -> str:
    """Prefix a shell command so ``python``/``python3``/``pip`` mean the machine's trainer
    interpreter: shell functions for the command itself (Ubuntu has no ``python`` at all),
    and its directory first on PATH for whatever the command starts in turn."""
    q = "command " + shlex.quote(python)  # `command`: never the function itself (python3)
    prelude = f'python() {{ {q} "$@"; }}; python3() {{ {q} "$@"; }}; pip() {{ {q} -m pip "$@"; }}; '
    if "/" in python:
        prelude += f'PATH={shlex.quote(python.rsplit("/", 1)[0])}:"$PATH"; export PATH; '
    return prelude + command
