"""SshTransport: one persistent, host-key-pinned SSH connection per machine (paramiko).

Why these shapes:
  * Host keys are checked against the pinned key (``Address.host_key``) or a known_hosts file,
    and an unknown key is refused (a ``RejectPolicy`` that raises our ``HostKeyMismatch``).
  * Every remote action is ONE command on the open connection: ``poll`` reads liveness, exit
    code, heartbeat age and new log bytes in one go; a tree sync sends one compressed tar stream.
  * A dropped connection fails the call in flight with ``ConnectError`` and the next call
    reconnects; detached jobs (``start``) live in their own session and do not notice.
  * Remote scripts run under ``sh`` so the login shell (bash, zsh, fish) does not matter, and
    they run on login shells started ahead of need (``SPARE_SHELL``; polls on a long-lived
    ``ControlShell``): on hosts whose rc file runs ``pyenv``/``conda init`` that start costs
    more than most of our commands.

Foreign exceptions become ours in exactly one place, ``ssh_link.translate``; the connection
itself (backoff, ProxyJump, spare shells) lives in ``infra.transport.ssh_link``.
"""

from __future__ import annotations

import select
import shlex
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from infra.errors import (
    CommandFailed,
    RemoteDiskFull,
    TransportError,
)
from infra.transport import manifest as mf
from infra.transport.base import Job, JobStatus, Result, SyncStats
from infra.transport.jobs import launch_command, wrapper_script
from infra.transport.ssh_control import ControlShell
from infra.transport.ssh_jobs import parse_poll, poll_script, stop_script, wait_for_pid
from infra.transport.ssh_link import SshLink
from infra.transport.ssh_sync import Conversation, pull, pull_script, push, push_script

if TYPE_CHECKING:
    import paramiko

LAN_RTT_S = 0.005  # below this round trip the link is a LAN (or loopback): send tar unzipped
KILL_AFTER_S = 5  # after TERM at a run() timeout, `timeout -k` sends KILL this much later
_POLL_MAX_BYTES = 1 << 20  # log bytes one poll returns at most; the caller asks again


class SshTransport(SshLink):
    """A ``Transport`` over SSH to one ``Address``.

    Args:
        address: host, port, user, private key path and the pinned host key.
        connect_timeout_s: one connect attempt's limit (TCP, banner and auth each).
        deadline_s: all connect attempts together; retries back off exponentially inside it.
        keepalive_s: SSH keepalive interval, so a dead peer is noticed on an idle connection.
        io_timeout_s: longest silence tolerated inside a tree sync before it counts as lost.
        compress: gzip the sync stream; None decides per link: compress unless the round trip
            is LAN-short (``LAN_RTT_S``), where the link outruns deflate and the gzip layer
            only costs CPU at both ends (measured here: a 50 MB first sync took 1.5 s gzipped,
            even with stored blocks, and 0.7 s as plain tar).
        cache: local hash cache (default: one shared by the process).
    """

    def __enter__(self) -> SshTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _exec(
        self,
        script: str,
        *,
        action: str,
        stdin: bytes | Iterable[bytes] | None = None,
        timeout_s: float | None = None,
    ) -> tuple[int | None, bytes, bytes, int]:
        """Run one ``sh`` script, feed it ``stdin``, collect both streams.

        Returns ``(exit_code, stdout, stderr, stdin_bytes_sent)``; the exit code is None when
        ``timeout_s`` passed first (the channel is closed; the caller arranged remote cleanup).
        """
        out, err = bytearray(), bytearray()
        sent = 0
        with self._guard(action):
            chan = self._session(script)
            try:

                def drain() -> None:
                    while chan.recv_ready():
                        out.extend(chan.recv(65536))
                    while chan.recv_stderr_ready():
                        err.extend(chan.recv_stderr(65536))

                if stdin is not None:
                    for chunk in [stdin] if isinstance(stdin, bytes) else stdin:
                        chan.sendall(chunk)
                        sent += len(chunk)
                        drain()
                chan.shutdown_write()
                deadline = None if timeout_s is None else time.monotonic() + timeout_s
                while not (chan.exit_status_ready() and chan.eof_received):
                    drain()
                    if chan.closed and not chan.exit_status_ready():
                        raise EOFError("channel closed before the command exited")
                    if deadline is not None and time.monotonic() > deadline:
                        return None, bytes(out), bytes(err), sent
                    select.select([chan], [], [], 0.05)
                drain()
                return chan.recv_exit_status(), bytes(out), bytes(err), sent
            finally:
                chan.close()

    def _script(self, script: str, *, action: str, timeout_s: float = 30.0) -> bytes:
        """Run one of our short scripts on the control shell; stdout, or ``CommandFailed``.

        Through ``ssh_control.ControlShell``: no new channel and no login-shell start per call.
        """
        with self._guard(action):
            transport = self._transport()
            with self._lock:
                if self._shell is None or self._shell.closed:
                    chan = transport.open_session(timeout=self._connect_timeout_s)
                    chan.exec_command(ControlShell.START_COMMAND)
                    self._shell = ControlShell(chan)
                shell = self._shell
            code, out, err = shell.call(script, timeout_s=timeout_s)
        if code != 0:
            raise CommandFailed(Result((action,), code, "", err.decode(errors="replace"), 0.0))
        return out

    # ------------------------------------------------------------------ run

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        check: bool = True,
    ) -> Result:
        """Run ``argv`` remotely and wait. See ``Transport.run``.

        A timeout is enforced on the remote side by coreutils ``timeout``, which signals the
        command's whole process group (TERM, then KILL ``KILL_AFTER_S`` later), so the process
        dies with the call; the result's exit code is then 124.
        """
        argv = tuple(argv)
        words: list[str] = []
        if timeout_s is not None:
            words += ["timeout", "-s", "TERM", "-k", str(KILL_AFTER_S), f"{timeout_s:.3f}"]
        if env:
            words += ["env", *(f"{k}={v}" for k, v in env.items())]
        words += argv
        guard = None if timeout_s is None else timeout_s + KILL_AFTER_S + 10
        t0 = time.monotonic()
        script = "exec " + shlex.join(words)
        code, out, err, _ = self._exec(script, action=f"run {argv[:1]}", timeout_s=guard)
        took = time.monotonic() - t0
        if code is None or (timeout_s is not None and code in (124, 137) and took >= timeout_s):
            code = 124
        result = Result(
            argv, code, out.decode(errors="replace"), err.decode(errors="replace"), took
        )
        if check and not result.ok:
            raise CommandFailed(result)
        return result

    # ------------------------------------------------------------------ tree sync

    def put_tree(self, local: Path, remote: str, *, exclude: Sequence[str] = ()) -> SyncStats:
        """Make ``remote`` hold ``local``'s files, sending only what differs (``ssh_sync.push``).

        A sync cut off half way leaves the old remote manifest; the listing then disagrees with
        it for what did arrive, so the next sync re-hashes those and sends only what is missing.
        """
        t0 = time.monotonic()
        # Hash locally while the remote shell starts and lists: both take a fraction of a second.
        scan = mf.Background(lambda: mf.scan(local, exclude=exclude, cache=self._cache))
        mark = uuid.uuid4().hex.encode()
        with self._guard("put_tree"), self._channel(push_script(remote, mark)) as (chan, talk):
            # Decided once connected: the connection measured its round trip.
            compress = self._compress if self._compress is not None else self._rtt_s > LAN_RTT_S
            pushed = push(chan, talk, local, mark, scan, exclude=exclude, compress=compress)
        plan = pushed.plan
        if "No space left on device" in pushed.stderr:
            raise RemoteDiskFull(
                f"{self.where}: no space left on device under {remote} while receiving "
                f"{len(plan.send)} files ({plan.manifest.total_bytes} bytes in the tree); free "
                "space there and sync again (only what is missing will be sent)"
            )
        if pushed.exit_code != 0:
            raise CommandFailed(
                Result(("put_tree", remote), pushed.exit_code, "", pushed.stderr, 0.0)
            )
        took = time.monotonic() - t0
        total = len(plan.manifest.files)
        return SyncStats(total, len(plan.send), len(plan.delete), pushed.bytes_sent, took)

    def get_tree(self, remote: str, local: Path) -> SyncStats:
        """Pull ``remote`` into ``local``, only files whose hash differs (``ssh_sync.pull``).

        Local files that are absent remotely are kept (fetching never deletes results). The
        remote is not trusted: ``infra.transport.fetch`` decides what may be written.
        """
        t0 = time.monotonic()
        mark = uuid.uuid4().hex.encode()
        with self._guard("get_tree"), self._channel(pull_script(remote, mark)) as (chan, talk):
            pulled = pull(chan, talk, local, mark, cache=self._cache, where=self.where)
        if pulled.exit_code != 0:
            raise CommandFailed(
                Result(("get_tree", remote), pulled.exit_code, "", pulled.stderr, 0.0)
            )
        took = time.monotonic() - t0
        return SyncStats(pulled.total, pulled.fetched, 0, pulled.bytes_received, took)

    @contextmanager
    def _channel(self, script: str) -> Iterator[tuple[paramiko.Channel, Conversation]]:
        """A channel running ``script`` under sh, with a reader for its stdout."""
        chan = self._session(script)
        try:
            chan.settimeout(self._io_timeout_s)
            yield chan, Conversation(chan)
        finally:
            chan.close()

    # ------------------------------------------------------------------ detached jobs

    def start(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log: str,
        cwd: str | None = None,
        prelude: str = "",
    ) -> Job:
        """Start ``argv`` detached (``jobs.wrapper_script``); returns once its pid is on disk."""
        job_dir = f"{log}.job"
        script = wrapper_script(argv, env=env, job_dir=job_dir, log=log, cwd=cwd, prelude=prelude)
        cmd = launch_command(script, job_dir=job_dir) + wait_for_pid(job_dir)
        out = self._script(cmd, action="start")
        pid = out.decode(errors="replace").strip()
        if not pid.isdigit():
            raise TransportError(f"{self.where}: job {argv[:1]} did not write its pid in {job_dir}")
        return Job(id=uuid.uuid4().hex[:12], pid=int(pid), job_dir=job_dir, log=log)

    def poll(self, job: Job, *, log_offset: int = 0) -> JobStatus:
        """One short remote command: liveness, exit code, heartbeat age, new log bytes."""
        script = poll_script(job.job_dir, job.log, log_offset, _POLL_MAX_BYTES)
        out = self._script(script, action="poll")
        return parse_poll(out, log_offset)

    def stop(self, job: Job, *, grace_s: float = 10.0) -> None:
        """TERM the job's process group, wait up to ``grace_s``, then KILL. Idempotent."""
        # Not on the control shell: waiting out the grace there would hold up other polls.
        code, _, err, _ = self._exec(
            stop_script(job.job_dir, grace_s), action="stop", timeout_s=grace_s + 30
        )
        if code != 0:
            text = err.decode(errors="replace")
            raise CommandFailed(Result(("stop",), 124 if code is None else code, "", text, 0.0))
