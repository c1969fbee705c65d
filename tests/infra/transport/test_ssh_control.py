"""`infra.transport.ssh_control.ControlShell` over a local ``sh``: its framing, and its private
temp dir removed however the shell ends, except by KILL. A dropped SSH connection ends the
remote shell by a signal, and each drop used to leave a dir in the machine's /tmp."""

from __future__ import annotations

import os
import select
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.transport.ssh_control import ControlShell


class PipeChannel:
    """What `ControlShell` uses of a paramiko channel, over a local process's pipes."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
        self._timeout: float | None = None

    @property
    def closed(self) -> bool:
        return self._proc.poll() is not None

    def recv(self, n: int, /) -> bytes:
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], self._timeout)
        if not ready:
            raise TimeoutError("no reply from the shell")
        return os.read(self._proc.stdout.fileno(), n)

    def sendall(self, data: bytes, /) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(data)
        self._proc.stdin.flush()

    def settimeout(self, timeout: float | None, /) -> None:
        self._timeout = timeout


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], ControlShell]]:
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # mktemp -d makes its dir here
    proc = subprocess.Popen(["sh"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    try:
        yield proc, ControlShell(PipeChannel(proc))
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def _private_dir(control: ControlShell) -> Path:
    """The shell's temp dir: the folder of the file a script's stdout is sent to."""
    rc, out, _ = control.call("readlink /proc/$$/fd/1", timeout_s=10)
    assert rc == 0
    return Path(out.decode().strip()).parent


def test_a_call_returns_the_exit_code_and_both_streams_whatever_they_hold(
    shell: tuple[subprocess.Popen[bytes], ControlShell],
) -> None:
    _, control = shell
    script = "printf 'no newline at the end 0 0 0'; printf 'warn\\n' >&2; exit 3"
    assert control.call(script, timeout_s=10) == (3, b"no newline at the end 0 0 0", b"warn\n")
    assert control.call("true", timeout_s=10) == (0, b"", b"")


@pytest.mark.parametrize("ending", ["eof", "HUP", "INT", "PIPE", "TERM"])
def test_the_private_dir_is_removed_however_the_shell_ends(
    shell: tuple[subprocess.Popen[bytes], ControlShell], ending: str
) -> None:
    proc, control = shell
    private = _private_dir(control)
    assert private.is_dir()
    if ending != "eof":  # the connection dropped: sshd or the kernel signals the shell...
        proc.send_signal(getattr(signal, f"SIG{ending}"))
    assert proc.stdin is not None
    proc.stdin.close()  # ...and its stdin ends, the channel being gone
    proc.wait(timeout=10)
    assert not private.exists()


def test_a_killed_shell_leaves_its_dir_which_is_what_the_others_are_checked_against(
    shell: tuple[subprocess.Popen[bytes], ControlShell],
) -> None:
    proc, control = shell
    private = _private_dir(control)
    proc.kill()
    proc.wait(timeout=10)
    assert private.is_dir()  # no trap can run: the check above would see a leftover dir
