"""EC2 facts the plan needs before any credentials: the default region, GPUs per type.

Kept in infra so the orchestrator holds no cloud knowledge beyond provider names (STYLE.md).
"""

from __future__ import annotations

# Where a file that names no region launches, prices and sweeps: boto3 has no default of its
# own, and the bundled price catalog covers this region first.
DEFAULT_REGION = "us-east-1"

# GPUs per instance type for the types we support: what a launch of that type will get.
GPUS_PER_TYPE = {
    "g4dn.xlarge": 1,
    "g4dn.2xlarge": 1,
    "g5.xlarge": 1,
    "g5.2xlarge": 1,
    "g6.xlarge": 1,
    "p3.2xlarge": 1,
    "p4d.24xlarge": 8,
}


def gpus_of(instance_type: str) -> int:
    """GPUs an instance of ``instance_type`` has (0 for a type not in the table: CPU)."""
    return GPUS_PER_TYPE.get(instance_type, 0)
