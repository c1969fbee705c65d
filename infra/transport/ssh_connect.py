"""How an SSH connection is opened: the pinned host keys, a tuned socket, the round trip.

Kept apart from ``ssh.py`` (which holds the one exception-translation table) because none of
this catches anything: it only configures paramiko objects the transport then uses. paramiko
is passed in (or imported inside), so importing ``infra`` never needs the ssh extra.
"""

from __future__ import annotations

import base64
import os
import socket
import time
from typing import TYPE_CHECKING, Any

from infra.errors import HostKeyMismatch
from infra.provider import Address

if TYPE_CHECKING:
    import paramiko


def tuned_transport(sock: Any, **kwargs: Any) -> paramiko.Transport:
    """A paramiko Transport on a TCP_NODELAY socket that offers AES-GCM first.

    Nagle's algorithm held each small request (channel open, poll) until the server's delayed
    ACK, a flat ~40 ms per round trip here; AEAD skips the separate HMAC pass (about 25% more
    bulk throughput here). The server still chooses from our cipher list.
    """
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    import paramiko  # already loaded: paramiko calls us

    transport = paramiko.Transport(sock, **kwargs)
    opts = transport.get_security_options()
    opts.ciphers = tuple(sorted(opts.ciphers, key=lambda c: not c.startswith("aes128-gcm")))
    return transport


def round_trip(transport: paramiko.Transport, timeout_s: float) -> float:
    """The link's round trip: the faster of two channel opens (each is one round trip; the
    first after login also waits for the server to set up the session, so it runs long)."""
    best = float("inf")
    for _ in range(2):
        t0 = time.monotonic()
        transport.open_session(timeout=timeout_s).close()
        best = min(best, time.monotonic() - t0)
    return best


def pinned_key(pm: Any, address: Address) -> Any | None:
    """The pinned host key as a paramiko ``PKey`` (None without one).

    Accepts an OpenSSH public key line ("ssh-ed25519 AAAA... comment") or a known_hosts line
    ("[host]:port ssh-ed25519 AAAA..."). Raises what paramiko or base64 raise for a bad one;
    the transport turns that into ``HostKeyMismatch``.
    """
    if not address.host_key:
        return None
    parts = address.host_key.split()
    if len(parts) >= 3 and not parts[0].startswith(("ssh-", "ecdsa-", "sk-")):
        parts = parts[1:]
    if len(parts) < 2:
        raise ValueError(f"expected 'TYPE BASE64', got {address.host_key!r}")
    return pm.PKey.from_type_string(parts[0], base64.b64decode(parts[1], validate=True))


def pin(pm: Any, client: paramiko.SSHClient, address: Address, key: Any, where: str) -> None:
    """Teach ``client`` the only host keys it may accept, and to refuse any other."""
    if key is not None:
        name = address.host if address.port == 22 else f"[{address.host}]:{address.port}"
        client.get_host_keys().add(name, key.get_name(), key)
    if address.known_hosts:
        client.load_host_keys(os.path.expanduser(address.known_hosts))
    if key is None and not address.known_hosts:
        raise HostKeyMismatch(f"{where}: no pinned host key and no known_hosts file; refusing")

    class RefuseUnknown(pm.RejectPolicy):  # type: ignore[misc,name-defined]
        def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
            raise HostKeyMismatch(
                f"{where} presented a {key.get_name()} host key, and none of that type is "
                "pinned for it; refusing to connect"
            )

    client.set_missing_host_key_policy(RefuseUnknown())
