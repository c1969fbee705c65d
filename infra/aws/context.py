"""What the launch mechanics need of the provider, as a Protocol: its clients, clock, settings
and the few decisions it owns (image, tags, user-data). ``launch_plan``, ``launch``, ``ready``
and ``teardown`` take an ``AwsContext`` and never import ``AwsProvider``, so there is no import
circle, and a test may hand them any object of this shape.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from infra.aws.consistency import Backoff
from infra.clock import Clock
from infra.provider import Address, LaunchRequest, Machine, MachineRequest
from infra.tags import current_owner
from infra.transport.base import Transport

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

    from ami.resolve import ImageRef
    from ami.spec import ImageSpec
    from ami.userdata import HostKey
    from infra.aws.gc import Receipt
    from infra.aws.hostkeys import HostKeySource

TransportFactory = Callable[[Address], Transport]


@dataclass(frozen=True)
class Waits:
    """How long launch and teardown wait, and how often they look."""

    launch_timeout_s: float = 900.0  # running + host key + SSH; a cold DL AMI takes ~3-5 min
    poll_s: float = 5.0
    ssh_attempt_timeout_s: float = 20.0
    ssh_backoff_max_s: float = 20.0
    teardown_timeout_s: float = 600.0
    # How long a NotFound right after a create (or from TerminateInstances) is read as "not yet".
    not_found: Backoff = field(default_factory=Backoff)


def default_owner() -> str:
    """The ``orchestrate:owner`` of whoever launches (``infra.tags.current_owner``)."""
    return current_owner()


def ssh_transport_factory(address: Address) -> Transport:
    """The production transport: ``infra.transport.ssh.SshTransport`` (imported lazily)."""
    module = importlib.import_module("infra.transport.ssh")
    return cast(Transport, module.SshTransport(address))


class AwsContext(Protocol):
    """The provider as the launch mechanics see it (``AwsProvider`` is one)."""

    owner: str
    clock: Clock
    sleep: Callable[[float], None]
    waits: Waits
    transport_factory: TransportFactory
    subnet_id: str | None
    vpc_id: str | None
    use_private_ip: bool
    ssh_proxy: Address | None
    type_cache: dict[str, tuple[int, int]]
    lock: threading.Lock

    @property
    def ec2(self) -> EC2Client: ...

    @property
    def region(self) -> str: ...

    @property
    def host_keys(self) -> HostKeySource: ...

    def key_path(self, run_id: str) -> Path: ...

    def price(self, instance_type: str, spot: bool) -> float: ...

    def ingress(self) -> list[dict[str, Any]]: ...

    def new_host_key(self) -> HostKey | None: ...

    def release(self, machine_id: str) -> None: ...

    def render_user_data(self, req: MachineRequest, host_key: HostKey | None) -> str: ...

    def resolve_image(self, spec: ImageSpec) -> ImageRef: ...

    def tags_for(self, req: MachineRequest, image: ImageRef, spec: ImageSpec) -> dict[str, str]: ...


class BakeContext(AwsContext, Protocol):
    """What a bake needs besides the launch context: the provider's own verbs."""

    def prepare(self, req: MachineRequest) -> LaunchRequest: ...

    def acquire(self, launch: LaunchRequest, *, token: str) -> Machine: ...

    def connect(self, machine: Machine) -> Transport: ...

    def teardown_run(self, run_id: str) -> Receipt: ...
