"""The Provider contract and the frozen values that cross it.

A provider turns a ``MachineRequest`` (built by the plan) into a ``Machine`` and back into
nothing. ``prepare`` is the dry half of ``acquire`` (TorchX): ``plan`` prints exactly what
``acquire`` will send.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from ami.spec import ImageSpec
from infra.transport.base import Transport

# On a Machine whose cloud has an instance metadata service: its base URL, which the task
# wrapper on the machine polls for spot interruption and rebalance notices.
METADATA_TAG = "orchestrate:metadata-url"
EC2_METADATA_URL = "http://169.254.169.254"

SpotMode = Literal["no", "preferred", "required"]


@dataclass(frozen=True)
class MachineRequest:
    """What the plan wants of one machine; ``name`` is the machine class or host alias."""

    run_id: str
    name: str
    instance_types: tuple[str, ...] = ()
    image: ImageSpec | None = None
    spot: SpotMode = "no"
    gpus: int = 0
    deadline: datetime | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    region: str | None = None
    zones: tuple[str, ...] = ()  # the zones capacity fallback may use (empty: every zone)


@dataclass(frozen=True)
class ApiCall:
    """One call ``acquire`` will make, e.g. ``ApiCall("ec2.run_instances", {...})``."""

    name: str
    kwargs: Mapping[str, Any]


@dataclass(frozen=True)
class LaunchRequest:
    """The exact request ``acquire`` sends; what ``plan`` and ``run --dry-run`` print."""

    provider: str
    request: MachineRequest
    calls: tuple[ApiCall, ...] = ()
    hourly_usd: float = 0.0
    summary: str = ""
    # The provider's own resolved plan (image, network, candidates), which ``acquire`` executes
    # as is, filling in only secrets and the token: nothing ``prepare`` looked up is looked up
    # again (TorchX's ``schedule(submit_dryrun(...))``). Opaque to everyone else.
    resolved: object = field(default=None, compare=False, repr=False)

    def render(self) -> str:
        """A JSON-ish view for humans and ``--json``; secrets never appear in ``calls``."""
        return json.dumps(
            {
                "provider": self.provider,
                "machine": self.request.name,
                "instance_types": list(self.request.instance_types),
                "hourly_usd": self.hourly_usd,
                "calls": [{"call": c.name, "kwargs": c.kwargs} for c in self.calls],
            },
            indent=2,
            default=str,
        )


@dataclass(frozen=True)
class Address:
    """How to reach a remote machine over SSH, with the host key pinned."""

    host: str
    port: int = 22
    user: str = "ubuntu"
    key_path: str | None = None
    host_key: str | None = None  # "ssh-ed25519 AAAA..." pinned; or None with known_hosts
    known_hosts: str | None = None
    jump: Address | None = None  # ProxyJump: reached through this host (pinned the same way)


@dataclass(frozen=True)
class Machine:
    """A machine we hold; ``id`` is provider-unique and never reused."""

    id: str
    provider: str
    name: str
    address: Address | None
    gpus: int
    cpus: int
    hourly_usd: float
    started_at: datetime
    tags: Mapping[str, str] = field(default_factory=dict)
    instance_type: str = ""
    python: str = "python3"  # the interpreter that has the trainers' frameworks on this machine
    # Where runs' code and outputs live on the machine; relative paths are from the login home.
    workspace_root: str = "orchestrate"
    # While a staged setup still installs (``ami.stages``): the folder its markers appear in,
    # where a task waits for its own framework's; None once the machine is wholly set up.
    setup_ready_dir: str | None = None


@runtime_checkable
class Provider(Protocol):
    """Where machines come from.

    Contract:
      1. ``prepare`` has no side effects and needs no credentials for local/ssh.
      2. ``acquire`` blocks until the machine is reachable; the same ``token`` never makes a
         second machine; on any failure after creation it releases what it made, then raises
         ``CapacityError``, ``QuotaError``, ``CredentialsError`` or ``LaunchTimeout``.
      3. ``release`` is idempotent: an unknown or gone id returns silently.
      4. ``owned`` lists every machine carrying our tags (for status, down, gc).
      5. ``connect`` returns a ``Transport``: the engine never branches on provider type.
      6. ``reconnect`` reaches a machine of an earlier run from a fresh process (``down``
         after a crash), so its jobs can be stopped and fetched; None where a job ends with
         its machine (an EC2 instance: releasing it stops everything on it).
      7. ``teardown_run`` removes what a run made besides machines (key pair, security
         group) once they are released, and is idempotent; None where a run makes nothing
         else (local, ssh).
      8. ``locate`` finds machine ``name`` of an earlier run as it stands now (address,
         pinned key, workspace root; no address means this machine), or None when it is no
         longer there; it connects to nothing (``orchestrate ssh``).
    """

    name: str

    def prepare(self, req: MachineRequest) -> LaunchRequest: ...

    def acquire(self, launch: LaunchRequest, *, token: str) -> Machine: ...

    def release(self, machine_id: str) -> None: ...

    def owned(self, *, run_id: str | None = None) -> list[Machine]: ...

    def connect(self, machine: Machine) -> Transport: ...

    def reconnect(self, run_id: str, name: str) -> Transport | None: ...

    def teardown_run(self, run_id: str) -> Teardown | None: ...

    def locate(self, run_id: str, name: str) -> Machine | None: ...


class Teardown(Protocol):
    """What ``teardown_run`` returns: each resource of the run and its final state."""

    @property
    def ok(self) -> bool:
        """False when something was left behind (``down`` then fails, naming it)."""
        ...

    def render(self) -> str:
        """The receipt, one line per resource (kept as the run's ``teardown.txt``)."""
        ...


@runtime_checkable
class Bootstraps(Protocol):
    """Optional ability: make a fresh machine ready to run trainers (dstack-style capability).

    Called by the engine once per machine after ``connect``; returns the machine with its
    trainer interpreter set. Providers whose machines come ready (local, baked images) need
    not implement it. ``first``: the framework the machine's first task needs; a provider that
    sets up in stages may return once that one is in, the rest still installing, with the
    machine's ``setup_ready_dir`` set (tasks then wait there for their own framework).
    """

    def bootstrap(
        self, machine: Machine, transport: Transport, *, first: str | None = None
    ) -> Machine: ...
