"""Where an instance's SSH server is reached when its public address is not the way in.

``$ORCHESTRATE_AWS_ENDPOINTS`` names a JSON file mapping instance ids to ``"host:port"``. The
instance emulator of the tests writes it: each emulated instance is a booted container whose
sshd listens on a loopback port, the one liberty the emulator takes. A user can point it at
their own per-instance port forwards (an SSM or bastion tunnel). The file is read at every
lookup, since instances come and go while a run lives. Host keys are pinned exactly as for the
public address, so the map can redirect a connection but never make it trusted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ENDPOINTS_ENV = "ORCHESTRATE_AWS_ENDPOINTS"


def endpoints_mapped() -> bool:
    """Whether an endpoint map is in force: then an instance not in it is not reachable *yet*
    (its tunnel or emulated machine is still coming up), never reached at its public IP."""
    return bool(os.environ.get(ENDPOINTS_ENV))


def endpoint_for(instance_id: str) -> tuple[str, int] | None:
    """``(host, port)`` for ``instance_id`` from the endpoint map, or None (use the public IP)."""
    path = os.environ.get(ENDPOINTS_ENV)
    if not path:
        return None
    try:
        table = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # not written yet, or being replaced: the caller retries while it waits
    value = table.get(instance_id) if isinstance(table, dict) else None
    if not isinstance(value, str) or ":" not in value:
        return None
    host, _, port = value.rpartition(":")
    return (host, int(port)) if port.isdigit() else None
