"""The emulated instances' disk: a Debian 12 root file system built once with debootstrap.

Ubuntu's archive is not reachable from here, Debian's is; both boot the same way (systemd,
cloud-init, OpenSSH), and the setup scripts only rely on what both have (apt, python3, sudo).
The image is made to look like a cloud image: no SSH host keys, an empty machine-id, cloud-init
reading the NoCloud seed with ``ubuntu`` as its default user, and cloud-init's network
configuration off (the containers share this machine's network; nothing may touch its
interfaces). It trusts the same TLS roots as this machine, so apt, pip and uv inside reach the
same registries through the same proxy.

Built once per recipe into ``$ORCHESTRATE_EMULATOR_CACHE`` (default
``~/.cache/orchestrate-tests/emulator``), under a file lock so parallel test processes wait for
one build instead of racing.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "cloud-init",
    "python3-cffi-backend",  # without it cloud-init fails to configure
    "sudo",
    "python3",
    "python3-venv",
    "ca-certificates",
    "iproute2",
)
CLOUD_CFG = """\
# The instance emulator: a cloud image read through the NoCloud seed.
datasource_list: [NoCloud, None]
network: {config: disabled}
manage_etc_hosts: localhost
locale: false
system_info:
  default_user:
    name: ubuntu
"""
# The caches the containers share (pip's and uv's, through their system-wide config).
PIP_CONF = (
    "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\ncache-dir = /var/cache/emulator-pip\n"
)
UV_TOML = 'cache-dir = "/var/cache/emulator-uv"\nnative-tls = true\n'
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
RECIPE = hashlib.sha256(
    "|".join((SUITE, MIRROR, *PACKAGES, CLOUD_CFG, PIP_CONF, UV_TOML, "v3")).encode()
).hexdigest()[:12]


def cache_dir() -> Path:
    """Where built disks and shared package caches live (outside any clone)."""
    base = os.environ.get("ORCHESTRATE_EMULATOR_CACHE")
    return Path(base) if base else Path.home() / ".cache" / "orchestrate-tests" / "emulator"


def unavailable_reason() -> str | None:
    """Why containers cannot boot here, or None when they can."""
    if not sys.platform.startswith("linux"):
        return "the instance emulator needs Linux"
    if os.geteuid() != 0:
        return "the instance emulator needs root (systemd-nspawn, overlay mounts)"
    for tool in ("systemd-nspawn", "debootstrap"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian packages systemd-container, debootstrap)"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "the kernel has no overlay file system"
    return None


def shared_cache(name: str, root: Path | None = None) -> Path:
    """A package cache every container mounts (world-writable: containers' users differ).

    ``root`` gives a private set of caches (a benchmark's cold start); default: the shared one.
    """
    path = (root or cache_dir()) / name
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o1777)
    return path


def base_rootfs() -> Path:
    """The built root file system (the lower layer of every container); builds it if absent."""
    root = cache_dir() / f"debian12-{RECIPE}"
    if (root / ".complete").exists():
        return root
    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / ".complete").exists():
            return root
        building = root.with_name(root.name + ".building")
        shutil.rmtree(building, ignore_errors=True)
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                SUITE,
                str(building),
                MIRROR,
            ],
            check=True,
            capture_output=True,
            timeout=1800,
        )
        _make_cloud_image(building)
        (building / ".complete").write_text(RECIPE + "\n")
        shutil.rmtree(root, ignore_errors=True)
        building.rename(root)
    return root


def _make_cloud_image(root: Path) -> None:
    for key in (root / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()  # generated at first boot, as on a cloud image
    (root / "etc" / "machine-id").write_text("")
    (root / "etc" / "cloud" / "cloud.cfg.d" / "90-emulator.cfg").write_text(CLOUD_CFG)
    # ifupdown must never act on the shared (host) network.
    (root / "etc" / "systemd" / "system" / "networking.service").unlink(missing_ok=True)
    (root / "etc" / "systemd" / "system" / "networking.service").symlink_to("/dev/null")
    if HOST_CA.is_file():
        shutil.copyfile(HOST_CA, root / "etc" / "ssl" / "certs" / "ca-certificates.crt")
        local = root / "usr" / "local" / "share" / "ca-certificates"
        local.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(HOST_CA, local / "emulator-host.crt")
    (root / "etc" / "pip.conf").write_text(PIP_CONF)
    (root / "etc" / "uv").mkdir(exist_ok=True)
    (root / "etc" / "uv" / "uv.toml").write_text(UV_TOML)
    for cache in ("emulator-pip", "emulator-uv"):
        (root / "var" / "cache" / cache).mkdir(parents=True, exist_ok=True)
