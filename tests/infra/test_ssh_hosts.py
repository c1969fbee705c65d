"""SshHostsProvider against real sshd servers."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from infra.errors import ConnectError, HostKeyMismatch, ProviderError
from infra.provider import MachineRequest, Provider
from infra.ssh_hosts import HostSpec, SshHostsProvider
from infra.transport.ssh import SshTransport
from tests.sshd import SshdServer, keygen

RUN = "run-1"


def as_dict(server: SshdServer, name: str) -> dict[str, object]:
    """The plain-dict form an experiment file gives."""
    return {
        "name": name,
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "key": server.key_path,
        "host_key": server.host_key,
        "gpus": 1,
    }


def request(name: str, gpus: int = 0) -> MachineRequest:
    return MachineRequest(run_id=RUN, name=name, gpus=gpus, tags={"orchestrate:run": RUN})


def test_host_spec_from_dict_defaults_and_aliases() -> None:
    spec = HostSpec.from_dict({"host": "10.0.0.5", "port": "2222", "key": "~/.ssh/id", "gpus": 2})
    assert (spec.name, spec.port, spec.key_path, spec.gpus, spec.slots) == (
        "10.0.0.5:2222",
        2222,
        "~/.ssh/id",
        2,
        1,
    )
    assert spec.address.host == "10.0.0.5"


def test_host_spec_from_dict_reports_every_problem_at_once() -> None:
    with pytest.raises(ProviderError) as info:
        HostSpec.from_dict({"hots": "x", "gpus": "many"})
    message = str(info.value)
    assert "unknown key 'hots'" in message and "did you mean 'host'" in message
    assert "missing key 'host'" in message and "gpus must be an integer" in message


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ProviderError, match="repeated: a"):
        SshHostsProvider([{"name": "a", "host": "h1"}, {"name": "a", "host": "h2"}])


def test_prepare_has_no_side_effects_and_checks_the_name() -> None:
    # Nothing listens on this host; prepare must not try to reach it.
    provider = SshHostsProvider([{"name": "gpu-box", "host": "192.0.2.1", "gpus": 1}])
    launch = provider.prepare(request("gpu-box", gpus=1))
    assert launch.provider == "ssh" and launch.calls[0].name == "ssh.check"
    assert "192.0.2.1:22" in launch.summary
    with pytest.raises(ProviderError, match="did you mean 'gpu-box'"):
        provider.prepare(request("gpu-bx"))
    with pytest.raises(ProviderError, match="1 GPUs; 2 requested"):
        provider.prepare(request("gpu-box", gpus=2))
    assert provider.owned() == []


@pytest.mark.sshd
def test_acquire_connect_release_over_a_fleet(
    sshd_fleet: Callable[[int], list[SshdServer]],
) -> None:
    fleet = sshd_fleet(2)
    provider = SshHostsProvider([as_dict(s, f"h{i}") for i, s in enumerate(fleet)])
    assert isinstance(provider, Provider)
    machines = [provider.acquire(provider.prepare(request(f"h{i}")), token=f"t{i}") for i in (0, 1)]
    assert [m.address.port for m in machines if m.address] == [s.port for s in fleet]
    assert all(m.cpus >= 1 and m.gpus == 1 for m in machines)
    again = provider.acquire(provider.prepare(request("h0")), token="t0")
    assert again == machines[0]  # same token: the same machine, no second record
    assert sorted(m.id for m in provider.owned(run_id=RUN)) == sorted(m.id for m in machines)
    assert provider.owned(run_id="other") == []

    with provider.connect(machines[1]) as transport:
        assert isinstance(transport, SshTransport)
        assert transport.run(["echo", "hi"]).stdout == "hi\n"

    provider.release(machines[0].id)
    provider.release(machines[0].id)  # idempotent
    provider.release("never-heard-of-it")
    assert [m.id for m in provider.owned()] == [machines[1].id]


@pytest.mark.sshd
def test_acquire_of_a_host_that_never_answers_raises_connect_error(sshd: SshdServer) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        spec = {**as_dict(sshd, "dead"), "port": silent.getsockname()[1]}
        provider = SshHostsProvider([spec], connect_timeout_s=0.5, deadline_s=1.0)
        t0 = time.monotonic()
        with pytest.raises(ConnectError):
            provider.acquire(provider.prepare(request("dead")), token="t")
        assert time.monotonic() - t0 < 4
    assert provider.owned() == []


@pytest.mark.sshd
def test_acquire_refuses_a_host_with_another_key(sshd: SshdServer, tmp_path: Path) -> None:
    spec = {**as_dict(sshd, "evil"), "host_key": keygen(tmp_path / "other")}
    provider = SshHostsProvider([spec])
    with pytest.raises(HostKeyMismatch):
        provider.acquire(provider.prepare(request("evil")), token="t")


def test_spec_address_carries_the_pin() -> None:
    spec = replace(HostSpec(name="a", host="h", user="u"), host_key="ssh-ed25519 AAAA")
    assert spec.address.host_key == "ssh-ed25519 AAAA" and spec.address.user == "u"
