"""One suite over every provider (issue 15, point 7): the Provider contract's rules hold for
``local``, ``ssh`` (a real sshd), ``aws`` (moto, with a recorded SSH stand-in where moto boots
nothing) and the shared fake, so the fake cannot drift from the real ones.

Each case hands the suite a provider and a request for one machine of run ``RUN``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from infra.provider import LaunchRequest, MachineRequest, Provider
from infra.registry import LocalConfig, SshConfig, open_provider
from infra.tags import machine_tags
from tests.fakes import FakeProvider
from tests.infra.aws.conftest import (  # noqa: F401 - fixtures the aws case uses
    aws_credentials,
    clock,
    ec2,
    machine_request,
    make_provider,
    mocked_aws,
    ssh,
    ssm,
)
from tests.sshd import SshdServer

RUN = "run-1"


@dataclass
class Case:
    provider: Provider
    request: MachineRequest


def _request(name: str) -> MachineRequest:
    deadline = datetime.now(UTC) + timedelta(hours=1)
    return MachineRequest(
        run_id=RUN, name=name, deadline=deadline, tags=machine_tags(RUN, name, deadline)
    )


@pytest.fixture(params=["local", "ssh", "aws", "fake"])
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Case]:
    kind = request.param
    if kind == "local":
        provider = open_provider(LocalConfig(workspace_root=str(tmp_path / "ws"), gpus=0, slots=1))
        yield Case(provider, _request("local"))
    elif kind == "ssh":
        fleet: Callable[[int], list[SshdServer]] = request.getfixturevalue("sshd_fleet")
        (server,) = fleet(1)
        from infra.host_spec import HostSpec

        host = HostSpec(
            name="box0",
            host=server.host,
            port=server.port,
            user=server.user,
            key_path=server.key_path,
            host_key=server.host_key,
            python=sys.executable,
            workspace_root=str(tmp_path / "remote"),
        )
        yield Case(open_provider(SshConfig((host,))), _request("box0"))
    elif kind == "aws":
        make: Callable[..., Any] = request.getfixturevalue("make_provider")
        yield Case(make(), machine_request(RUN))
    else:
        yield Case(FakeProvider(workspace_root=str(tmp_path / "fake")), _request("cpu"))


def test_prepare_builds_the_request_and_acquires_nothing(case: Case) -> None:
    launch = case.provider.prepare(case.request)
    assert isinstance(launch, LaunchRequest) and launch.provider == case.provider.name
    assert launch.request == case.request
    assert case.provider.owned(run_id=RUN) == []  # rule 1: no side effects


def test_the_same_token_never_makes_a_second_machine(case: Case) -> None:
    launch = case.provider.prepare(case.request)
    first = case.provider.acquire(launch, token=f"{RUN}-1")
    again = case.provider.acquire(launch, token=f"{RUN}-1")
    assert again.id == first.id  # rule 2
    assert [m.id for m in case.provider.owned(run_id=RUN)] == [first.id]  # rule 4


def test_release_is_idempotent(case: Case) -> None:
    machine = case.provider.acquire(case.provider.prepare(case.request), token=f"{RUN}-1")
    case.provider.release(machine.id)
    case.provider.release(machine.id)  # rule 3: a gone id returns silently
    case.provider.release("never-was")
    assert case.provider.owned(run_id=RUN) == []


def test_connect_reaches_the_machine(case: Case) -> None:
    machine = case.provider.acquire(case.provider.prepare(case.request), token=f"{RUN}-1")
    transport = case.provider.connect(machine)  # rule 5
    try:
        assert transport.run(["true"]).ok
    finally:
        transport.close()
        case.provider.release(machine.id)


def test_teardown_after_release_leaves_nothing(case: Case) -> None:
    machine = case.provider.acquire(case.provider.prepare(case.request), token=f"{RUN}-1")
    case.provider.release(machine.id)
    receipt = case.provider.teardown_run(RUN)  # rule 7
    assert receipt is None or receipt.ok
    again = case.provider.teardown_run(RUN)
    assert again is None or again.ok
