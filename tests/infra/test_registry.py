"""infra.registry: a provider config survives the journal (JSON) unchanged, and the registry
builds the provider it names without the orchestrator naming a class."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.errors import ProviderError
from infra.host_spec import HostSpec
from infra.provider import Address, Provider
from infra.registry import (
    AwsConfig,
    LocalConfig,
    ProviderConfig,
    SshConfig,
    config_from_json,
    config_to_json,
    open_provider,
)

JUMP = Address(host="bastion", port=2200, user="j", host_key="ssh-ed25519 AAAAjump")
CONFIGS: list[ProviderConfig] = [
    LocalConfig(workspace_root="/tmp/ws", gpus=0, slots=2),
    SshConfig(
        (
            HostSpec(name="a", host="10.0.0.1", user="u", host_key="ssh-ed25519 AAAAa", gpus=1),
            HostSpec(
                name="b",
                host="10.0.0.2",
                port=2222,
                user="u",
                known_hosts="/k",
                jump=Address(host="inner", user="i", host_key="ssh-ed25519 AAAAi", jump=JUMP),
            ),
        ),
        deadline_s=12.5,
    ),
    AwsConfig(state_dir="/state/aws", region="eu-west-1", profile="p", ssh_cidr="1.2.3.4/32"),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_a_config_survives_the_journal(config: ProviderConfig) -> None:
    assert config_from_json(config_to_json(config)) == config


@pytest.mark.parametrize("text", ["{}", '{"provider": "gcp"}', "not json", '{"provider": "local"}'])
def test_an_unreadable_config_is_a_provider_error(text: str) -> None:
    with pytest.raises(ProviderError, match="provider config"):
        config_from_json(text)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_the_registry_builds_the_provider_it_names(config: ProviderConfig, tmp_path: Path) -> None:
    provider = open_provider(config)  # constructs only: no connection, no AWS call
    assert isinstance(provider, Provider)
    assert provider.name == config.name
