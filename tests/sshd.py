"""A fleet of real OpenSSH ``sshd`` servers on 127.0.0.1, for tests that need an SSH host.

Each server gets a throwaway directory with its own ed25519 host key, config, pid file and log,
and trusts one client key shared by the fleet. ``stop()`` kills the listener *and* every
connection it forked (sshd puts each connection in its own session, so killing the listener
alone would leave live connections behind); ``start()`` brings it back on the same port with
the same host key, which is how tests simulate a host that drops and comes back.

Used as a pytest plugin (``pytest_plugins = ["tests.sshd"]``): the ``sshd_fleet`` fixture is a
factory, ``sshd_fleet(4)`` returns four running servers; ``sshd`` is one server.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from infra.provider import Address
from infra.transport.ssh import SshTransport

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"

_CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {dir}/ssh_host_ed25519_key
PidFile {dir}/sshd.pid
AuthorizedKeysFile {authorized_keys}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin yes
MaxStartups 100
MaxSessions 100
LogLevel VERBOSE
Subsystem sftp internal-sftp
"""


def sshd_available() -> bool:
    """Whether this machine can run the fixture (Debian ``openssh-server`` installed)."""
    return os.path.exists(SSHD) and os.path.exists(SSH_KEYGEN)


def keygen(path: Path, comment: str = "orchestrate-test") -> str:
    """Make an ed25519 key pair at ``path`` and return its public key line."""
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return Path(f"{path}.pub").read_text().strip()


def free_port() -> int:
    """A TCP port nothing listens on right now (the usual bind-to-0 trick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sshd_descendants(pid: int) -> list[int]:
    """The sshd processes forked from listener ``pid`` (one or two per connection)."""
    tree: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        head, _, rest = stat.rpartition(")")
        tree.setdefault(int(rest.split()[1]), []).append(int(entry))
        names[int(entry)] = head.partition("(")[2]
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if names.get(child, "").startswith("sshd"):
                out.append(child)
                todo.append(child)
    return out


@dataclass
class SshdServer:
    """One running ``sshd``; ``host_key`` is the public host key line to pin."""

    dir: Path
    port: int
    user: str
    key_path: str
    host_key: str
    host: str = "127.0.0.1"
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log(self) -> Path:
        return self.dir / "sshd.log"

    @property
    def address(self) -> Address:
        """The pinned address our transports take."""
        return Address(
            host=self.host,
            port=self.port,
            user=self.user,
            key_path=self.key_path,
            host_key=self.host_key,
        )

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 10.0) -> None:
        """Start (or restart) the daemon on this port and wait until it sends its banner."""
        if self.running:
            return
        self._proc = subprocess.Popen(
            [SSHD, "-D", "-f", str(self.dir / "sshd_config"), "-E", str(self.log)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"sshd exited {self._proc.returncode}: {self.log.read_text()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as s:
                    if s.recv(8).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"sshd on port {self.port} did not come up: {self.log.read_text()}")

    def stop(self) -> None:
        """Kill the listener and every connection it forked, like sshd crashing.

        Only sshd processes die: the users' commands see their pipes close, as they would. (A
        login shell SIGKILLed in the middle of its rc file can leave locks behind, e.g.
        pyenv's rehash lock, which then stalls every later login on the machine.)
        """
        if self._proc is None:
            return
        victims = [self._proc.pid, *_sshd_descendants(self._proc.pid)]
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._proc.wait(timeout=10)
        self._proc = None


def make_server(root: Path, *, key_path: Path, pub: str, index: int = 0) -> SshdServer:
    """Lay out one server's directory and config; does not start it."""
    d = root / f"sshd{index}"
    d.mkdir(parents=True)
    host_key = keygen(d / "ssh_host_ed25519_key", comment=f"host{index}")
    (d / "authorized_keys").write_text(pub + "\n")
    port = free_port()
    (d / "sshd_config").write_text(
        _CONFIG.format(port=port, dir=d, authorized_keys=d / "authorized_keys")
    )
    return SshdServer(
        dir=d,
        port=port,
        user=pwd.getpwuid(os.getuid()).pw_name,
        key_path=str(key_path),
        host_key=host_key,
    )


@pytest.fixture
def sshd_fleet(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[int], list[SshdServer]]]:
    """Factory fixture: ``sshd_fleet(n)`` starts ``n`` servers; all are killed at teardown."""
    if not sshd_available():
        pytest.skip("OpenSSH sshd is not installed (apt-get install openssh-server)")
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege-separation directory
    root = tmp_path_factory.mktemp("sshd")
    key = root / "id_ed25519"
    pub = keygen(key, comment="client")
    servers: list[SshdServer] = []

    def make(n: int = 1) -> list[SshdServer]:
        made = []
        for _ in range(n):
            server = make_server(root, key_path=key, pub=pub, index=len(servers))
            servers.append(server)
            server.start()
            made.append(server)
        return made

    try:
        yield make
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def sshd(sshd_fleet: Callable[[int], list[SshdServer]]) -> SshdServer:
    """One running sshd on 127.0.0.1."""
    return sshd_fleet(1)[0]


@pytest.fixture
def ssh_transport(sshd: SshdServer) -> Iterator[SshTransport]:
    """An ``SshTransport`` to the ``sshd`` server, closed at teardown."""
    transport = SshTransport(sshd.address, connect_timeout_s=5, deadline_s=10)
    try:
        yield transport
    finally:
        transport.close()
