"""``HostSpec``: one host of an ``provider: ssh`` inventory, as plain data.

Kept apart from ``infra.ssh_hosts`` (the provider, which imports paramiko) so the provider
registry can store and rebuild an inventory without importing an SSH client.
"""

from __future__ import annotations

import difflib
import getpass
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from infra.errors import ProviderError
from infra.provider import Address

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
        """How to reach the host, its key pinned (and its ProxyJump host, if any)."""
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
