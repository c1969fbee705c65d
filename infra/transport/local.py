"""LocalTransport: this machine reached through subprocesses, behind the same contract as SSH.

Local is real (STYLE rule 9): the engine runs the same path here as on a remote host, with the
same detached wrapper (``infra.transport.jobs``), so a local run exercises start/poll/stop/fetch.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from fnmatch import fnmatch
from pathlib import Path

from infra.errors import CommandFailed, TransportError
from infra.transport.base import Job, JobStatus, Result, SyncStats
from infra.transport.fetch import FetchLimits, TreeWriter, copy_tree
from infra.transport.jobs import wrapper_script


class LocalTransport:
    """Runs commands on this machine; paths are plain local paths."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        check: bool = True,
    ) -> Result:
        """Run ``argv`` here and wait: always a ``Result``; ``check`` raises ``CommandFailed``."""
        t0 = time.monotonic()
        full_env = {**os.environ, **(env or {})}
        # A new session so a timeout can kill everything the command spawned, not only itself.
        proc = subprocess.Popen(
            list(argv),
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout_s)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            code = 124
            err += f"\n[orchestrate] timed out after {timeout_s}s; process group killed"
        result = Result(tuple(argv), code, out, err, time.monotonic() - t0)
        if check and not result.ok:
            raise CommandFailed(result)
        return result

    def put_tree(self, local: Path, remote: str, *, exclude: Sequence[str] = ()) -> SyncStats:
        """Copy ``local`` into ``remote`` on this machine, only files whose hash differs."""
        return _mirror(Path(local), Path(remote), exclude)

    def get_tree(self, remote: str, local: Path) -> SyncStats:
        """Copy ``remote``'s regular files into ``local`` by ``infra.transport.fetch``'s rules:
        what a trainer leaves is untrusted here too (no links, FIFOs or devices; capped)."""
        t0 = time.monotonic()
        if not Path(remote).is_dir():
            return SyncStats(0, 0, 0, 0, 0.0)
        with TreeWriter(local, FetchLimits.from_env()) as writer:
            total, sent, nbytes = copy_tree(remote, writer, where=f"this machine ({remote})")
        return SyncStats(total, sent, 0, nbytes, time.monotonic() - t0)

    def start(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log: str,
        cwd: str | None = None,
        prelude: str = "",
    ) -> Job:
        """Start ``argv`` detached in its own session, output to ``log``; survives us.

        The wrapper is started directly (``start_new_session``: its pid is its session and
        group id, as ``setsid`` makes it over SSH), so its pid is known without waiting for the
        ``pid`` file: no shell, ``mkdir`` or ``setsid`` process before it (issue 18).
        """
        job_dir = f"{log}.job"
        os.makedirs(job_dir, exist_ok=True)
        for name in ("exit_code", "pid"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{job_dir}/{name}")
        script = wrapper_script(argv, env=env, job_dir=job_dir, log=log, cwd=cwd, prelude=prelude)
        try:
            proc = subprocess.Popen(
                ["sh", "-c", script],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            raise TransportError(f"could not start {shlex.join(argv)}: {exc}") from exc
        with self._lock:  # reaped by poll, so a long run leaves no zombies behind
            self._children[proc.pid] = proc
        return Job(id=Path(log).stem, pid=proc.pid, job_dir=job_dir, log=log)

    def poll(self, job: Job, *, log_offset: int = 0) -> JobStatus:
        """Never blocks: running or exit code, heartbeat age, log bytes after ``log_offset``."""
        job_dir = Path(job.job_dir)
        self._reap(job.pid)
        # Look at the process before the exit-code file: the wrapper writes the file and then
        # exits, so in this order a finished job is never seen as "gone without a code".
        alive = _alive(job.pid)
        code_file = job_dir / "exit_code"
        exit_code = int(code_file.read_text().strip()) if code_file.exists() else None
        if exit_code is not None:  # the wrapper exits right after writing it: collect it now
            self._reap(job.pid, wait_s=2.0)
        running = exit_code is None and alive
        chunk, offset = _read_from(Path(job.log), log_offset)
        beat = job_dir / "heartbeat"
        age = time.time() - beat.stat().st_mtime if beat.exists() else None
        return JobStatus(running, exit_code, chunk, offset, age)

    def _reap(self, pid: int, *, wait_s: float = 0.0) -> None:
        """Collect the exit of a wrapper this transport started, once it has ended.

        ``wait_s`` is for a wrapper known to be on its way out (its exit code is written): the
        final poll must not leave it a zombie just because it looked a moment too early.
        """
        with self._lock:
            proc = self._children.get(pid)
        if proc is None:
            return
        try:
            ended = proc.wait(timeout=wait_s) if wait_s else proc.poll()
        except subprocess.TimeoutExpired:
            return
        if ended is not None:
            with self._lock:
                self._children.pop(pid, None)

    def stop(self, job: Job, *, grace_s: float = 10.0) -> None:
        """TERM the job's process group, KILL after ``grace_s``; a finished job is fine."""
        self._reap(job.pid)
        if not _alive(job.pid):
            return
        _kill_group(job.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while _alive(job.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        _kill_group(job.pid, signal.SIGKILL)

    def close(self) -> None:
        """Nothing to close here (the Transport contract has it for SSH)."""
        return None

    def __enter__(self) -> LocalTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _kill_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie.

    The detached wrapper is re-parented to PID 1, which in a container may never reap it, so
    ``kill(pid, 0)`` alone would report a finished job as running forever.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


def _read_from(path: Path, offset: int) -> tuple[str, int]:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return "", offset
    return data.decode("utf-8", errors="replace"), offset + len(data)


def _excluded(rel: str, exclude: Sequence[str]) -> bool:
    return any(fnmatch(rel, pat) or fnmatch(Path(rel).name, pat) for pat in exclude)


def _same(a: Path, b: Path) -> bool:
    sa, sb = a.stat(), b.stat()
    if sa.st_size != sb.st_size:
        return False
    if sa.st_mtime_ns == sb.st_mtime_ns:
        return True  # copy2 keeps mtimes, so an unchanged copy is found without reading it
    return a.read_bytes() == b.read_bytes()


def _mirror(src: Path, dst: Path, exclude: Sequence[str]) -> SyncStats:
    """Copy what differs from ``src`` to ``dst`` and remove what ``src`` lacks (``put_tree``:
    our own code going out, so trusted; fetching back goes through ``fetch.copy_tree``)."""
    t0 = time.monotonic()
    total = sent = deleted = nbytes = 0
    wanted: set[str] = set()
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src).as_posix()
        if _excluded(rel, exclude) or "__pycache__" in path.parts or not path.is_file():
            continue
        total += 1
        wanted.add(rel)
        target = dst / rel
        if target.exists() and _same(path, target):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        sent += 1
        nbytes += path.stat().st_size
    if dst.exists():
        for path in sorted(dst.rglob("*"), reverse=True):
            rel = path.relative_to(dst).as_posix()
            if path.is_file() and rel not in wanted and not _excluded(rel, exclude):
                path.unlink()
                deleted += 1
    return SyncStats(total, sent, deleted, nbytes, time.monotonic() - t0)
