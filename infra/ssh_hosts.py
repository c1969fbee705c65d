"""SshHostsProvider: machines you already own, reached over SSH with pinned host keys.

Nothing is created or destroyed: ``acquire`` checks that the host answers (one connection, one
command) and ``release`` only forgets it. Hosts come from the experiment file as plain dicts
(``HostSpec.from_dict``), so the engine needs no SSH knowledge to build this provider.

``bootstrap`` prepares a workspace on any ``Transport`` (SSH or local): it creates the
directory, runs the setup steps once per setup hash (a marker file holds the hash), and
reports the Python and framework versions found.
"""

from __future__ import annotations

import difflib
import getpass
import json
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from infra.errors import CommandFailed, ProviderError
from infra.provider import Address, ApiCall, LaunchRequest, Machine, MachineRequest
from infra.ssh_python import AUTO, auto_python
from infra.transport.base import Transport
from infra.transport.ssh import SshTransport

# Keys a host entry may use in the experiment file, and the field each one fills.
_ALIASES = {"key": "key_path", "identity_file": "key_path", "workspace": "workspace_root"}


@dataclass(frozen=True)
class HostSpec:
    """One host from the inventory.

    ``cpus`` None means "ask the host" (``nproc`` at acquire); ``slots`` is how many tasks the
    plan may run on it at once. One of ``host_key`` (an OpenSSH public key line) or
    ``known_hosts`` (a file) pins the host key; without either, connecting is refused.
    """

    name: str
    host: str
    port: int = 22
    user: str = field(default_factory=getpass.getuser)
    key_path: str | None = None
    gpus: int = 0
    cpus: int | None = None
    slots: int = 1
    host_key: str | None = None
    known_hosts: str | None = None
    python: str = "python3"
    workspace_root: str = "orchestrate"
    hourly_usd: float = 0.0
    jump: Address | None = None  # ProxyJump host (infra.ssh_config)

    @property
    def address(self) -> Address:
        return Address(
            host=self.host,
            port=self.port,
            user=self.user,
            key_path=self.key_path,
            host_key=self.host_key,
            known_hosts=self.known_hosts,
            jump=self.jump,
        )

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> HostSpec:
        """Build from ``{host, port, user, key, gpus, ...}``; every problem reported at once.

        ``name`` defaults to ``host`` (``host:port`` when the port is not 22).
        """
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        problems: list[str] = []
        for key, value in raw.items():
            target = _ALIASES.get(key, key)
            if target not in known:
                close = difflib.get_close_matches(key, sorted(known | set(_ALIASES)), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(f"unknown key {key!r}{hint}")
                continue
            values[target] = value
        if "host" not in values:
            problems.append("missing key 'host'")
        for name in ("port", "gpus", "cpus", "slots"):
            if values.get(name) is not None:
                try:
                    values[name] = int(values[name])
                except (TypeError, ValueError):
                    problems.append(f"{name} must be an integer, not {values[name]!r}")
        if problems:
            where = values.get("name") or values.get("host") or "?"
            raise ProviderError(f"ssh host {where}: " + "; ".join(problems))
        values.setdefault(
            "name",
            values["host"]
            if values.get("port", 22) == 22
            else f"{values['host']}:{values['port']}",
        )
        return cls(**values)


@dataclass(frozen=True)
class BootstrapReport:
    """What ``bootstrap`` found and did on a machine."""

    python_version: str
    frameworks: Mapping[str, str | None]  # distribution -> version, None when absent
    setup_ran: bool


DEFAULT_FRAMEWORKS = ("tensorflow", "tensorflow-cpu", "pytensor", "numba", "numpy", "jax")
SETUP_MARKER = ".orchestrate-setup"

_VERSIONS = """
import importlib.metadata as md, json, platform, sys
out = {}
for name in sys.argv[1:]:
    try:
        out[name] = md.version(name)
    except md.PackageNotFoundError:
        out[name] = None
print(json.dumps({"python": platform.python_version(), "frameworks": out}))
"""


def bootstrap(
    transport: Transport,
    workspace: str,
    setup_steps: Sequence[str],
    setup_hash: str,
    *,
    python: str = "python3",
    frameworks: Iterable[str] = DEFAULT_FRAMEWORKS,
) -> BootstrapReport:
    """Make ``workspace`` ready: create it, run ``setup_steps`` unless already run for this
    ``setup_hash``, then report Python and framework versions.

    Contract:
      1. Idempotent: a second call with the same hash runs no step.
      2. Steps run in order under ``sh -c``; the first failure raises ``CommandFailed`` and
         leaves no marker, so the next call runs them all again.
      3. A missing interpreter raises ``ProviderError`` naming it.
    """
    ws = shlex.quote(workspace)
    marker = f"{workspace}/{SETUP_MARKER}"
    done = transport.run(
        ["sh", "-c", f"mkdir -p {ws} && cat {ws}/{SETUP_MARKER} 2>/dev/null; true"]
    )
    ran = done.stdout.strip() != setup_hash
    if ran:
        for step in setup_steps:
            transport.run(["sh", "-c", step], env={"ORCHESTRATE_WORKSPACE": workspace})
        transport.run(["sh", "-c", f"printf %s {shlex.quote(setup_hash)} > {shlex.quote(marker)}"])
    try:
        found = transport.run([python, "-c", _VERSIONS, *frameworks])
    except CommandFailed as exc:
        raise ProviderError(
            f"{python} did not run on the machine (exit {exc.result.exit_code}): "
            f"{exc.result.tail()}; install Python 3.11+ there or set the host's 'python'"
        ) from exc
    data = json.loads(found.stdout)
    return BootstrapReport(data["python"], data["frameworks"], ran)


class SshHostsProvider:
    """A ``Provider`` over a fixed inventory of SSH hosts.

    Args:
        hosts: ``HostSpec``s or plain dicts (``{host, port, user, key, gpus, ...}``).
        connect_timeout_s, deadline_s, keepalive_s: passed to every ``SshTransport``.
    """

    name = "ssh"

    def __init__(
        self,
        hosts: Sequence[HostSpec | Mapping[str, Any]],
        *,
        connect_timeout_s: float = 10.0,
        deadline_s: float = 60.0,
        keepalive_s: float = 15.0,
    ) -> None:
        specs = [h if isinstance(h, HostSpec) else HostSpec.from_dict(h) for h in hosts]
        names = [s.name for s in specs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ProviderError(f"ssh hosts need unique names; repeated: {', '.join(dupes)}")
        self.hosts: dict[str, HostSpec] = {s.name: s for s in specs}
        self._timeouts = (connect_timeout_s, deadline_s, keepalive_s)
        self._held: dict[tuple[str, str], Machine] = {}

    def _spec(self, name: str) -> HostSpec:
        spec = self.hosts.get(name)
        if spec is None:
            close = difflib.get_close_matches(name, list(self.hosts), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ProviderError(
                f"no ssh host named {name!r} (known: {', '.join(self.hosts) or 'none'}){hint}"
            )
        return spec

    def prepare(self, req: MachineRequest) -> LaunchRequest:
        """The host named ``req.name``; no side effects (no connection is made)."""
        spec = self._spec(req.name)
        if req.gpus > spec.gpus:
            raise ProviderError(f"ssh host {spec.name} has {spec.gpus} GPUs; {req.gpus} requested")
        check = ApiCall(
            "ssh.check", {"host": spec.host, "port": spec.port, "user": spec.user, "run": "true"}
        )
        return LaunchRequest(
            provider=self.name,
            request=req,
            calls=(check,),
            hourly_usd=spec.hourly_usd,
            summary=f"{spec.user}@{spec.host}:{spec.port} ({spec.gpus} GPUs, {spec.slots} slots)",
        )

    def acquire(self, launch: LaunchRequest, *, token: str) -> Machine:
        """Check the host answers (connect, run one command) and record it as held.

        Raises ``ConnectError`` for a host that never answers, ``HostKeyMismatch`` for one
        that presents another key. Acquiring the same run/host again returns the same record.
        """
        req = launch.request
        key = (req.run_id, req.name)
        if key in self._held:
            return self._held[key]
        spec = self._spec(req.name)
        with self._transport(spec.address) as transport:
            probe = transport.run(["true"] if spec.cpus else ["nproc"])
        cpus = spec.cpus or int(probe.stdout.strip() or 1)
        machine = Machine(
            id=f"ssh:{spec.name}:{req.run_id}",
            provider=self.name,
            name=spec.name,
            address=spec.address,
            gpus=spec.gpus,
            cpus=cpus,
            hourly_usd=spec.hourly_usd,
            started_at=datetime.now(UTC),
            tags=dict(req.tags),
            instance_type=f"{spec.host}:{spec.port}",
            python=spec.python,
            workspace_root=spec.workspace_root,
        )
        self._held[key] = machine
        return machine

    def release(self, machine_id: str) -> None:
        """Forget the host (it is not ours to stop); unknown ids are fine."""
        for key, machine in list(self._held.items()):
            if machine.id == machine_id:
                del self._held[key]

    def owned(self, *, run_id: str | None = None) -> list[Machine]:
        return [m for (rid, _), m in self._held.items() if run_id is None or rid == run_id]

    def connect(self, machine: Machine) -> SshTransport:
        if machine.address is None:
            raise ProviderError(f"machine {machine.id} has no SSH address")
        return self._transport(machine.address)

    def bootstrap(self, machine: Machine, transport: Transport) -> Machine:
        """``python: auto`` hosts get a venv with the trainers' packages (infra.ssh_python);
        any other host runs the interpreter its entry names, as it is."""
        if machine.python != AUTO:
            return machine
        return auto_python(machine, transport)

    def _transport(self, address: Address) -> SshTransport:
        connect, deadline, keepalive = self._timeouts
        return SshTransport(
            address, connect_timeout_s=connect, deadline_s=deadline, keepalive_s=keepalive
        )
