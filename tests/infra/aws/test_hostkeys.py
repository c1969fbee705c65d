from __future__ import annotations

import stat
from pathlib import Path

import paramiko

from infra.aws.hostkeys import (
    generate_ed25519,
    parse_console_host_keys,
    pick_host_key,
    public_line_of,
    write_private_key,
)

CONSOLE = """\
[   12.3] cloud-init[800]: Generating public/private ed25519 key pair.
<14>Jan  1 12:00:00 cloud-init: #############################################################
-----BEGIN SSH HOST KEY FINGERPRINTS-----
256 SHA256:abc root@ip-10-0-0-1 (ED25519)
-----END SSH HOST KEY FINGERPRINTS-----
<14>Jan  1 12:00:00 ec2: -----BEGIN SSH HOST KEY KEYS-----
<14>Jan  1 12:00:00 ec2: ecdsa-sha2-nistp256 AAAAE2VjZHNh root@ip-10-0-0-1
<14>Jan  1 12:00:00 ec2: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFirst root@ip-10-0-0-1
<14>Jan  1 12:00:00 ec2: -----END SSH HOST KEY KEYS-----
"""


def test_console_block_parses_and_ed25519_is_preferred() -> None:
    lines = parse_console_host_keys(CONSOLE)
    assert lines == [
        "ecdsa-sha2-nistp256 AAAAE2VjZHNh",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFirst",
    ]
    assert pick_host_key(lines) == "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFirst"


def test_last_block_wins_and_no_block_means_none() -> None:
    rebooted = CONSOLE + CONSOLE.replace("First", "Second")
    assert pick_host_key(parse_console_host_keys(rebooted)).endswith("Second")  # type: ignore[union-attr]
    assert parse_console_host_keys("booting...\n-----BEGIN SSH HOST KEY KEYS-----\n") == []


def test_generated_key_is_loadable_by_paramiko_and_written_0600(tmp_path: Path) -> None:
    key = generate_ed25519()
    path = tmp_path / "keys" / "k.pem"
    write_private_key(path, key.private_openssh)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = paramiko.Ed25519Key.from_private_key_file(str(path))
    assert f"{loaded.get_name()} {loaded.get_base64()}" == key.public_line
    assert public_line_of(path) == key.public_line
