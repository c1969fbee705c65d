"""Watch the EC2 instance metadata service (IMDSv2) for a spot interruption or rebalance notice.

Why: AWS announces a spot reclaim two minutes ahead, and only on the machine itself, at
``/latest/meta-data/spot/instance-action`` (404 until then, then 200 with
``{"action": "terminate"|"stop"|"hibernate", "time": "..."}``); a rebalance recommendation
(higher risk, no reclaim yet) appears at ``/latest/meta-data/events/recommendations/rebalance``
as ``{"noticeTime": "..."}``. `trainers.measure` runs this watcher beside every task on a spot
machine so the trainer can checkpoint and stop before the machine goes.

Rules:
1. Every request carries an IMDSv2 token (``PUT /latest/api/token``), renewed before its TTL runs
   out and again whenever a request is answered 401.
2. Each request times out after ``timeout_s``; a network error, a refused connection or a
   garbled answer is the same as "no notice yet": the watcher never raises and keeps polling.
3. Each kind of notice is reported once (``on_notice``, from the watcher's thread); once both
   kinds are reported there is nothing left to watch and the thread ends.

Standard library only: `trainers.measure` imports this before any framework.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

INSTANCE_ACTION = "spot/instance-action"
REBALANCE = "events/recommendations/rebalance"
TOKEN_PATH = "/latest/api/token"
TOKEN_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"

OnNotice = Callable[[str, dict[str, Any]], None]


class SpotWatcher:
    """Polls the IMDS at `base_url` every `poll_s` seconds and calls ``on_notice(source, body)``
    once per kind of notice, ``source`` being `INSTANCE_ACTION` or `REBALANCE`."""

    def __init__(
        self,
        base_url: str,
        on_notice: OnNotice,
        *,
        poll_s: float = 5.0,
        timeout_s: float = 1.0,
        token_ttl_s: int = 21600,
    ) -> None:
        parts = urlsplit(base_url)
        self._host = parts.hostname or "169.254.169.254"
        self._port = parts.port or 80
        self._prefix = parts.path.rstrip("/")
        self._on_notice = on_notice
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.token_ttl_s = token_ttl_s
        self.reported: set[str] = set()
        self._token: str | None = None
        self._token_renew_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="spot-notice", daemon=True)

    def start(self) -> None:
        """Poll in a daemon thread, so a hung request can never keep the process alive."""
        self._thread.start()

    def stop(self) -> bool:
        """End the polling; waits about one request's timeout for the thread to notice, and
        says whether it has ended (it will not report anything after that)."""
        self._stop.set()
        self._thread.join(timeout=2 * self.timeout_s + 0.5)
        return not self._thread.is_alive()

    def check(self) -> None:
        """One poll of both notices; reports those seen for the first time (rules 1-3)."""
        for source in (INSTANCE_ACTION, REBALANCE):
            if source in self.reported:
                continue
            body = self._notice(source)
            if body is not None:
                self.reported.add(source)
                self._on_notice(source, body)

    def _loop(self) -> None:
        while len(self.reported) < 2:
            self.check()
            if self._stop.wait(self.poll_s):
                return

    def _notice(self, source: str) -> dict[str, Any] | None:
        """The notice's JSON body, or None while there is none (or the IMDS cannot be read)."""
        for _ in range(2):  # a 401 means the token went stale: renew it and ask once more
            token = self._fresh_token()
            if token is None:
                return None
            got = self._request("GET", f"/latest/meta-data/{source}", {TOKEN_HEADER: token})
            if got is None:
                return None
            status, text = got
            if status == 401:
                self._token = None
                continue
            if status != 200:
                return None
            try:
                body = json.loads(text)
            except ValueError:
                body = None
            # A 200 is the notice even when its body is not the documented JSON object.
            return body if isinstance(body, dict) else {"raw": text}
        return None

    def _fresh_token(self) -> str | None:
        if self._token is not None and time.monotonic() < self._token_renew_at:
            return self._token
        asked_at = time.monotonic()
        got = self._request("PUT", TOKEN_PATH, {TOKEN_TTL_HEADER: str(self.token_ttl_s)})
        if got is None or got[0] != 200 or not got[1]:
            return None
        self._token = got[1]
        # Renew at 80% of the TTL, counted from before the request: never use an expired one.
        self._token_renew_at = asked_at + 0.8 * self.token_ttl_s
        return self._token

    def _request(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, str] | None:
        """(status, body) or None on any transport failure (rule 2)."""
        conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout_s)
        try:
            conn.request(method, self._prefix + path, headers=headers)
            response = conn.getresponse()
            return response.status, response.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()
