"""SshTransport against real OpenSSH sshd servers: commands, host keys, connecting, reconnecting."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from infra.errors import CommandFailed, ConnectError, HostKeyMismatch
from infra.transport.base import Transport
from infra.transport.ssh import SshTransport
from tests.sshd import SshdServer, free_port, keygen

pytestmark = pytest.mark.sshd


def _gone(pid: int) -> bool:
    """True when ``pid`` is dead (absent, or a zombie nobody reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_is_a_transport(ssh_transport: SshTransport) -> None:
    assert isinstance(ssh_transport, Transport)


def test_run_returns_result_with_streams_and_exit_code(ssh_transport: SshTransport) -> None:
    result = ssh_transport.run(["sh", "-c", "echo out; echo err >&2; exit 3"], check=False)
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert result.argv == ("sh", "-c", "echo out; echo err >&2; exit 3")
    assert not result.ok and result.duration_s > 0


def test_run_check_raises_command_failed_carrying_the_result(ssh_transport: SshTransport) -> None:
    with pytest.raises(CommandFailed) as info:
        ssh_transport.run(["sh", "-c", "echo boom >&2; exit 2"])
    assert info.value.result.exit_code == 2
    assert "boom" in str(info.value)


def test_run_passes_env_and_keeps_arguments_intact(ssh_transport: SshTransport) -> None:
    tricky = "a b'c\"$HOME;`x`"
    result = ssh_transport.run(
        ["sh", "-c", 'printf "%s|%s" "$FOO" "$1"', "sh", tricky], env={"FOO": tricky}
    )
    assert result.stdout == f"{tricky}|{tricky}"


def test_run_timeout_kills_the_remote_process_group(
    ssh_transport: SshTransport, tmp_path: Path
) -> None:
    pid_file = tmp_path / "child.pid"
    t0 = time.monotonic()
    result = ssh_transport.run(
        ["sh", "-c", f"sleep 60 & echo $! > {pid_file}; wait"], timeout_s=1, check=False
    )
    assert result.exit_code == 124
    assert time.monotonic() - t0 < 5
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(child), "the grandchild survived the timeout"


def test_wrong_pinned_key_is_refused_and_nothing_runs(sshd: SshdServer, tmp_path: Path) -> None:
    other = keygen(tmp_path / "other_host_key")
    marker = tmp_path / "ran"
    transport = SshTransport(replace(sshd.address, host_key=other), deadline_s=5)
    with pytest.raises(HostKeyMismatch), transport:
        transport.run(["touch", str(marker)])
    assert not marker.exists()


def test_no_pinned_key_at_all_is_refused(sshd: SshdServer) -> None:
    transport = SshTransport(replace(sshd.address, host_key=None), deadline_s=5)
    with pytest.raises(HostKeyMismatch), transport:
        transport.run(["true"])


def test_known_hosts_file_is_accepted(sshd: SshdServer, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(f"[{sshd.host}]:{sshd.port} {sshd.host_key}\n")
    address = replace(sshd.address, host_key=None, known_hosts=str(known))
    with SshTransport(address) as transport:
        assert transport.run(["echo", "ok"]).stdout == "ok\n"


def test_host_that_never_answers_fails_within_the_deadline(sshd: SshdServer) -> None:
    # A socket that accepts TCP but never speaks SSH: the classic hung host.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        address = replace(sshd.address, port=port)
        t0 = time.monotonic()
        with pytest.raises(ConnectError, match=f"127.0.0.1:{port}"):
            SshTransport(address, connect_timeout_s=0.5, deadline_s=1.5).run(["true"])
        assert time.monotonic() - t0 < 4


def test_nothing_listening_retries_then_fails(sshd: SshdServer) -> None:
    address = replace(sshd.address, port=free_port())
    t0 = time.monotonic()
    with pytest.raises(ConnectError, match="attempts"):
        SshTransport(address, connect_timeout_s=0.5, deadline_s=1.0).run(["true"])
    assert time.monotonic() - t0 < 3


def test_connect_retries_until_the_host_comes_up(sshd: SshdServer) -> None:
    sshd.stop()
    import threading

    threading.Timer(0.7, sshd.start).start()
    with SshTransport(sshd.address, connect_timeout_s=1, deadline_s=10) as transport:
        assert transport.run(["echo", "up"]).stdout == "up\n"


def test_next_call_reconnects_after_the_connection_dropped(sshd: SshdServer) -> None:
    with SshTransport(sshd.address, connect_timeout_s=1, deadline_s=2) as transport:
        assert transport.run(["true"]).ok
        sshd.stop()
        with pytest.raises(ConnectError):
            transport.run(["true"])
        sshd.start()
        assert transport.run(["echo", "back"]).stdout == "back\n"


def test_a_fleet_of_servers_answers_independently(
    sshd_fleet: Callable[[int], list[SshdServer]],
) -> None:
    fleet = sshd_fleet(3)
    ports = []
    for server in fleet:
        with SshTransport(server.address) as transport:
            conn = transport.run(["sh", "-c", "echo $SSH_CONNECTION"]).stdout.split()
            ports.append(int(conn[-1]))
    assert ports == [s.port for s in fleet]
    assert len(set(ports)) == 3


def test_close_is_idempotent_and_reusable(ssh_transport: SshTransport) -> None:
    ssh_transport.close()
    ssh_transport.close()
    assert ssh_transport.run(["true"]).ok
    assert os.path.exists(ssh_transport.address.key_path or "")
