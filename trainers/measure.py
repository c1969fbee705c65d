"""Run any command and record what the engine needs without the command's cooperation.

``python -m trainers.measure --out DIR -- CMD ...`` runs CMD, forwards signals to it, and
writes ``DIR/process.json``: start and end time, wall seconds, exit code (or the signal that
ended it), the peak resident memory of the largest process in its tree, and ``preempted``. A
command that does not write ``manifest.json`` gets a minimal one with the task's parameters
(``$ORCHESTRATE_PARAMS``). Standard library only: it runs before any framework is imported.

Preemption (issue 16), the contract the orchestrator relies on:

1. A file ``DIR/preempt-now`` (looked for every ``$ORCHESTRATE_IMDS_POLL_S`` seconds, default 5,
   everywhere) and, when ``$ORCHESTRATE_IMDS_URL`` is set, a spot instance-action notice from
   the EC2 metadata service (`trainers.spot_notice`) both mean the machine is going away.
   measure then writes ``DIR/preempted.json`` = ``{"source": "file"|"spot/instance-action",
   "notice": <the notice's JSON>, "at": <unix time>}``, prints one line starting
   ``[orchestrate] notice: spot interruption`` to its stdout (the task's log), and sends CMD the
   signal ``$ORCHESTRATE_PREEMPT_SIGNAL`` names (``USR1`` by default, ``TERM`` for scripts
   that ignore USR1); trainers answer by saving and exiting 75. Once per attempt; the file is
   consumed (deleted) when seen.
2. A rebalance recommendation (elevated risk, no reclaim yet) writes ``DIR/rebalance.json`` in
   the same shape and prints a line starting ``[orchestrate] notice: rebalance recommendation``;
   no signal: the trainers checkpoint every epoch, and the orchestrator fetches the checkpoint.
3. Both JSON files are written atomically, and those of an earlier attempt in DIR are removed
   at the start. ``process.json`` says ``"preempted": true`` when step 1 happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import signal
import sys
import time
from pathlib import Path
from types import FrameType

TYPE_CHECKING = False  # typing's own costs ~4 ms at every task's start; mypy honours this
if TYPE_CHECKING:
    from typing import Any

    from trainers.spot_notice import SpotWatcher

IMDS_URL_ENV = "ORCHESTRATE_IMDS_URL"
POLL_ENV = "ORCHESTRATE_IMDS_POLL_S"
SIGNAL_ENV = "ORCHESTRATE_PREEMPT_SIGNAL"
PREEMPT_NOW = "preempt-now"
PREEMPTED_FILE = "preempted.json"
REBALANCE_FILE = "rebalance.json"
NOTICE = "[orchestrate] notice:"


def main(argv: list[str] | None = None) -> int:
    """Run the command, watch for preemption, record the process; returns the command's exit
    code (128+N when signal N ended it), or 2 for bad arguments or settings, before starting."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--" not in args or args[:1] != ["--out"] or len(args) < 4:
        print("usage: python -m trainers.measure --out DIR -- CMD [ARGS...]", file=sys.stderr)
        return 2
    try:
        preempt_signal = _signal_named(os.environ.get(SIGNAL_ENV) or "USR1")
        poll_s = float(os.environ.get(POLL_ENV) or 5.0)
        if not poll_s > 0:
            raise ValueError(f"{POLL_ENV} must be > 0, got {poll_s}")
    except (KeyError, ValueError) as exc:
        print(f"trainers.measure: bad {SIGNAL_ENV} or {POLL_ENV}: {exc}", file=sys.stderr)
        return 2
    out = Path(args[1])
    command = args[args.index("--") + 1 :]
    out.mkdir(parents=True, exist_ok=True)
    for stale in (PREEMPTED_FILE, REBALANCE_FILE):
        (out / stale).unlink(missing_ok=True)
    start = time.time()
    t0 = time.monotonic()
    # posix_spawn rather than subprocess: this wrapper runs for every task, so its own start-up
    # is engine overhead (subprocess's import alone costs ~10 ms).
    pid = os.posix_spawnp(command[0], command, dict(os.environ))

    def forward(signum: int, frame: FrameType | None) -> None:
        # The group usually gets the signal too; forwarding covers a kill of this pid alone.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    notices = _Notices(out, pid, preempt_signal, poll_s)
    try:
        if url := os.environ.get(IMDS_URL_ENV):
            notices.watch_imds(url)
        status = notices.wait()
        end, wall_s = time.time(), time.monotonic() - t0
    finally:
        notices.close()
    code = os.waitstatus_to_exitcode(status)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    exit_code = code if code >= 0 else 128 - code
    record: dict[str, object] = {
        "start": start,
        "end": end,
        "wall_s": wall_s,
        "exit_code": exit_code,
        "signal": signal.Signals(-code).name if code < 0 else None,
        "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux reports kilobytes
        "user_s": usage.ru_utime,
        "system_s": usage.ru_stime,
        "command": command,
        "preempted": notices.preempted,
    }
    (out / "process.json").write_text(json.dumps(record, indent=2))
    manifest = out / "manifest.json"
    if not manifest.exists():
        params = json.loads(os.environ.get("ORCHESTRATE_PARAMS", "{}") or "{}")
        manifest.write_text(
            json.dumps(
                {
                    "host": os.uname().nodename,
                    "os": f"{os.uname().sysname} {os.uname().release}",
                    "python": sys.version.split()[0],
                    "command": command,
                    "params": params,
                    "task": os.environ.get("ORCHESTRATE_TASK"),
                    "run": os.environ.get("ORCHESTRATE_RUN"),
                    "device_used": "gpu" if os.environ.get("CUDA_VISIBLE_DEVICES") else "cpu",
                    "written_by": "trainers.measure (the command wrote no manifest)",
                },
                indent=2,
            )
        )
    return exit_code


class _Notices:
    """Waits for the child while acting on preemption notices (module docstring, rules 1-3).

    Everything acts on the main thread: the IMDS watcher's thread only queues a notice and
    wakes the wait through a pipe, so the child is never signalled after it has been reaped.
    """

    def __init__(self, out: Path, pid: int, signum: int, poll_s: float) -> None:
        self.out, self.pid, self.signum, self.poll_s = out, pid, signum, poll_s
        self.preempted = False
        self._queue: list[tuple[bool, str, dict[str, Any], float]] = []
        self._wake: tuple[int, int] | None = None
        self._watcher: SpotWatcher | None = None

    def watch_imds(self, url: str) -> None:
        """Start the metadata watcher; imported only here, so a task off EC2 pays nothing."""
        from trainers.spot_notice import INSTANCE_ACTION, SpotWatcher

        self._wake = os.pipe()
        wake_w = self._wake[1]

        def queue(source: str, body: dict[str, Any]) -> None:  # on the watcher's thread
            self._queue.append((source == INSTANCE_ACTION, source, body, time.time()))
            os.write(wake_w, b"!")

        self._watcher = SpotWatcher(url, queue, poll_s=self.poll_s)
        self._watcher.start()

    def wait(self) -> int:
        """The child's wait status. Woken by its exit (a pidfd), a queued notice, or every
        ``poll_s`` to look for the preempt-now file: no busy loop, no delay at the exit."""
        try:
            pidfd: int | None = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            pidfd = None  # not Linux >= 5.3: look for the exit every 50 ms instead
        wake_r = self._wake[0] if self._wake else None
        fds = [fd for fd in (pidfd, wake_r) if fd is not None]
        timeout = self.poll_s if pidfd is not None else min(self.poll_s, 0.05)
        try:
            while True:
                self._check()
                ready, _, _ = select.select(fds, [], [], timeout)
                if wake_r is not None and wake_r in ready:
                    os.read(wake_r, 64)
                if pidfd is None:
                    done, status = os.waitpid(self.pid, os.WNOHANG)
                    if done:
                        return status
                elif pidfd in ready:
                    return os.waitpid(self.pid, 0)[1]
        finally:
            if pidfd is not None:
                os.close(pidfd)

    def close(self) -> None:
        """Stop the watcher and close its pipe, unless its thread is still stuck in a request
        (a daemon: it ends with us); closing then could let a late wake-up write to a file
        opened later under the same descriptor number."""
        stopped = self._watcher is None or self._watcher.stop()
        if self._wake is not None and stopped:
            for fd in self._wake:
                os.close(fd)

    def _check(self) -> None:
        now = self.out / PREEMPT_NOW
        if os.path.exists(now):
            text = ""
            with contextlib.suppress(OSError):  # consumed, so a rerun in DIR is not preempted
                text = now.read_text(encoding="utf-8", errors="replace")
                now.unlink()
            self._notice(True, "file", _json_object(text), time.time())
        while self._queue:
            self._notice(*self._queue.pop(0))

    def _notice(self, preempts: bool, source: str, body: dict[str, Any], at: float) -> None:
        if not preempts:
            _write_json(self.out / REBALANCE_FILE, {"source": source, "notice": body, "at": at})
            print(f"{NOTICE} rebalance recommendation {json.dumps(body)}", flush=True)
            return
        if self.preempted:
            return
        self.preempted = True
        _write_json(self.out / PREEMPTED_FILE, {"source": source, "notice": body, "at": at})
        name = signal.Signals(self.signum).name
        print(
            f"{NOTICE} spot interruption ({source}) {json.dumps(body)}: sending {name} to the task",
            flush=True,
        )
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, self.signum)


def _signal_named(name: str) -> int:
    """``USR1``, ``SIGTERM``... -> the signal number; KeyError for a name that is none."""
    upper = name.strip().upper()
    return int(signal.Signals[upper if upper.startswith("SIG") else f"SIG{upper}"])


def _json_object(text: str) -> dict[str, Any]:
    """A preempt-now file's JSON object, if it holds one (it may well be empty)."""
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    """Atomically (temp + rename); a full disk must not keep the signal from the task."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        print(f"trainers.measure: could not write {path}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
