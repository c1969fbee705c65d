"""A fake EC2 instance metadata service (IMDSv2) that can announce a spot interruption.

Shared by the trainer-side tests (`trainers.spot_notice`, `trainers.measure`) and the
orchestrator-side ones, which point emulated EC2 instances at ``FakeImds.url``. It answers like
AWS on the paths we use: ``PUT /latest/api/token`` with ``X-aws-ec2-metadata-token-ttl-seconds``
(1-21600) returns a token; any other request without a valid, unexpired token gets 401;
``/latest/meta-data/spot/instance-action`` and
``/latest/meta-data/events/recommendations/rebalance`` are 404 until a notice is set.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

TOKEN_PATH = "/latest/api/token"
INSTANCE_ACTION_PATH = "/latest/meta-data/spot/instance-action"
REBALANCE_PATH = "/latest/meta-data/events/recommendations/rebalance"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeImds:
    """``with FakeImds() as imds:`` serves on 127.0.0.1 at ``imds.url`` until the block ends.

    ``stop()`` / ``start()`` take it down and bring it back on the same port (a metadata
    service that does not answer for a while); ``revoke_tokens()`` makes every issued token
    invalid, as an expiry would. Thread-safe: the server answers from its own threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self._paths: dict[str, dict[str, Any]] = {}
        self._requests: list[tuple[str, str]] = []
        self._statuses: list[tuple[str, str, int]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # ------------------------------------------------------------ lifecycle

    def start(self) -> FakeImds:
        """Serve (again): on a free port the first time, on the same port after `stop`."""
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering: connections are refused until `start`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeImds:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------ what it announces

    def notice_spot(self, action: str = "terminate", in_s: float = 120.0) -> dict[str, Any]:
        """Announce a spot interruption `in_s` seconds from now; returns the body it serves."""
        body = {"action": action, "time": _iso(time.time() + in_s)}
        with self._lock:
            self._paths[INSTANCE_ACTION_PATH] = body
        return body

    def recommend_rebalance(self) -> dict[str, Any]:
        """Announce a rebalance recommendation; returns the body it serves."""
        body = {"noticeTime": _iso(time.time())}
        with self._lock:
            self._paths[REBALANCE_PATH] = body
        return body

    def clear(self) -> None:
        """No notices (both paths 404 again)."""
        with self._lock:
            self._paths.clear()

    def revoke_tokens(self) -> None:
        """Every token issued so far is refused from now on (401), as if expired."""
        with self._lock:
            self._tokens.clear()

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of every request so far, in order."""
        with self._lock:
            return list(self._requests)

    @property
    def statuses(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of every answer so far, in order."""
        with self._lock:
            return list(self._statuses)

    # ------------------------------------------------------------ the server

    def _answer(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
        with self._lock:
            self._requests.append((method, path))
            now = time.monotonic()
            if path == TOKEN_PATH:
                if method != "PUT":
                    return 405, ""
                try:
                    ttl = int(headers.get("x-aws-ec2-metadata-token-ttl-seconds", ""))
                except ValueError:
                    return 400, ""
                if not 1 <= ttl <= 21600:
                    return 400, ""
                token = secrets.token_urlsafe(24)
                self._tokens[token] = now + ttl
                return 200, token
            token = headers.get("x-aws-ec2-metadata-token", "")
            if self._tokens.get(token, 0.0) <= now:
                return 401, ""
            if method != "GET":
                return 405, ""
            body = self._paths.get(path)
            return (404, "") if body is None else (200, json.dumps(body))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        imds = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, text = imds._answer(self.command, self.path, headers)
                with imds._lock:
                    imds._statuses.append((self.command, self.path, status))
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = _reply

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the tests read `requests` instead

        return Handler
