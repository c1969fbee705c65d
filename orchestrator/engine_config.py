"""``EngineConfig``: how the engine runs a plan (where results go, what it ships, timeouts).

Its own module so the engine and its task steps (``orchestrator.engine_tasks``) both read it
without importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.checkpoint_store import CheckpointStore
from orchestrator.workdir import WorkdirSelection

_POLL_MAX_S = 0.5  # polls back off to this, so long tasks cost little


@dataclass(frozen=True)
class EngineConfig:
    """Where results land, what is shipped, and the engine's timeouts."""

    runs_root: Path
    trainers_src: Path
    data_dir: str | None = None
    stop_grace_s: float = 10.0
    poll_max_s: float = _POLL_MAX_S
    task_timeout_s: float | None = None
    gang_timeout_s: float = 600.0  # how long a ``nodes: N`` task waits for N free slots
    schedule: str | None = None  # the schedule that started this run, for its period budget
    workdir: WorkdirSelection | None = None  # shipped to every machine for ``run:`` jobs
    code_env: Mapping[str, str] = field(default_factory=dict)  # e.g. the trainers' git commit
    # infra.registry's JSON of the provider, kept in the run's row so `down` needs no file.
    provider_config: str | None = None
    # Recovery (spec ``recovery:``): capacity for a replacement machine, attempts after the
    # first, how often running tasks' checkpoints come back.
    recovery_capacity: str = "spot"
    retries: int = 2
    checkpoint_every_s: float = 300.0
    # The instance metadata service tasks watch for spot notices (None: no notices there).
    imds_url: str | None = None
    checkpoint_store: CheckpointStore | None = None  # ``checkpoints: s3://...``, when given
