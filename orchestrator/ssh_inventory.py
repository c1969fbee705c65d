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
from infra.ssh_config import SshConfig
from orchestrator.spec import Experiment


def _path(value: str | None) -> str | None:
    return str(Path(value).expanduser()) if value else None


def host_specs(exp: Experiment) -> list[HostSpec]:
    config = SshConfig.load(exp.ssh_config)
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
