"""SSH keys we pin or generate: host keys from console output, injected host keys, login keys.

Two ways to know an instance's host key before trusting it:
  * injected (default): we generate an ed25519 host key, hand it to cloud-init in user-data,
    and pin its public line; the first connection is already verified.
  * console output: cloud-init prints the host keys between ``-----BEGIN SSH HOST KEY
    KEYS-----`` markers; ``ConsoleHostKeys`` reads them (they appear a few minutes after boot).

``HostKeySource`` is the seam tests fill (moto has no console host keys).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ami.userdata import HostKey
from infra.aws.errors import aws_errors
from infra.errors import ProviderError

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

BEGIN = "-----BEGIN SSH HOST KEY KEYS-----"
END = "-----END SSH HOST KEY KEYS-----"

# Strongest first; the first type present in the console block is pinned.
KEY_PREFERENCE = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ssh-rsa")


@runtime_checkable
class HostKeySource(Protocol):
    """Where a machine's public host key comes from, before the first connection."""

    def host_key(self, instance_id: str) -> str | None:
        """The public key line (``"ssh-ed25519 AAAA..."``), or None while not yet known."""
        ...


def parse_console_host_keys(output: str) -> list[str]:
    """Every public key line between the host key markers, comments stripped, in order.

    The block may appear twice (reboots); the last complete block wins.
    """
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for raw in output.splitlines():
        # Serial consoles prefix lines with timestamps or "ci-info:"; match on content only.
        line = raw.strip()
        if BEGIN in line:
            current = []
        elif END in line:
            if current is not None:
                blocks.append(current)
            current = None
        elif current is not None:
            parts = line.split()
            for i, part in enumerate(parts[:-1]):
                if part in KEY_PREFERENCE:
                    current.append(f"{part} {parts[i + 1]}")
                    break
    return blocks[-1] if blocks else []


def pick_host_key(lines: list[str]) -> str | None:
    """The strongest key among ``lines`` (see ``KEY_PREFERENCE``)."""
    for key_type in KEY_PREFERENCE:
        for line in lines:
            if line.split()[0] == key_type:
                return line
    return None


class ConsoleHostKeys:
    """Reads host keys from ``GetConsoleOutput`` (needs ``ec2:GetConsoleOutput``)."""

    def __init__(self, ec2: EC2Client) -> None:
        self._ec2 = ec2

    def host_key(self, instance_id: str) -> str | None:
        """The host key cloud-init printed to the console, or None while not yet there."""
        with aws_errors():
            # Latest=True asks for the live buffer on Nitro instances, not a snapshot an hour old.
            response = self._ec2.get_console_output(InstanceId=instance_id, Latest=True)
        return pick_host_key(parse_console_host_keys(str(response.get("Output") or "")))


def generate_ed25519(comment: str = "") -> HostKey:
    """A fresh ed25519 key pair in OpenSSH formats (used for host keys and login keys)."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    except ImportError as exc:  # pragma: no cover - cryptography comes with paramiko
        raise ProviderError(
            "generating SSH keys needs cryptography: pip install cryptography"
        ) from exc
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode("ascii")
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode("ascii")
    )
    return HostKey(private_openssh=private, public_line=f"{public} {comment}".strip())


def write_private_key(path: Path, private_openssh: str) -> None:
    """Write a private key readable by its owner only (0600 from the first byte)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, private_openssh.encode("ascii"))
    finally:
        os.close(fd)
    os.chmod(path, 0o600)  # an existing file keeps its old mode through O_CREAT


def public_line_of(private_path: Path) -> str:
    """The OpenSSH public line of a stored ed25519 private key."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_ssh_private_key(private_path.read_bytes(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode("ascii")
    )
