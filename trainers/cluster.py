"""Which workers one task runs on, as ``TF_CONFIG`` names them (stdlib only, no TensorFlow).

Why apart from `trainers.tf_workers`: the trainer's entry reads the cluster before it decides
whether TensorFlow is needed at all, and records it in the manifest; that must not import
TensorFlow (``--help`` and argument errors answer at once).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

from trainers.errors import BadArgument


@dataclass(frozen=True)
class Cluster:
    """The workers named by ``TF_CONFIG``: their ``host:port`` addresses and this one's index."""

    workers: tuple[str, ...]
    index: int

    @property
    def size(self) -> int:
        return len(self.workers)

    @property
    def is_chief(self) -> bool:
        """Worker 0 writes checkpoints and its log is the task's (MultiWorkerMirrored's chief)."""
        return self.index == 0

    @property
    def hosts(self) -> list[str]:
        """Each worker's host, in index order (what the manifest records)."""
        return [w.rsplit(":", 1)[0].strip("[]") for w in self.workers]


def cluster_from_env(environ: Mapping[str, str] | None = None) -> Cluster | None:
    """The cluster ``TF_CONFIG`` names, or None when it is absent or names one worker only.

    Raises:
        BadArgument: ``TF_CONFIG`` is not the JSON TensorFlow documents, or its index is out
            of range (the orchestrator writes it; a hand-written one is checked here, since
            TensorFlow would otherwise hang waiting for a worker that never comes).
    """
    text = (os.environ if environ is None else environ).get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        config = json.loads(text)
        workers = tuple(str(w) for w in config["cluster"]["worker"])
        task = config.get("task", {})
        kind, index = task.get("type", "worker"), int(task.get("index", 0))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadArgument(f"TF_CONFIG is not a cluster spec: {exc}") from exc
    if len(workers) <= 1:
        return None
    if kind != "worker" or not 0 <= index < len(workers):
        raise BadArgument(f"TF_CONFIG task {kind}:{index} is not one of {len(workers)} workers")
    return Cluster(workers, index)
