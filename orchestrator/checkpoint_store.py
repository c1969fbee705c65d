"""Where a task's checkpoints are kept off the machine, so a new attempt can resume (issue 16).

Without ``checkpoints:`` in the experiment, checkpoints only come back to the run directory
with the rest of a task's files (``NoStore``). With ``checkpoints: s3://bucket/prefix`` the
engine pushes each task's checkpoint directory to S3 as it goes and pulls it back before an
attempt on new capacity starts (``infra.aws.checkpoints.S3Store``). The engine sees only the
protocol; which store it gets is decided here, from the experiment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from orchestrator.spec import Experiment


class CheckpointStore(Protocol):
    """Push a task's checkpoint directory off the machine; pull it back for a new attempt.

    1. ``push`` sends only the files that changed since the store last saw them and returns
       how many it sent (0 when nothing changed).
    2. ``pull`` fetches only the task's files missing or different locally and returns how
       many it fetched; files the store does not hold are left alone.
    3. Both raise an ``OrchestrateError`` naming the store when it cannot be used.
    """

    def push(self, task_id: str, local_dir: Path) -> int: ...

    def pull(self, task_id: str, local_dir: Path) -> int: ...


class NoStore:
    """No store configured: checkpoints live only in the run directory."""

    def push(self, task_id: str, local_dir: Path) -> int:
        """Nothing to send anywhere: the run directory already is the only copy."""
        return 0

    def pull(self, task_id: str, local_dir: Path) -> int:
        """Nothing to fetch: whatever came back to the run directory is all there is."""
        return 0


def checkpoint_store_for(experiment: Experiment, run_id: str) -> CheckpointStore:
    """The store the experiment's ``checkpoints:`` names, with the run id at the end of its
    prefix (``<prefix>/<run_id>/<task_id>/...``), so two runs of one experiment never mix
    their checkpoints; ``NoStore`` when the key is absent."""
    if experiment.checkpoints is None:
        return NoStore()
    from infra.aws.checkpoints import S3Store
    from infra.aws.facts import DEFAULT_REGION
    from infra.aws.session import configured_region

    region = experiment.region or configured_region(experiment.profile) or DEFAULT_REGION
    url = f"{experiment.checkpoints.rstrip('/')}/{run_id}"
    return S3Store(url, region, profile=experiment.profile)
