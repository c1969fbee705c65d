"""``provider: ssh`` hosts written as ssh config aliases (HostName, User, Port, IdentityFile,
ProxyJump, UserKnownHostsFile), against real sshd servers on 127.0.0.1.

The config is a temp file named by ``ssh_config:`` (never the user's ``~/.ssh/config``); host
keys stay pinned through the config's ``UserKnownHostsFile``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from infra.errors import HostKeyMismatch, ProviderError, TransportError
from infra.provider import Address
from infra.ssh_config import SSH_CONFIG_ENV, OpenSshConfig
from infra.transport.ssh import SshTransport
from orchestrator.specfile import parse_experiment
from orchestrator.ssh_inventory import host_specs
from tests.cli import orchestrate
from tests.fakes import FAKE_TRAINERS
from tests.mnist_data import MNIST_DIR, needs_mnist
from tests.sshd import SshdServer

ROOT = Path(__file__).resolve().parents[2]


def _write_config(tmp_path: Path, servers: list[SshdServer], *, pin: bool = True) -> Path:
    """``box0`` direct, ``box1`` through ``box0`` (ProxyJump), both pinned by one file."""
    known = tmp_path / "known_hosts"
    known.write_text("".join(f"[{s.host}]:{s.port} {s.host_key}\n" for s in servers))
    blocks = []
    for i, s in enumerate(servers):
        lines = [f"Host box{i}", f"  HostName {s.host}", f"  Port {s.port}", f"  User {s.user}"]
        lines += [f"  IdentityFile {s.key_path}"]
        lines += [f"  UserKnownHostsFile {known}"] if pin else []
        lines += ["  ProxyJump box0"] if i > 0 else []
        blocks.append("\n".join(lines))
    path = tmp_path / "ssh_config"
    path.write_text("\n\n".join(blocks) + "\n")
    return path


def _exp(config: Path, n: int, tmp_path: Path, jobs: list[dict[str, object]]) -> dict[str, object]:
    # Pinned by the same file the config names; the entry says so too, as the experiment
    # checks ask for a host key source in the file itself.
    hosts = [
        {
            "host": f"box{i}",
            "known_hosts": str(tmp_path / "known_hosts"),
            "python": sys.executable,
            "workspace_root": str(tmp_path / f"r{i}"),
        }
        for i in range(n)
    ]
    return {
        "name": "alias",
        "provider": "ssh",
        "ssh_config": str(config),
        "hosts": hosts,
        "jobs": jobs,
    }


def test_aliases_resolve_like_ssh_and_entry_values_win(tmp_path: Path) -> None:
    config = tmp_path / "cfg"
    config.write_text(
        "Host gpubox\n  HostName 10.1.2.3\n  User alice\n  Port 2222\n"
        "  IdentityFile ~/.ssh/id_gpu\n  ProxyJump bastion\n"
        "Host bastion\n  HostName 192.0.2.9\n  User jump\n  UserKnownHostsFile /k/hosts\n"
    )
    exp = parse_experiment(
        yaml.safe_dump(
            {
                "name": "a",
                "provider": "ssh",
                "ssh_config": str(config),
                "hosts": [
                    {"host": "gpubox", "known_hosts": "/k/hosts"},
                    {"host": "gpubox", "user": "bob", "name": "b", "known_hosts": "/k/hosts"},
                ],
                "jobs": [{"trainer": "pca"}],
            }
        ),
        "a.yaml",
    )
    first, second = host_specs(exp)
    assert (first.name, first.host, first.port, first.user) == (
        "gpubox",
        "10.1.2.3",
        2222,
        "alice",
    )
    assert first.key_path == os.path.expanduser("~/.ssh/id_gpu")
    jump = first.address.jump
    assert jump is not None and (jump.host, jump.port, jump.user) == ("192.0.2.9", 22, "jump")
    assert jump.known_hosts == "/k/hosts" and first.known_hosts == "/k/hosts"
    assert (second.name, second.user) == ("b", "bob")  # the entry's own values win
    with pytest.raises(ProviderError, match="does not exist"):
        OpenSshConfig.load(str(tmp_path / "nope"))


def test_env_names_the_config_and_unpinnable_jumps_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "cfg"
    config.write_text("Host a\n  HostName 10.0.0.1\n  ProxyJump b\nHost b\n  HostName 10.0.0.2\n")
    monkeypatch.setenv(SSH_CONFIG_ENV, str(config))
    loaded = OpenSshConfig.load()
    assert loaded.resolve("a").hostname == "10.0.0.1"
    with pytest.raises(ProviderError, match="cannot be pinned"):
        loaded.jump_address("b", known_hosts=None)


def test_an_alias_without_a_pinned_key_is_refused(
    tmp_path: Path, sshd_fleet: Callable[[int], list[SshdServer]]
) -> None:
    servers = sshd_fleet(1)
    r = OpenSshConfig.load(str(_write_config(tmp_path, servers, pin=False))).resolve("box0")
    assert (r.hostname, r.port, r.known_hosts) == ("127.0.0.1", servers[0].port, None)
    address = Address(
        host=r.hostname, port=r.port or 22, user=r.user or "", key_path=r.identity_file
    )
    with pytest.raises(HostKeyMismatch), SshTransport(address, deadline_s=5) as t:
        t.run(["true"])


def test_fake_trainers_over_two_aliases_one_behind_proxyjump(
    tmp_path: Path, sshd_fleet: Callable[[int], list[SshdServer]]
) -> None:
    servers = sshd_fleet(2)
    config = _write_config(tmp_path, servers)
    jobs: list[dict[str, object]] = [
        {"trainer": "mnist", "optimizer": ["sgd", "adam", "momentum", "rmsprop"], "epochs": 2}
    ]
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(_exp(config, 2, tmp_path, jobs)))
    env = dict(
        os.environ,
        ORCHESTRATE_TRAINERS_SRC=str(FAKE_TRAINERS),
        ORCHESTRATE_STATE_DIR=str(tmp_path / "state"),
        FAKE_EPOCH_S="0.2",
    )
    proc = orchestrate(["run", "exp.yaml", "--json"], env, tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["counts"] == {"done": 4}
    assert {t["machine"] for t in summary["tasks"]} == {"box0", "box1"}
    # box1 is reached through box0: with box0 down, box1 (still up) cannot be reached.
    spec1 = host_specs(parse_experiment((tmp_path / "exp.yaml").read_text(), "exp.yaml"))[1]
    assert spec1.address.jump is not None and spec1.address.jump.port == servers[0].port
    with SshTransport(spec1.address, deadline_s=5) as t:
        assert t.run(["true"]).ok
    servers[0].stop()
    with pytest.raises(TransportError), SshTransport(spec1.address, deadline_s=2) as t:
        t.run(["true"])


@pytest.mark.slow
@needs_mnist
def test_quickstart_over_an_ssh_config_alias(
    tmp_path: Path, sshd_fleet: Callable[[int], list[SshdServer]]
) -> None:
    """The done-when line: examples/quickstart.yaml, its hosts given as ssh config aliases."""
    servers = sshd_fleet(2)
    config = _write_config(tmp_path, servers)
    exp = yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text())
    exp.update(_exp(config, 2, tmp_path, exp["jobs"]), name="quickstart", data_dir=str(MNIST_DIR))
    for job in exp["jobs"]:
        job["subset"] = 10000  # keep CI short; the full set runs in the trainers' slow test
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(exp))
    env = dict(os.environ, ORCHESTRATE_STATE_DIR=str(tmp_path / "state"))
    env.pop("ORCHESTRATE_TRAINERS_SRC", None)
    proc = orchestrate(["run", "exp.yaml", "--json"], env, tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.splitlines()[-1])
    done = [t for t in summary["tasks"] if t["status"] == "done"]
    assert {t["machine"] for t in done} == {"box0", "box1"}
    assert len(done) == len([t for t in summary["tasks"] if t["status"] != "skipped"])
    for t in done:
        if t["task_id"].startswith("mnist"):
            assert t["test_error"] is not None and t["test_error"] < 0.2


def test_orchestrate_ssh_enters_a_run_machine_with_the_key_pinned(
    tmp_path: Path, sshd_fleet: Callable[[int], list[SshdServer]]
) -> None:
    servers = sshd_fleet(2)
    config = _write_config(tmp_path, servers)
    jobs: list[dict[str, object]] = [{"trainer": "pca", "framework": ["tensorflow", "theano"]}]
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(_exp(config, 2, tmp_path, jobs)))
    env = dict(
        os.environ,
        ORCHESTRATE_TRAINERS_SRC=str(FAKE_TRAINERS),
        ORCHESTRATE_STATE_DIR=str(tmp_path / "state"),
    )
    proc = orchestrate(["run", "exp.yaml", "--json"], env, tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_id = json.loads(proc.stdout.splitlines()[-1])["run_id"]
    for i, box in enumerate(("box0", "box1")):  # box1 through box0 (ProxyJump)
        ssh = orchestrate(["ssh", run_id, box, "--", "pwd"], env, tmp_path, timeout=60)
        assert ssh.returncode == 0, ssh.stderr
        assert ssh.stdout.strip() == str(tmp_path / f"r{i}" / run_id)  # in the run's workspace
    which = orchestrate(["ssh", run_id], env, tmp_path, timeout=60)
    assert which.returncode == 2 and "name one" in which.stderr  # two machines: say which
    # A host presenting another key is refused: pin box0 to box1's key.
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{servers[0].port} {servers[1].host_key}\n")
    bad = orchestrate(["ssh", run_id, "box0", "--", "true"], env, tmp_path, timeout=60)
    assert bad.returncode != 0 and "host key" in bad.stderr.lower()
