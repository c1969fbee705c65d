"""Pytest fixtures for the AWS path: moto's server on 127.0.0.1 and the instance emulator.

Used as a plugin (``pytest_plugins`` in tests/conftest.py). ``instance_emulator`` skips, with
the reason, only where containers truly cannot boot (not Linux, not root, no nspawn).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FAKE_TRAINERS
from tests.instances.disk import unavailable_reason
from tests.sshd import free_port

REGION = "us-east-1"


@pytest.fixture
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    # moto's backends are global to this process and outlive a server: without a reset, images
    # and instances of an earlier test (whose containers are gone) would be found by this one.
    _reset(url)
    try:
        yield url
    finally:
        _reset(url)
        server.stop()


def _reset(url: str) -> None:
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST")).close()


@pytest.fixture
def aws_env(moto_server: str, tmp_path: Path) -> dict[str, str]:
    """The environment of an `orchestrate` child process talking to the moto server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=moto_server,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        ORCHESTRATE_STATE_DIR=str(tmp_path / "state"),
        ORCHESTRATE_TRAINERS_SRC=str(FAKE_TRAINERS),
    )
    return env


@pytest.fixture
def instance_emulator(
    moto_server: str, aws_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[object]:
    """Booted containers behind moto's instances; ``aws_env`` is pointed at their endpoints."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"instance emulator: {reason}")
    from tests.instances.emulator import InstanceEmulator

    emulator = InstanceEmulator(moto_server, tmp_path_factory.mktemp("instances"), region=REGION)
    # A SIGTERM to pytest (CI's timeout, a developer's kill) must still power the containers off
    # and unmount their disks: turn it into an exception so the finally below runs.
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    emulator.start()
    aws_env["ORCHESTRATE_AWS_ENDPOINTS"] = str(emulator.endpoints_file)
    try:
        yield emulator
    finally:
        emulator.close()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def ec2_client(env: dict[str, str]) -> Any:
    """An EC2 client on the moto server that ``env`` (``aws_env``) points a child process at."""
    import boto3

    return boto3.client(
        "ec2",
        region_name=env.get("AWS_DEFAULT_REGION", REGION),
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
