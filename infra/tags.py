"""The tags every machine of ours carries, built on one floor (infra) for every provider.

AWS writes them as resource tags (``infra.aws.requests`` adds its own launch-only keys); local
and ssh machines carry them on the ``Machine`` value, so ``owned(run_id=...)`` reads the same key
everywhere. Tag keys use the ``orchestrate:<key>`` form (STYLE.md).
"""

from __future__ import annotations

import getpass
import os
import socket
from datetime import datetime

TAG_RUN = "orchestrate:run"
TAG_OWNER = "orchestrate:owner"
TAG_EXPIRES = "orchestrate:expires"
TAG_MACHINE = "orchestrate:machine"


OWNER_ENV = "ORCHESTRATE_OWNER"  # overrides the owner value (a shared account's team name)


def current_owner() -> str:
    """The one ``orchestrate:owner`` value of whoever runs this: ``user@host`` (or
    ``$ORCHESTRATE_OWNER``). Every resource of a run carries it, and ``gc`` sweeps only
    resources carrying it unless told ``--all-owners``."""
    override = os.environ.get(OWNER_ENV, "").strip()
    if override:
        return override
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def machine_tags(run_id: str, name: str, deadline: datetime) -> dict[str, str]:
    """The tags of machine ``name`` of ``run_id``, which must be gone by ``deadline``."""
    return {
        TAG_RUN: run_id,
        TAG_OWNER: current_owner(),
        TAG_EXPIRES: deadline.isoformat(timespec="seconds"),
        TAG_MACHINE: name,
    }
