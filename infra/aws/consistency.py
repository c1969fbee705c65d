"""Eventual consistency of the EC2 API: a ``NotFound`` right after a create means "not yet".

EC2 documents that an id returned by ``RunInstances`` or ``CreateSecurityGroup`` may not have
propagated when the next call names it: ``DescribeInstances`` can answer
``InvalidInstanceID.NotFound`` and ``AuthorizeSecurityGroupIngress`` ``InvalidGroup.NotFound``
for a resource that exists. And a ``NotFound`` from ``TerminateInstances`` does not mean the
instance is (or will be) terminated: it may still be running, so only a describe confirms it.
(https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html)

``until_visible`` retries such a call with bounded exponential backoff; every other error, and
the last ``NotFound`` once the budget is spent, goes to the caller unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from infra.aws.errors import error_code

T = TypeVar("T")

INSTANCE_NOT_YET = frozenset({"InvalidInstanceID.NotFound"})
GROUP_NOT_YET = frozenset({"InvalidGroup.NotFound"})


@dataclass(frozen=True)
class Backoff:
    """Bounded exponential backoff: ``first_s``, doubling up to ``max_s``, ``total_s`` in all."""

    first_s: float = 1.0
    max_s: float = 16.0
    total_s: float = 60.0

    def delays(self) -> list[float]:
        """The sleeps between attempts, in order (their sum never exceeds ``total_s``)."""
        out: list[float] = []
        delay, spent = self.first_s, 0.0
        while spent + delay <= self.total_s:
            out.append(delay)
            spent += delay
            delay = min(delay * 2, self.max_s)
        return out


def code_of(exc: BaseException) -> str:
    """The AWS error code of ``exc`` or of the botocore error it was translated from."""
    return error_code(exc) or (error_code(exc.__cause__) if exc.__cause__ else "")


def until_visible(
    call: Callable[[], T],
    *,
    codes: frozenset[str],
    sleep: Callable[[float], None],
    backoff: Backoff | None = None,
) -> T:
    """``call()``, retried while it fails with one of ``codes`` and the backoff lasts."""
    for delay in (backoff or Backoff()).delays():
        try:
            return call()
        except Exception as exc:
            if code_of(exc) not in codes:
                raise
        sleep(delay)
    return call()
