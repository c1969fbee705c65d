"""``~/.ssh/config`` aliases for ``provider: ssh`` hosts, read with paramiko's ``SSHConfig``.

A host entry's ``host:`` may be an alias the user already reaches with ``ssh ALIAS``. What the
config says for it (``HostName``, ``User``, ``Port``, ``IdentityFile``, ``ProxyJump``,
``UserKnownHostsFile``) fills what the entry leaves out; what the entry says wins. Rules:

1. The file is ``ssh_config:`` from the experiment, else ``$ORCHESTRATE_SSH_CONFIG``, else
   ``~/.ssh/config``; a missing default file means "no aliases", a missing named file is an
   error (the user pointed at it).
2. Host keys are still pinned: the entry's ``host_key``/``known_hosts``, else the config's
   ``UserKnownHostsFile``; nothing is accepted on first use (``StrictHostKeyChecking`` is not
   read). A ``ProxyJump`` host is verified the same way, from its own config entry or the
   entry's ``known_hosts`` file.
3. ``ProxyJump`` takes the first hop of a comma list, each hop resolved through the same file
   (``user@host:port`` forms too); chains are followed up to ``MAX_JUMPS``.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.errors import ProviderError
from infra.provider import Address

SSH_CONFIG_ENV = "ORCHESTRATE_SSH_CONFIG"
MAX_JUMPS = 4


def config_path(explicit: str | None = None) -> tuple[Path, bool]:
    """The config file to read and whether the user named it (rule 1)."""
    if explicit:
        return Path(explicit).expanduser(), True
    if env := os.environ.get(SSH_CONFIG_ENV):
        return Path(env).expanduser(), True
    return Path("~/.ssh/config").expanduser(), False


@dataclass(frozen=True)
class ResolvedHost:
    """What ``ssh ALIAS`` would use: the real host name, port, user, key and jump host."""

    hostname: str
    port: int | None
    user: str | None
    identity_file: str | None
    known_hosts: str | None
    proxy_jump: str | None


class OpenSshConfig:
    """One parsed config file; ``resolve(alias)`` applies its ``Host`` blocks like ssh does."""

    def __init__(self, path: Path | None = None, *, named: bool = False) -> None:
        self.path = path
        self._config: Any = None
        if path is None:
            return
        if not path.is_file():
            if named:
                raise ProviderError(f"ssh_config {path} does not exist")
            return
        import paramiko

        self._config = paramiko.SSHConfig.from_path(str(path))

    @classmethod
    def load(cls, explicit: str | None = None) -> OpenSshConfig:
        """The config file of rule 1 (the named file must exist; the default may not)."""
        path, named = config_path(explicit)
        return cls(path, named=named)

    def resolve(self, alias: str) -> ResolvedHost:
        """What ``ssh ALIAS`` would use for ``alias``: host name, port, user, key, jump."""
        if self._config is None:
            return ResolvedHost(alias, None, None, None, None, None)
        found = self._config.lookup(alias)
        files = found.get("identityfile") or []
        known = (found.get("userknownhostsfile") or "").split()
        port = found.get("port")
        return ResolvedHost(
            hostname=found.get("hostname", alias),
            port=int(port) if port else None,
            user=found.get("user"),
            identity_file=os.path.expanduser(files[0]) if files else None,
            known_hosts=os.path.expanduser(known[0]) if known else None,
            proxy_jump=found.get("proxyjump"),
        )

    def jump_address(
        self, proxy_jump: str | None, *, known_hosts: str | None, depth: int = 0
    ) -> Address | None:
        """The ``Address`` of a ``ProxyJump`` value (rule 3), pinned by rule 2."""
        if not proxy_jump or proxy_jump.lower() == "none":
            return None
        if depth >= MAX_JUMPS:
            raise ProviderError(f"ProxyJump chain longer than {MAX_JUMPS} hops in {self.path}")
        hop = proxy_jump.split(",")[0].strip()
        user, _, rest = hop.rpartition("@")
        name, _, port = rest.partition(":")
        r = self.resolve(name)
        pinned = r.known_hosts or known_hosts
        if pinned is None:
            raise ProviderError(
                f"ProxyJump {hop}: its host key cannot be pinned; give the host entry a "
                "known_hosts file holding both keys, or UserKnownHostsFile in the ssh config"
            )
        return Address(
            host=r.hostname,
            port=int(port) if port else (r.port or 22),
            user=user or r.user or getpass.getuser(),
            key_path=r.identity_file,
            known_hosts=pinned,
            jump=self.jump_address(r.proxy_jump, known_hosts=pinned, depth=depth + 1),
        )
