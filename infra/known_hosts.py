"""Does a known_hosts file hold a key for a host? Read here so ``plan`` can say so.

Why: an ssh host with no pinned key is refused at connect (``infra.transport.ssh_connect``,
exit 4), after a run has already started. The plan reads the same file the transport will
load and says, located in the experiment file, that nothing pins the host (exit 2).

Matching is what the transport (paramiko's ``HostKeys``) accepts, no more: a line's first
field is a comma-separated list of names, each ``host`` (port 22) or ``[host]:port``, plain or
hashed (``|1|salt|hash``: HMAC-SHA1 of the name keyed by the salt). Lines with an ``@marker``
and wildcard patterns pin nothing there, so they count for nothing here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from pathlib import Path

MAX_BYTES = 16 << 20  # a known_hosts file larger than this is not read whole


def host_name(host: str, port: int) -> str:
    """The name a known_hosts line gives ``host:port`` (as ssh and paramiko look it up)."""
    return host if port == 22 else f"[{host}]:{port}"


def _hashed_match(entry: str, name: str) -> bool:
    parts = entry.split("|")
    if len(parts) != 4 or parts[1] != "1":
        return False
    try:
        salt, digest = base64.b64decode(parts[2]), base64.b64decode(parts[3])
    except (binascii.Error, ValueError):
        return False
    mine = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return hmac.compare_digest(mine, digest)


def _names_match(field: str, name: str) -> bool:
    return any(
        _hashed_match(entry, name) if entry.startswith("|") else entry == name
        for entry in field.split(",")
    )


def has_key_for(path: Path, host: str, port: int) -> bool:
    """Whether ``path`` has a key line for ``host`` at ``port``.

    Raises:
        OSError: the file cannot be read (the caller says which and why).
    """
    with open(path, "rb") as fh:
        text = fh.read(MAX_BYTES).decode("utf-8", errors="replace")
    name = host_name(host, port)
    for raw in text.splitlines():
        fields = raw.split()
        if not fields or fields[0].startswith(("#", "@")):
            continue
        if len(fields) >= 3 and _names_match(fields[0], name):
            return True
    return False
