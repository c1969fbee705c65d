"""A long-lived remote ``sh`` that runs our short scripts (poll, start) on one channel.

Why: every SSH exec request starts the user's login shell, and on ML hosts that shell's rc file
often runs ``pyenv init``/``conda init`` (measured here: ~0.2 s of CPU per command). A poll loop
over several hosts then spends more time starting shells than the jobs spend running. One
``sh`` reading scripts from its stdin pays that once per connection; each script then costs
a fork or two.

Framing: every script runs as ``sh -c SCRIPT`` (a syntax error cannot kill the control shell)
with stdin from /dev/null, stdout and stderr to files in a private temp dir, after which the
shell prints ``<mark> <exit> <out bytes> <err bytes>`` and the two files (one ``stat`` and one
``cat``: polls are frequent, so each process spared counts). Nothing else reaches
its stdout, so the reply is read by length, whatever bytes the script printed.
"""

from __future__ import annotations

import shlex
import threading
import uuid
from typing import Protocol

# The private temp dir goes when the shell does. The EXIT trap covers a closed channel (EOF on
# stdin). ``sh`` (dash) does not run it when a signal ends the shell, and a dropped connection
# ends it by one (sshd's HUP, a PIPE on the reply, a TERM at shutdown). Each of those has its
# own trap, run once the shell's stdin ends, which the lost channel also brings. Only a KILL
# leaves the dir behind.
_PROLOGUE = (
    "T=$(mktemp -d) || exit 1\n"
    "trap 'rm -rf \"$T\"' EXIT\n"
    "trap 'rm -rf \"$T\"; exit 129' HUP\n"
    "trap 'rm -rf \"$T\"; exit 130' INT\n"
    "trap 'rm -rf \"$T\"; exit 141' PIPE\n"
    "trap 'rm -rf \"$T\"; exit 143' TERM\n"
)


class ShellChannel(Protocol):
    closed: bool

    def recv(self, n: int, /) -> bytes: ...

    def sendall(self, data: bytes, /) -> None: ...

    def settimeout(self, timeout: float | None, /) -> None: ...


class ControlShell:
    """Runs scripts one at a time (a lock serialises callers) on an ``exec sh`` channel.

    Raises whatever the channel raises (EOFError, socket.timeout, ...); the transport translates
    those and starts a fresh shell on its next call.
    """

    START_COMMAND = "exec sh"

    def __init__(self, chan: ShellChannel) -> None:
        self._chan = chan
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._mark = uuid.uuid4().hex
        chan.sendall(_PROLOGUE.encode())

    @property
    def closed(self) -> bool:
        """Whether the shell's channel is gone (the next call opens a new one)."""
        return self._chan.closed

    def call(self, script: str, *, timeout_s: float) -> tuple[int, bytes, bytes]:
        """Run ``script``; returns ``(exit_code, stdout, stderr)``."""
        line = (
            f'sh -c {shlex.quote(script)} </dev/null >"$T/o" 2>"$T/e"; rc=$?\n'
            f'printf "%s %s %s %s\\n" {self._mark} "$rc" $(stat -c %s "$T/o" "$T/e")\n'
            'cat "$T/o" "$T/e"\n'
        )
        with self._lock:
            self._chan.settimeout(timeout_s)
            self._chan.sendall(line.encode())
            head = self._read_line()
            mark, rc, n_out, n_err = head.split()
            if mark != self._mark:
                raise EOFError(f"control shell out of step: {head[:100]!r}")
            body = self._read_exact(int(n_out) + int(n_err))
        return int(rc), body[: int(n_out)], body[int(n_out) :]

    def _fill(self) -> None:
        data = self._chan.recv(1 << 16)
        if not data:
            raise EOFError("the control shell ended")
        self._buf += data

    def _read_line(self) -> str:
        while (i := self._buf.find(b"\n")) < 0:
            self._fill()
        line = bytes(self._buf[:i]).decode(errors="replace")
        del self._buf[: i + 1]
        return line

    def _read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._fill()
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out
