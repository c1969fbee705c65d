"""Rules a plan names, so a setting that does nothing is never silently ignored.

Today one rule: ``gd`` trains on the whole set each step and ``sgd`` on one sample
(``trainers.optim.config.batch_size_for``), so a ``batch_size`` given to those tasks has no
effect. The plan says which tasks that is instead of dropping the value quietly.
"""

from __future__ import annotations

from collections.abc import Iterable

from orchestrator.matrix import Task

FIXED_BATCH = {"gd": "the whole training set", "sgd": "one sample"}


def batch_notes(tasks: Iterable[Task]) -> list[str]:
    """One note per optimizer whose batch is fixed, naming the tasks that set batch_size."""
    hit: dict[str, list[str]] = {}
    for t in tasks:
        opt = str(t.params.get("optimizer", ""))
        if t.trainer == "mnist" and opt in FIXED_BATCH and "batch_size" in t.params:
            hit.setdefault(opt, []).append(t.id)
    notes = []
    for opt, ids in sorted(hit.items()):
        who = ids[0] if len(ids) == 1 else f"{len(ids)} tasks ({ids[0]}, ...)"
        notes.append(
            f"{opt} steps on {FIXED_BATCH[opt]}: batch_size has no effect on {who}; "
            "it applies to minibatch, momentum, nesterov, adagrad, rmsprop and adam"
        )
    return notes
