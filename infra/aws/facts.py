"""EC2 facts the plan needs before any credentials: the default region, the instance types
we support and what each gives (the GPU table).

Kept in infra so the orchestrator holds no cloud knowledge beyond provider names (STYLE.md).
"""

from __future__ import annotations

from dataclasses import dataclass

# Where a file that names no region launches, prices and sweeps: boto3 has no default of its
# own, and the bundled price catalog covers this region first.
DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class TypeInfo:
    """What one EC2 instance type gives (AWS's published figures)."""

    vcpus: int
    memory_gib: float
    gpu: str | None = None  # the GPU model, as AWS names it
    gpus: int = 0
    gpu_memory_gib: float = 0.0  # per GPU


# p3 (V100) is not here: current DLAMI drivers no longer support Volta.
INSTANCE_TYPES: dict[str, TypeInfo] = {
    "g4dn.xlarge": TypeInfo(4, 16, "T4", 1, 16),
    "g4dn.2xlarge": TypeInfo(8, 32, "T4", 1, 16),
    "g5.xlarge": TypeInfo(4, 16, "A10G", 1, 24),
    "g5.2xlarge": TypeInfo(8, 32, "A10G", 1, 24),
    "g6.xlarge": TypeInfo(4, 16, "L4", 1, 24),
    "p4d.24xlarge": TypeInfo(96, 1152, "A100", 8, 40),
    "c6i.xlarge": TypeInfo(4, 8),
    "c6i.2xlarge": TypeInfo(8, 16),
    "c6i.4xlarge": TypeInfo(16, 32),
    "c7i.2xlarge": TypeInfo(8, 16),
    "m6i.xlarge": TypeInfo(4, 16),
    "m6i.2xlarge": TypeInfo(8, 32),
    "t3.medium": TypeInfo(2, 4),
    "t3.large": TypeInfo(2, 8),
}
