"""The connection half of ``SshTransport``: one persistent, host-key-pinned paramiko
connection, opened with backoff (through a ProxyJump host when there is one), login shells
started ahead of need, and the one table that turns paramiko/socket errors into ours
(``translate``).

``SshTransport`` (``infra.transport.ssh``) adds the Transport verbs on top; the two are split
along that line to keep each module under the 400-line house rule (issue 15).
"""

from __future__ import annotations

import os
import shlex
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from infra.errors import ConnectError, HostKeyMismatch, ProviderError, TransportError
from infra.provider import Address
from infra.transport import manifest as mf
from infra.transport.ssh_connect import pin, pinned_key, round_trip, tuned_transport
from infra.transport.ssh_control import ControlShell

if TYPE_CHECKING:
    import paramiko

# A login shell started ahead of need: it reads "<bytes>\n<script>" and runs the script, whose
# stdin is the rest of the channel. dash reads ahead when it takes a script from stdin, so the
# script is read whole with `head -c` and run with `sh -c`.
SPARE_SHELL = "exec sh -c " + shlex.quote('read -r n && s=$(head -c "$n") && exec sh -c "$s"')


def load_paramiko() -> Any:
    """paramiko, imported on first use, so importing infra costs nothing for local runs."""
    try:
        import paramiko
    except ImportError as exc:  # pragma: no cover - the ssh extra is a dev dependency
        raise ProviderError("paramiko (a base dependency) is missing: pip install -e .") from exc
    return paramiko


def translate(exc: BaseException, where: str) -> tuple[TransportError, bool] | None:
    """The one table from paramiko/socket errors to ours: ``(error, worth_retrying)``."""
    pm = load_paramiko()
    if isinstance(exc, TransportError):
        return exc, False
    if isinstance(exc, pm.BadHostKeyException):
        got = f"{exc.key.get_name()} {exc.key.get_base64()}"
        return HostKeyMismatch(
            f"{where} presented host key {got}, not the pinned one; refusing to connect "
            "(if the host was rebuilt, update its pinned key)"
        ), False
    if isinstance(exc, pm.AuthenticationException):
        return ConnectError(f"{where}: authentication failed ({exc}); check the key path"), False
    if isinstance(exc, pm.ssh_exception.NoValidConnectionsError):
        return ConnectError(f"{where}: connection refused ({exc})"), True
    if isinstance(exc, socket.timeout | TimeoutError):
        return ConnectError(f"{where}: timed out ({exc or type(exc).__name__})"), True
    if isinstance(exc, pm.SSHException | OSError | EOFError):
        return ConnectError(f"{where}: {type(exc).__name__}: {exc or 'connection lost'}"), True
    return None


class SshLink:
    """The connection state and lifecycle of one ``SshTransport`` (see its Args)."""

    def __init__(
        self,
        address: Address,
        *,
        connect_timeout_s: float = 10.0,
        deadline_s: float = 60.0,
        keepalive_s: float = 15.0,
        io_timeout_s: float = 300.0,
        compress: bool | None = None,
        cache: mf.HashCache | None = None,
    ) -> None:
        self.address = address
        self._connect_timeout_s = connect_timeout_s
        self._deadline_s = deadline_s
        self._keepalive_s = keepalive_s
        self._io_timeout_s = io_timeout_s
        self._compress = compress
        self._rtt_s = float("inf")
        self._cache = cache or mf.DEFAULT_CACHE
        self._lock = threading.Lock()
        self._ssh: paramiko.SSHClient | None = None
        self._shell: ControlShell | None = None
        self._spare: paramiko.Channel | None = None
        self._jump: SshLink | None = None  # the ProxyJump host's connection, if any

    @property
    def where(self) -> str:
        """``user@host:port``, for messages."""
        return f"{self.address.user}@{self.address.host}:{self.address.port}"

    def close(self) -> None:
        """Close the connection; detached jobs keep running. The next call reconnects."""
        with self._lock:
            self._drop()
            if self._jump is not None:
                self._jump.close()
                self._jump = None

    # ------------------------------------------------------------------ connection

    def _drop(self) -> None:
        if self._ssh is not None:
            self._ssh.close()
            self._ssh = None
            self._shell = None
            self._spare = None

    def _transport(self) -> paramiko.Transport:
        """The live paramiko transport, connecting (again) if there is none."""
        with self._lock:
            if self._ssh is not None:
                live = self._ssh.get_transport()
                if live is not None and live.is_active():
                    return live
                self._drop()
            self._ssh = self._connect()
            live = self._ssh.get_transport()
            assert live is not None
            return live

    def _connect(self) -> paramiko.SSHClient:
        """Connect with exponential backoff until ``deadline_s``; never retry a key mismatch."""
        pm = load_paramiko()
        a = self.address
        try:
            key = pinned_key(pm, a)
        except Exception as exc:  # paramiko's UnknownKeyType/SSHException, base64's ValueError
            raise HostKeyMismatch(
                f"{self.where}: the pinned host key is malformed ({exc})"
            ) from exc
        deadline = time.monotonic() + self._deadline_s
        delay, attempts = 0.2, 0
        while True:
            attempts += 1
            per_try = max(0.2, min(self._connect_timeout_s, deadline - time.monotonic()))
            client = pm.SSHClient()
            try:
                pin(pm, client, a, key, self.where)
                sock = self._through_jump(per_try)
                client.connect(
                    a.host,
                    port=a.port,
                    username=a.user,
                    key_filename=os.path.expanduser(a.key_path) if a.key_path else None,
                    timeout=per_try,
                    banner_timeout=per_try,
                    auth_timeout=per_try,
                    allow_agent=a.key_path is None,
                    look_for_keys=a.key_path is None,
                    transport_factory=tuned_transport,
                    sock=sock,
                )
            except Exception as exc:
                client.close()
                mapped = translate(exc, self.where)
                if mapped is None:
                    raise
                error, retry = mapped
                if not retry:
                    raise error from exc
                if time.monotonic() + delay >= deadline:
                    raise ConnectError(
                        f"could not connect to {a.host}:{a.port} within {self._deadline_s:g}s "
                        f"({attempts} attempts); last error: {error}"
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            live = client.get_transport()
            if live is not None:
                if self._keepalive_s > 0:
                    live.set_keepalive(max(1, int(self._keepalive_s)))
                # The first shell starts now: its login runs while we time the round trip.
                self._spare = self._start_spare(live)
                self._rtt_s = round_trip(live, self._connect_timeout_s)
            return cast("paramiko.SSHClient", client)

    def _through_jump(self, timeout_s: float) -> Any:
        """A channel to this host through its ProxyJump host (``Address.jump``, itself pinned
        and maybe jumped), or None to dial directly."""
        a = self.address
        if a.jump is None:
            return None
        if self._jump is None:
            self._jump = SshLink(
                a.jump, connect_timeout_s=self._connect_timeout_s, deadline_s=self._deadline_s
            )
        hop = self._jump._transport()
        return hop.open_channel(
            "direct-tcpip", (a.host, a.port), ("127.0.0.1", 0), timeout=timeout_s
        )

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Translate failures inside one remote action; a broken connection is dropped."""
        try:
            yield
        except TransportError:
            raise
        except Exception as exc:
            mapped = translate(exc, f"{self.where} ({action})")
            if mapped is None:
                raise
            with self._lock:
                self._drop()
            raise mapped[0] from exc

    def _session(self, script: str) -> paramiko.Channel:
        """A channel running ``script`` under ``sh``, on a login shell started in advance.

        Every exec request starts the user's login shell, whose rc file may take a while (here
        ``pyenv init``: ~0.1-0.2 s). So one spare channel is always started ahead
        (``SPARE_SHELL``: it waits for a script on stdin) and the next call takes it; the
        script's own stdin is whatever is sent after it.
        """
        transport = self._transport()
        with self._lock:
            chan, self._spare = self._spare, None
        if chan is None or chan.closed or chan.exit_status_ready():
            chan = self._start_spare(transport)
        body = script.encode()
        chan.sendall(b"%d\n" % len(body) + body)
        with self._lock:
            if self._spare is None and self._ssh is not None:
                self._spare = self._start_spare(transport)
        return chan

    def _start_spare(self, transport: paramiko.Transport) -> paramiko.Channel:
        chan = transport.open_session(timeout=self._connect_timeout_s)
        chan.exec_command(SPARE_SHELL)
        return chan
