"""How an experiment becomes results: spec -> plan -> engine -> report.

The public API is what ``__all__`` lists; a test pins it.
"""

from __future__ import annotations

from orchestrator.engine import Engine, EngineConfig
from orchestrator.errors import (
    BudgetError,
    OrchestrateError,
    RunCapped,
    RunInterrupted,
    SpecError,
    SpecIssue,
    TaskFailed,
)
from orchestrator.matrix import Task, expand
from orchestrator.plan import Plan, make_plan
from orchestrator.specfile import load_experiment, parse_experiment
from orchestrator.state import Journal
from orchestrator.summary import RunSummary, summarize

__all__ = [
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
]
