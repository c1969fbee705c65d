"""Pins the public API: a change to ``orchestrator.__all__`` must be deliberate."""

from __future__ import annotations

import orchestrator

EXPECTED = {
    "BudgetError",
    "Engine",
    "EngineConfig",
    "Journal",
    "OrchestrateError",
    "Plan",
    "RunCapped",
    "RunInterrupted",
    "RunSummary",
    "SpecError",
    "SpecIssue",
    "Task",
    "TaskFailed",
    "expand",
    "load_experiment",
    "make_plan",
    "parse_experiment",
    "summarize",
}


def test_all_is_pinned() -> None:
    assert set(orchestrator.__all__) == EXPECTED


def test_every_exported_name_exists_and_is_documented() -> None:
    for name in orchestrator.__all__:
        obj = getattr(orchestrator, name)
        assert obj.__doc__, f"{name} has no docstring"


def test_the_spec_knows_exactly_the_optimizers_the_trainers_have() -> None:
    # orchestrator may not import trainers (they are shipped, not imported), so the names are
    # written twice; this keeps the two lists equal.
    from orchestrator.spec import OPTIMIZERS
    from trainers.optim.config import OPTIMIZERS as TRAINER_OPTIMIZERS

    assert set(OPTIMIZERS) == set(TRAINER_OPTIMIZERS)
