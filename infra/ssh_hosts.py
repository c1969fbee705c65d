"""SshHostsProvider: machines you already own, reached over SSH with pinned host keys.

Nothing is created or destroyed: ``acquire`` checks that the host answers (one connection, one
command) and ``release`` only forgets it. Hosts come from the experiment file as ``HostSpec``s
(``infra.host_spec``), so the engine needs no SSH knowledge to build this provider.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from infra.errors import ProviderError
from infra.host_spec import HostSpec
from infra.provider import Address, ApiCall, LaunchRequest, Machine, MachineRequest
from infra.ssh_python import AUTO, auto_python
from infra.transport.base import Transport
from infra.transport.ssh import SshTransport

__all__ = ["HostSpec", "SshHostsProvider"]


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
        """The hosts this provider object holds (of ``run_id`` when given)."""
        return [m for (rid, _), m in self._held.items() if run_id is None or rid == run_id]

    def connect(self, machine: Machine) -> SshTransport:
        """An SSH transport to ``machine`` with its host key pinned."""
        if machine.address is None:
            raise ProviderError(f"machine {machine.id} has no SSH address")
        return self._transport(machine.address)

    def reconnect(self, run_id: str, name: str) -> SshTransport:
        """A connection to host ``name`` for a run's ``down`` (any run: the host is ours to
        reach, not to stop); it answers one command first, so an unreachable host raises
        ``ConnectError`` once instead of once per job."""
        transport = self._transport(self._spec(name).address)
        try:
            transport.run(["true"])
        except BaseException:
            transport.close()
            raise
        return transport

    def teardown_run(self, run_id: str) -> None:
        """Hosts are not ours to remove: a run makes nothing on them to tear down."""
        return None

    def locate(self, run_id: str, name: str) -> Machine | None:
        """Host ``name`` as the inventory has it (hosts outlive runs); None if it has none."""
        spec = self.hosts.get(name)
        if spec is None:
            return None
        return Machine(
            id=f"ssh:{spec.name}:{run_id}",
            provider=self.name,
            name=spec.name,
            address=spec.address,
            gpus=spec.gpus,
            cpus=spec.cpus or 0,
            hourly_usd=spec.hourly_usd,
            started_at=datetime.now(UTC),
            instance_type=f"{spec.host}:{spec.port}",
            python=spec.python,
            workspace_root=spec.workspace_root,
        )

    def bootstrap(
        self, machine: Machine, transport: Transport, *, first: str | None = None
    ) -> Machine:
        """``python: auto`` hosts get a venv with the trainers' packages (infra.ssh_python);
        any other host runs the interpreter its entry names, as it is. Not staged (``first``
        unused): a host's venv is kept between runs, so only its first run installs."""
        if machine.python != AUTO:
            return machine
        return auto_python(machine, transport)

    def _transport(self, address: Address) -> SshTransport:
        connect, deadline, keepalive = self._timeouts
        return SshTransport(
            address, connect_timeout_s=connect, deadline_s=deadline, keepalive_s=keepalive
        )
