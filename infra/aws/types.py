"""Instance-type facts from EC2 itself (``DescribeInstanceTypes``), cached on disk.

What a type gives (vCPUs, memory, GPU model and count) is EC2's answer, not a hand table:
a type the table never heard of (``p5.48xlarge``) still plans with its 8 GPUs. Answers are
kept in ``<state>/aws/instance-types.json`` (hardware does not change, so the cache never
expires), and the bundled table (``infra.aws.facts``) is only the offline fallback when there
are no credentials to ask with.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.aws.errors import aws_errors
from infra.aws.facts import INSTANCE_TYPES, TypeInfo
from infra.errors import OrchestrateError

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

CACHE_FILE = "instance-types.json"


def info_of(row: Any) -> TypeInfo:
    """A ``TypeInfo`` from one ``DescribeInstanceTypes`` row."""
    gpus = row.get("GpuInfo", {}).get("Gpus", [])
    first = gpus[0] if gpus else {}
    return TypeInfo(
        vcpus=int(row.get("VCpuInfo", {}).get("DefaultVCpus", 0)),
        memory_gib=round(int(row.get("MemoryInfo", {}).get("SizeInMiB", 0)) / 1024, 3),
        gpu=str(first["Name"]) if first.get("Name") else None,
        gpus=sum(int(g.get("Count", 0)) for g in gpus),
        gpu_memory_gib=round(int(first.get("MemoryInfo", {}).get("SizeInMiB", 0)) / 1024, 3),
    )


def describe_types(ec2: EC2Client, types: Iterable[str]) -> dict[str, TypeInfo]:
    """EC2's facts for each of ``types`` it knows (an ``instance-type`` filter, so a name EC2
    does not know is left out instead of failing the call)."""
    wanted = sorted(set(types))
    out: dict[str, TypeInfo] = {}
    if not wanted:
        return out
    with aws_errors():
        pages = ec2.get_paginator("describe_instance_types").paginate(
            Filters=[{"Name": "instance-type", "Values": wanted}]
        )
        for page in pages:
            for row in page.get("InstanceTypes", []):
                out[str(row["InstanceType"])] = info_of(row)
    return out


class TypeFacts:
    """Facts per instance type: the disk cache, else EC2 (then cached), else the table."""

    def __init__(self, state_dir: Path | None, ec2: Callable[[], EC2Client] | None) -> None:
        self._path = state_dir / CACHE_FILE if state_dir is not None else None
        self._ec2 = ec2
        self._unknown: set[str] = set()
        self.cached: dict[str, TypeInfo] = self._load()

    def _load(self) -> dict[str, TypeInfo]:
        if self._path is None or not self._path.exists():
            return {}
        try:
            data = json.loads(self._path.read_text())
            return {name: TypeInfo(**fields) for name, fields in data.items()}
        except (OSError, ValueError, TypeError):
            return {}  # a broken cache is only a slower plan

    def _save(self) -> None:
        if self._path is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        data = {name: asdict(info) for name, info in sorted(self.cached.items())}
        self._path.write_text(json.dumps(data, indent=1))

    def info(self, instance_type: str, *also: str) -> TypeInfo | None:
        """What ``instance_type`` gives; None if neither EC2 nor the table knows it.

        ``also`` are types described in the same call (a machine's fallbacks)."""
        known = instance_type in self.cached or instance_type in self._unknown
        if not known and self._ec2 is not None:
            asked = (instance_type, *also)
            try:
                found = describe_types(self._ec2(), asked)
            except OrchestrateError:
                self._ec2, found = None, {}  # no credentials: the table answers from now on
            self._unknown.update(t for t in asked if t not in found)
            if found:
                self.cached.update(found)
                self._save()
        return self.cached.get(instance_type) or INSTANCE_TYPES.get(instance_type)

    def gpus(self, instance_type: str) -> int:
        """GPUs an instance of ``instance_type`` has (0 for a type nobody knows: CPU)."""
        info = self.info(instance_type)
        return info.gpus if info is not None else 0


def type_facts(state_dir: str, *, profile: str | None, region: str | None) -> TypeFacts:
    """The facts for plans of one AWS config (its state dir holds the cache)."""

    def ec2() -> EC2Client:
        from infra.aws.session import ec2_client, make_session

        return ec2_client(make_session(profile=profile, region=region))

    return TypeFacts(Path(state_dir), ec2)
