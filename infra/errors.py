"""The lower branches of the error tree: what providers and transports raise.

The root, ``OrchestrateError``, lives here because ``infra`` is the lowest floor that raises;
``orchestrator.errors`` adds the top branches and draws the whole tree. Every class carries the
process exit code the CLI uses, so no caller keeps a second table in step with this one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from infra.transport.base import Result


class OrchestrateError(Exception):
    """Root of everything this tool raises on purpose; the CLI prints it without a traceback."""

    exit_code: int = 1


class ProviderError(OrchestrateError):
    """A machine could not be acquired, reached or released."""

    exit_code = 4


class CredentialsError(ProviderError):
    """No usable cloud credentials were found; nothing was launched."""

    exit_code = 2


class PlacementError(ProviderError):
    """The request names a network place that does not exist here (no default VPC, an unknown
    subnet, VPC or zone): bad input, refused at plan, nothing launched. ``where`` is the
    experiment key to point at (``("region",)``, ``("machines", "gpu", "zones")``)."""

    exit_code = 2

    def __init__(self, message: str, *, where: tuple[str | int, ...] = (), hint: str = "") -> None:
        super().__init__(message)
        self.where = where
        self.hint = hint


class CapacityError(ProviderError):
    """The cloud had no capacity for a type/zone; the caller may try the next one."""


class QuotaError(ProviderError):
    """An account quota blocks the launch; the message names the quota to raise."""


class LaunchTimeout(ProviderError):
    """A machine did not become reachable before its deadline; it has been released."""


class TransportError(OrchestrateError):
    """A machine could not be reached, or a command on it could not be carried out."""

    exit_code = 4


class HostKeyMismatch(TransportError):
    """The host presented a key other than the pinned one; the connection was refused."""


class ConnectError(TransportError):
    """The host did not answer before the connect deadline."""


class RemoteDiskFull(TransportError):
    """The remote file system ran out of space while receiving files."""


class CommandFailed(TransportError):
    """A command exited non-zero under ``check=True``; ``result`` holds what it printed."""

    def __init__(self, result: Result) -> None:
        self.result = result
        super().__init__(
            f"command failed (exit {result.exit_code}): {' '.join(result.argv)}\n"
            f"{result.tail('stderr')}"
        )
