"""The experiment's ``hosts:`` -> ``HostSpec``s, with ssh config aliases resolved.

An entry's own values win; what it leaves out comes from the ssh config (``infra.ssh_config``:
HostName, Port, User, IdentityFile, UserKnownHostsFile, ProxyJump), then ssh's defaults (port
22, the local user, ssh's own keys). A host is named as written (the alias), so run tables and
``--resume`` keep the name the user chose.
"""

from __future__ import annotations

import getpass
from pathlib import Path

from infra.host_spec import HostSpec
from infra.known_hosts import has_key_for, host_name
from infra.ssh_config import OpenSshConfig
from orchestrator.spec import Experiment

Loc = tuple[str | int, ...]


def _path(value: str | None) -> str | None:
    return str(Path(value).expanduser()) if value else None


def host_specs(exp: Experiment) -> list[HostSpec]:
    """The experiment's hosts with ssh config aliases resolved (see the module's rules)."""
    config = OpenSshConfig.load(exp.ssh_config)
    specs = []
    for h in exp.hosts:
        r = config.resolve(h.host)
        port = h.port or r.port or 22
        known_hosts = _path(h.known_hosts) or r.known_hosts
        specs.append(
            HostSpec(
                name=h.name or (f"{h.host}:{h.port}" if h.port not in (None, 22) else h.host),
                host=r.hostname,
                port=port,
                user=h.user or r.user or getpass.getuser(),
                key_path=_path(h.key) or r.identity_file,
                gpus=h.gpus,
                slots=h.slots,
                host_key=h.host_key,
                known_hosts=known_hosts,
                python=h.python,
                workspace_root=h.workspace_root,
                jump=config.jump_address(r.proxy_jump, known_hosts=known_hosts),
            )
        )
    return specs


def unpinned_hosts(exp: Experiment, specs: list[HostSpec]) -> list[tuple[Loc, str, str]]:
    """Hosts whose key nothing pins, as (location, message, hint): the transport would refuse
    them at connect (exit 4) once the run has started, so ``plan`` says so first (exit 2).

    A key is pinned by the entry's ``host_key``, or by a ``known_hosts`` file (the entry's, or
    the ssh config's ``UserKnownHostsFile``) that holds a line for the host and port.
    """
    found: list[tuple[Loc, str, str]] = []
    for i, (entry, spec) in enumerate(zip(exp.hosts, specs, strict=True)):
        if spec.host_key:
            continue
        scan = f"ssh-keyscan -p {spec.port} {spec.host}"
        if not spec.known_hosts:
            found.append(
                (
                    ("hosts", i),
                    f"no host key pinned for {spec.name}: connecting would be refused",
                    f"add host_key: (the line `{scan}` prints, checked out of band) or "
                    "known_hosts: a file holding it",
                )
            )
            continue
        where: Loc = ("hosts", i, "known_hosts") if entry.known_hosts else ("hosts", i)
        try:
            pinned = has_key_for(Path(spec.known_hosts), spec.host, spec.port)
        except OSError as exc:
            found.append(
                (where, f"known_hosts file {spec.known_hosts} cannot be read: {exc.strerror}", "")
            )
            continue
        if not pinned:
            found.append(
                (
                    where,
                    f"{spec.known_hosts} has no key for {host_name(spec.host, spec.port)}: "
                    "connecting would be refused",
                    f"add the line `{scan}` prints (checked out of band), or give host_key:",
                )
            )
    return found
