"""The Transport contract: everything the engine needs to do on a machine.

A transport is the only way the engine touches a machine, so the local machine and a remote
host look the same to it (Ray's ``get_command_runner``; Fabric's ``Connection``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable


@dataclass(frozen=True)
class Result:
    """What a synchronous command did; returned whether or not it succeeded."""

    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    duration_s: float

    @property
    def ok(self) -> bool:
        """Whether the command exited 0."""
        return self.exit_code == 0

    def tail(self, stream: Literal["stdout", "stderr"] = "stderr", lines: int = 20) -> str:
        """The last ``lines`` of a stream, for error messages that fit a terminal."""
        text = self.stdout if stream == "stdout" else self.stderr
        return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class Job:
    """A detached process on a machine, named by the files that describe it.

    The job directory holds ``pid`` (the process-group leader), ``exit_code`` (written when the
    command ends), and ``heartbeat`` (touched while it runs); ``log`` is its merged output.
    """

    id: str
    pid: int
    job_dir: str
    log: str


@dataclass(frozen=True)
class JobStatus:
    """One non-blocking look at a job.

    ``exit_code`` is None while it runs, and also when it vanished without writing one (killed):
    ``running`` tells the two apart. ``log_chunk`` is the log from ``log_offset_before`` up to
    ``log_offset`` so a caller streams it by passing the returned offset back next time.
    """

    running: bool
    exit_code: int | None
    log_chunk: str
    log_offset: int
    heartbeat_age_s: float | None

    @property
    def finished(self) -> bool:
        """Whether the job has ended (an exit code is known, or it is gone)."""
        return not self.running


@dataclass(frozen=True)
class SyncStats:
    """What a tree sync moved; ``files_sent == 0`` means nothing had changed."""

    files_total: int
    files_sent: int
    files_deleted: int
    bytes_sent: int
    duration_s: float


@runtime_checkable
class Transport(Protocol):
    """How a machine is reached.

    Contract:
      1. ``run`` always returns a ``Result``; with ``check=True`` a non-zero exit raises
         ``CommandFailed(result)``. A timeout kills the process (not only the channel) and
         returns exit code 124.
      2. ``put_tree`` sends only files whose content hash differs from the remote manifest,
         deletes remote files that are gone locally, and keeps permission bits.
      3. ``start`` returns once the process runs detached: it survives a dropped connection and
         the end of this process.
      4. ``poll`` never blocks; ``stop`` is idempotent and kills the whole process group.
      5. ``get_tree`` pulls a remote directory back, only files that changed.
    """

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        check: bool = True,
    ) -> Result: ...

    def put_tree(self, local: Path, remote: str, *, exclude: Sequence[str] = ()) -> SyncStats: ...

    def start(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log: str,
        cwd: str | None = None,
        prelude: str = "",
    ) -> Job: ...

    def poll(self, job: Job, *, log_offset: int = 0) -> JobStatus: ...

    def stop(self, job: Job, *, grace_s: float = 10.0) -> None: ...

    def get_tree(self, remote: str, local: Path) -> SyncStats: ...

    def close(self) -> None: ...
