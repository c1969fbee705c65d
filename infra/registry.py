"""Provider name -> its typed config and its constructor (TorchX's scheduler registry).

The orchestrator never names a provider class: it builds one of the configs below from the
experiment file and calls ``open_provider``. The config is plain data, so the journal keeps it
in the run's row (``config_to_json``), and ``down`` rebuilds the very provider a run used from
the journal alone, with the experiment file deleted or moved (issue 15, point 3).

Rules:
  1. A config holds everything its provider's constructor needs that is not a secret, a client
     or a test seam; nothing in it is read from the experiment file again.
  2. Provider modules are imported inside ``open_provider``, so planning a local experiment
     never imports boto3 or paramiko.
  3. ``config_from_json(config_to_json(c)) == c`` for every config (tests/infra/test_registry.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from infra.errors import ProviderError
from infra.host_spec import HostSpec
from infra.prices import PriceSource
from infra.provider import Address, Provider


@dataclass(frozen=True)
class LocalConfig:
    """This machine. ``gpus``/``slots`` None mean "detect" / "from the cores"."""

    name: ClassVar[str] = "local"
    workspace_root: str
    gpus: int | None = None
    slots: int | None = None


@dataclass(frozen=True)
class SshConfig:
    """Hosts the user owns, each with its pinned host key (``HostSpec``)."""

    name: ClassVar[str] = "ssh"
    hosts: tuple[HostSpec, ...]
    deadline_s: float = 60.0  # how long a dropped connection is retried before a host is lost


@dataclass(frozen=True)
class AwsConfig:
    """EC2 in one region. ``state_dir`` keeps each run's private login key (0600)."""

    name: ClassVar[str] = "aws"
    state_dir: str
    region: str | None = None  # None: the boto3 chain's region
    profile: str | None = None
    ssh_cidr: str | None = None
    allow_open_ssh: bool = False
    subnet_id: str | None = None  # launch here (and in its VPC) instead of the default VPC
    vpc_id: str | None = None  # launch in this VPC's subnets instead of the default VPC's
    use_private_ip: bool = False  # reach machines by private address; no public IP
    ssh_proxy: Address | None = None  # a bastion machines are reached through (ProxyJump)


ProviderConfig = LocalConfig | SshConfig | AwsConfig
CONFIGS: dict[str, type[LocalConfig] | type[SshConfig] | type[AwsConfig]] = {
    c.name: c for c in (LocalConfig, SshConfig, AwsConfig)
}


def config_to_json(config: ProviderConfig) -> str:
    """The config as the JSON the journal's run row keeps (``{"provider": name, ...}``)."""
    return json.dumps({"provider": config.name, **asdict(config)}, sort_keys=True)


def config_from_json(text: str) -> ProviderConfig:
    """The config ``config_to_json`` wrote.

    Raises:
        ProviderError: the text names no known provider or does not fit its config.
    """
    try:
        data: dict[str, Any] = json.loads(text)
        kind = CONFIGS[data.pop("provider")]
        if kind is SshConfig:
            data["hosts"] = tuple(_host(h) for h in data["hosts"])
        if kind is AwsConfig and data.get("ssh_proxy"):
            data["ssh_proxy"] = _address(data["ssh_proxy"])
        return kind(**data)
    except (ValueError, KeyError, TypeError) as exc:
        raise ProviderError(f"the journal's provider config is unreadable: {exc}") from exc


def _host(raw: dict[str, Any]) -> HostSpec:
    jump = raw.pop("jump", None)
    return HostSpec(**raw, jump=_address(jump) if jump else None)


def _address(raw: dict[str, Any]) -> Address:
    jump = raw.pop("jump", None)
    return Address(**raw, jump=_address(jump) if jump else None)


def open_provider(config: ProviderConfig, *, prices: PriceSource | None = None) -> Provider:
    """The provider ``config`` describes; ``prices`` fill what a launch would cost."""
    if isinstance(config, LocalConfig):
        from infra.local import LocalProvider

        return LocalProvider(
            workspace_root=config.workspace_root, gpus=config.gpus, slots=config.slots
        )
    if isinstance(config, SshConfig):
        from infra.ssh_hosts import SshHostsProvider

        return SshHostsProvider(config.hosts, deadline_s=config.deadline_s)
    from pathlib import Path

    from infra.aws import AwsProvider

    return AwsProvider(
        state_dir=Path(config.state_dir),
        region=config.region,
        profile=config.profile,
        ssh_cidr=config.ssh_cidr,
        allow_open_ssh=config.allow_open_ssh,
        subnet_id=config.subnet_id,
        vpc_id=config.vpc_id,
        use_private_ip=config.use_private_ip,
        ssh_proxy=config.ssh_proxy,
        prices=prices,
    )
