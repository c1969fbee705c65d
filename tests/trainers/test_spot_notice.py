"""`trainers.spot_notice.SpotWatcher` against the fake IMDSv2 (`tests.imds.FakeImds`): tokens,
quiet failures, and one report per kind of notice."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from tests.imds import INSTANCE_ACTION_PATH, TOKEN_PATH, FakeImds
from trainers.spot_notice import INSTANCE_ACTION, REBALANCE, SpotWatcher


class Seen:
    """The watcher's callback: every (source, body) it reported, thread-safely."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, source: str, body: dict[str, Any]) -> None:
        with self.lock:
            self.calls.append((source, body))

    def sources(self) -> list[str]:
        with self.lock:
            return [s for s, _ in self.calls]


def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_the_fake_refuses_requests_without_a_valid_token() -> None:
    with FakeImds() as imds:
        imds.notice_spot()
        for headers in ({}, {"X-aws-ec2-metadata-token": "forged"}):
            req = urllib.request.Request(imds.url + INSTANCE_ACTION_PATH, headers=headers)
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(req, timeout=5)
            assert err.value.code == 401
        put = urllib.request.Request(imds.url + TOKEN_PATH, method="PUT")  # no TTL header
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(put, timeout=5)
        assert err.value.code == 400


def test_no_notice_reports_nothing_and_reuses_one_token() -> None:
    seen = Seen()
    with FakeImds() as imds:
        watcher = SpotWatcher(imds.url, seen, poll_s=0.01)
        for _ in range(5):
            watcher.check()
        assert seen.calls == []
        assert [r for r in imds.requests if r[0] == "PUT"] == [("PUT", TOKEN_PATH)]
        gets = [(path, status) for method, path, status in imds.statuses if method == "GET"]
        assert len(gets) == 10 and {status for _, status in gets} == {404}


def test_the_token_is_renewed_before_its_ttl_and_after_a_401() -> None:
    seen = Seen()
    with FakeImds() as imds:
        watcher = SpotWatcher(imds.url, seen, poll_s=0.05, token_ttl_s=1)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.5:
            watcher.check()
            time.sleep(0.05)
        puts = [r for r in imds.requests if r[0] == "PUT"]
        assert len(puts) >= 3  # renewed at 80% of a 1 s TTL
        assert 401 not in {status for _, _, status in imds.statuses}  # ...never used stale

        slow = SpotWatcher(imds.url, seen, poll_s=0.05)
        slow.check()
        imds.revoke_tokens()
        body = imds.notice_spot(action="stop")
        slow.check()  # 401, a fresh token, and the notice in the same check
        assert seen.calls == [(INSTANCE_ACTION, body)]
        assert imds.statuses[-4:-1] == [
            ("GET", INSTANCE_ACTION_PATH, 401),
            ("PUT", TOKEN_PATH, 200),
            ("GET", INSTANCE_ACTION_PATH, 200),
        ]  # then the rebalance path, 404


def test_a_metadata_service_down_then_up_still_delivers_the_notice() -> None:
    seen = Seen()
    imds = FakeImds().start()
    try:
        imds.stop()  # the port is known, nothing answers on it
        watcher = SpotWatcher(imds.url, seen, poll_s=0.05, timeout_s=0.2)
        watcher.start()
        time.sleep(0.3)  # several refused polls: none of them may raise or report
        assert seen.calls == []
        imds.start()
        body = imds.notice_spot()
        assert _until(lambda: seen.sources() == [INSTANCE_ACTION])
        assert seen.calls == [(INSTANCE_ACTION, body)]
        watcher.stop()
    finally:
        imds.stop()


def test_a_silent_service_costs_one_timeout_not_a_hang() -> None:
    seen = Seen()
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        watcher = SpotWatcher(f"http://127.0.0.1:{silent.getsockname()[1]}", seen, timeout_s=0.2)
        t0 = time.monotonic()
        watcher.check()
        assert time.monotonic() - t0 < 1.0 and seen.calls == []


def test_each_kind_of_notice_is_reported_once_then_the_thread_ends() -> None:
    seen = Seen()
    with FakeImds() as imds:
        watcher = SpotWatcher(imds.url, seen, poll_s=0.02)
        watcher.start()
        spot = imds.notice_spot(action="hibernate", in_s=60)
        assert _until(lambda: INSTANCE_ACTION in seen.sources())
        time.sleep(0.2)  # many more polls with the notice still up
        rebalance = imds.recommend_rebalance()
        assert _until(lambda: len(seen.sources()) == 2)
        count = len(imds.requests)
        time.sleep(0.2)
        assert len(imds.requests) == count  # both reported: nothing left to watch
        assert seen.calls == [(INSTANCE_ACTION, spot), (REBALANCE, rebalance)]
        assert spot["action"] == "hibernate" and spot["time"].endswith("Z")
        watcher.stop()
