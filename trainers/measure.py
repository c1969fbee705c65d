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

# Only what starting the command needs is imported before it starts: this wrapper runs for
# every task, so its start-up is engine overhead. resource and select come after the spawn,
# while the command runs (on another core); json only on the rare notice paths (``to_json``
# writes the records); pathlib, contextlib and runpy (``-m``) are not used at all (each costs
# 2-7 ms of a task's start: the engine starts this module through ``python -S -c``, not
# ``-m``). ``python -m trainers.measure`` works the same.
import os
import sys
import time

try:  # the C module under ``signal``: its numbers and handlers, without the enum classes
    import _signal  # type: ignore[import-not-found]  # (``signal`` costs ~4 ms to import)
except ImportError:  # not CPython
    import signal as _signal

TYPE_CHECKING = False  # typing's own costs ~4 ms at every task's start; mypy honours this
if TYPE_CHECKING:
    from types import FrameType
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
    out = args[1]
    command = args[args.index("--") + 1 :]
    os.makedirs(out, exist_ok=True)
    for stale in (PREEMPTED_FILE, REBALANCE_FILE):
        _unlink(os.path.join(out, stale))
    start = time.time()
    t0 = time.monotonic()
    # posix_spawn rather than subprocess: this wrapper runs for every task, so its own start-up
    # is engine overhead (subprocess's import alone costs ~10 ms).
    pid = os.posix_spawnp(command[0], command, dict(os.environ))
    import resource  # noqa: PLC0415 (after the spawn: see the imports)

    def forward(signum: int, frame: FrameType | None) -> None:
        # The group usually gets the signal too; forwarding covers a kill of this pid alone.
        try:  # noqa: SIM105 (not contextlib: see the imports)
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP):
        _signal.signal(sig, forward)
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
        "signal": _signal_name(-code) if code < 0 else None,
        "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux reports kilobytes
        "user_s": usage.ru_utime,
        "system_s": usage.ru_stime,
        "command": command,
        "preempted": notices.preempted,
    }
    _write_text(os.path.join(out, "process.json"), to_json(record))
    manifest = os.path.join(out, "manifest.json")
    if not os.path.exists(manifest):
        params = (os.environ.get("ORCHESTRATE_PARAMS") or "").strip()
        _write_text(
            manifest,
            to_json(
                {
                    "host": os.uname().nodename,
                    "os": f"{os.uname().sysname} {os.uname().release}",
                    "python": sys.version.split()[0],
                    "command": command,
                    # The engine's own JSON text (json.dumps of the task's parameters).
                    "params": RawJson(params if params.startswith("{") else "{}"),
                    "task": os.environ.get("ORCHESTRATE_TASK"),
                    "run": os.environ.get("ORCHESTRATE_RUN"),
                    "device_used": "gpu" if os.environ.get("CUDA_VISIBLE_DEVICES") else "cpu",
                    "written_by": "trainers.measure (the command wrote no manifest)",
                }
            ),
        )
    return exit_code


class RawJson(str):
    """Text that already is JSON, put into ``to_json``'s output as it is."""


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _json_string(text: str) -> str:
    out = []
    for ch in text:
        code = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        elif code > 0xFFFF:  # astral: a UTF-16 surrogate pair, as JSON spells it
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        else:  # controls, non-ASCII, and lone surrogates (argv bytes that are not UTF-8)
            out.append(f"\\u{code:04x}")
    return '"' + "".join(out) + '"'


def to_json(value: object, indent: str = "") -> str:
    """JSON text (ASCII, objects indented by two) for the plain values this module writes:
    str, int, float, bool, None, ``RawJson``, and lists and dicts of them.

    By hand, not ``json.dumps``: importing ``json`` pulls in ``re`` and ``enum``, ~8 ms at the
    end of every task, a sixth of the engine's per-task budget (issue 18); what is written here
    is a handful of flat records, which json.loads reads back
    (tests/trainers/test_measure_json.py).
    """
    if isinstance(value, RawJson):
        return str(value)
    if isinstance(value, str):
        return _json_string(value)
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return "null"  # not JSON numbers
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(to_json(v, indent) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = indent + "  "
        rows = (f"{inner}{_json_string(str(k))}: {to_json(v, inner)}" for k, v in value.items())
        return "{\n" + ",\n".join(rows) + "\n" + indent + "}"
    raise TypeError(f"to_json: {type(value).__name__} is not written here")


def _signal_name(number: int) -> str:
    """``SIGKILL`` for 9 (the ``signal`` module's canonical name, imported only here)."""
    import signal  # noqa: PLC0415 (rare: a command ended by a signal)

    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def _unlink(path: str) -> None:
    try:  # noqa: SIM105 (not contextlib: see the imports)
        os.unlink(path)
    except FileNotFoundError:
        pass


class _Notices:
    """Waits for the child while acting on preemption notices (module docstring, rules 1-3).

    Everything acts on the main thread: the IMDS watcher's thread only queues a notice and
    wakes the wait through a pipe, so the child is never signalled after it has been reaped.
    """

    def __init__(self, out: str, pid: int, signum: int, poll_s: float) -> None:
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
        import select  # noqa: PLC0415 (the command runs already: see the imports)

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
        now = os.path.join(self.out, PREEMPT_NOW)
        if os.path.exists(now):
            text = ""
            try:  # consumed, so a rerun in DIR is not preempted
                with open(now, encoding="utf-8", errors="replace") as fh:
                    text = fh.read()
                os.unlink(now)
            except OSError:
                pass
            self._notice(True, "file", _json_object(text), time.time())
        while self._queue:
            self._notice(*self._queue.pop(0))

    def _notice(self, preempts: bool, source: str, body: dict[str, Any], at: float) -> None:
        import json  # noqa: PLC0415 (imported already by main, after the spawn)

        if not preempts:
            _write_json(
                os.path.join(self.out, REBALANCE_FILE), {"source": source, "notice": body, "at": at}
            )
            print(f"{NOTICE} rebalance recommendation {json.dumps(body)}", flush=True)
            return
        if self.preempted:
            return
        self.preempted = True
        _write_json(
            os.path.join(self.out, PREEMPTED_FILE), {"source": source, "notice": body, "at": at}
        )
        name = _signal_name(self.signum)
        print(
            f"{NOTICE} spot interruption ({source}) {json.dumps(body)}: sending {name} to the task",
            flush=True,
        )
        try:  # noqa: SIM105 (not contextlib: see the imports)
            os.kill(self.pid, self.signum)
        except ProcessLookupError:
            pass


def _signal_named(name: str) -> int:
    """``USR1``, ``SIGTERM``... -> the signal number; KeyError for a name that is none."""
    upper = name.strip().upper()
    key = upper if upper.startswith("SIG") else f"SIG{upper}"
    number = getattr(_signal, key, None)
    if key.startswith("SIG_") or not isinstance(number, int):  # SIG_DFL, SIG_IGN are no signals
        raise KeyError(name)
    return number


def _json_object(text: str) -> dict[str, Any]:
    """A preempt-now file's JSON object, if it holds one (it may well be empty)."""
    import json  # noqa: PLC0415

    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _write_json(path: str, obj: dict[str, Any]) -> None:
    """Atomically (temp + rename); a full disk must not keep the signal from the task."""
    import json  # noqa: PLC0415

    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.tmp")
    try:
        _write_text(tmp, json.dumps(obj, indent=2) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        print(f"trainers.measure: could not write {path}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
