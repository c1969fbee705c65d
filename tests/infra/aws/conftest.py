"""moto fixtures for the aws provider: fake credentials -> mock_aws -> clients made inside it.

``fail_call`` is the one seam for errors moto cannot produce (InsufficientInstanceCapacity,
UnauthorizedOperation, quota errors): a botocore ``before-call`` handler that answers one
operation with an error response, optionally only when a predicate on its parameters holds.
Everything else is moto's stateful EC2.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from ami.spec import ImageSpec
from infra.aws.context import Waits
from infra.aws.provider import AwsProvider
from infra.errors import ConnectError
from infra.provider import Address, MachineRequest
from infra.transport.base import Result

REGION = "us-east-1"
START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
# moto ships Canonical's xenial and trusty images; the filter picks the newer by name/date.
TEST_SPEC = ImageSpec(
    name="test-ubuntu",
    owner="099720109477",
    name_filter="ubuntu/images/hvm-ssd/ubuntu-*-amd64-server-*",
)


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials, so nothing can reach a real account."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL_SSM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@pytest.fixture
def mocked_aws(aws_credentials: None) -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def ec2(mocked_aws: None) -> Any:
    return boto3.client("ec2", region_name=REGION)


@pytest.fixture
def ssm(mocked_aws: None) -> Any:
    return boto3.client("ssm", region_name=REGION)


class FakeClock:
    """Wall and monotonic time that move only when something sleeps."""

    def __init__(self, start: datetime = START) -> None:
        self.start = start
        self.elapsed = 0.0
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed)

    def monotonic(self) -> float:
        return self.elapsed

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.elapsed += seconds


@dataclass
class FakeSsh:
    """A transport factory: records each address, answers `true` after ``fail_first`` tries."""

    fail_first: int = 0
    addresses: list[Address] = field(default_factory=list)
    commands: list[tuple[str, ...]] = field(default_factory=list)
    closed: int = 0

    def __call__(self, address: Address) -> FakeSsh:
        self.addresses.append(address)
        return self

    def run(self, argv: Sequence[str], **_: Any) -> Result:
        self.commands.append(tuple(argv))
        if self.fail_first > 0:
            self.fail_first -= 1
            raise ConnectError("connection refused")
        return Result(tuple(argv), 0, "", "", 0.01)

    def close(self) -> None:
        self.closed += 1


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ssh() -> FakeSsh:
    return FakeSsh()


@pytest.fixture
def make_provider(
    ec2: Any, ssm: Any, tmp_path: Path, clock: FakeClock, ssh: FakeSsh
) -> Callable[..., AwsProvider]:
    def make(**overrides: Any) -> AwsProvider:
        kwargs: dict[str, Any] = dict(
            state_dir=tmp_path / "state",
            ec2=ec2,
            ssm=ssm,
            region=REGION,
            ssh_cidr="203.0.113.7/32",
            owner="tester@example",
            clock=clock,
            sleep=clock.sleep,
            transport_factory=ssh,
            waits=Waits(launch_timeout_s=120, poll_s=1, teardown_timeout_s=60),
        )
        kwargs.update(overrides)
        return AwsProvider(**kwargs)

    return make


@pytest.fixture
def provider(make_provider: Callable[..., AwsProvider]) -> AwsProvider:
    return make_provider()


def machine_request(
    run_id: str = "run-1",
    *,
    types: tuple[str, ...] = ("t3.micro",),
    spot: str = "no",
    name: str = "cpu",
    hours: float = 2.0,
) -> MachineRequest:
    return MachineRequest(
        run_id=run_id,
        name=name,
        instance_types=types,
        image=TEST_SPEC,
        spot=spot,  # type: ignore[arg-type]
        deadline=START + timedelta(hours=hours),
        tags={"orchestrate:owner": "tester@example"},
    )


def fail_call(
    client: Any,
    operation: str,
    code: str,
    *,
    when: Callable[[dict[str, Any]], bool] = lambda _: True,
    message: str = "injected by the test",
    times: int | None = None,
) -> list[dict[str, Any]]:
    """Make ``operation`` answer ``code`` (when ``when(params)``, the first ``times`` such
    calls only when given); returns the params seen."""
    seen: list[dict[str, Any]] = []
    left = [times]

    def capture(params: dict[str, Any], **_: Any) -> None:
        seen.append(dict(params))  # the API parameters, before serialisation

    def answer(**_: Any) -> Any:
        if not when(seen[-1]) or left[0] == 0:
            return None  # let moto answer
        if left[0] is not None:
            left[0] -= 1
        body = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {}}
        return (_Http(400), body)

    client.meta.events.register(f"before-parameter-build.ec2.{operation}", capture)
    client.meta.events.register(f"before-call.ec2.{operation}", answer)
    return seen


@dataclass
class _Http:
    status_code: int
    headers: dict[str, str] = field(default_factory=dict)
    text: str = ""
