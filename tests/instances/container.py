"""One booted container: an overlay over an image's layers, booted with ``systemd-nspawn -b``.

The container shares this machine's network (no other addresses are ever used); its sshd is
told to listen on one loopback port. cloud-init reads the instance's real user-data and
meta-data (instance id, the key pair's public key) from the NoCloud seed written into it.
Powering off inside (``systemctl poweroff``, the deadline timer) ends the nspawn process; a
SIGTERM to nspawn asks the container's systemd for an orderly power-off.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import yaml

from tests.instances.disk import shared_cache

# Files the emulator writes into a container; they belong to the emulator, not the disk, so a
# snapshot (CreateImage) leaves them out.
SEED = Path("var/lib/cloud/seed/nocloud")
SSHD_DROP_IN = Path("etc/ssh/sshd_config.d/00-emulator.conf")
# A first boot (an image saved after `cloud-init clean`) applies the distribution's presets,
# which enable ssh.socket: socket activation then listens on port 22 of this machine's network
# and ignores sshd's Port. This drop-in moves the socket to the container's port too.
SSH_SOCKET_DROP_IN = Path("etc/systemd/system/ssh.socket.d/00-emulator.conf")


def mount_overlay(layers: list[Path], upper: Path, work: Path, merged: Path) -> None:
    """Mount ``layers`` (bottom first) with ``upper`` on top at ``merged``."""
    for d in (upper, work, merged):
        d.mkdir(parents=True, exist_ok=True)
    lower = ":".join(str(p) for p in reversed(layers))  # overlayfs lists the top layer first
    subprocess.run(
        [
            "mount",
            "-t",
            "overlay",
            "overlay",
            "-o",
            f"lowerdir={lower},upperdir={upper},workdir={work}",
            str(merged),
        ],
        check=True,
        capture_output=True,
    )


def unmount(merged: Path) -> None:
    """Unmount (lazily if still busy); a path that is not mounted is left alone."""
    if os.path.ismount(merged):
        done = subprocess.run(["umount", str(merged)], capture_output=True)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(merged)], capture_output=True)


class Container:
    """One emulated instance's machine."""

    def __init__(
        self,
        instance_id: str,
        *,
        layers: list[Path],
        workdir: Path,
        port: int,
        user_data: str,
        public_keys: list[str],
        package_cache: Path | None = None,
    ) -> None:
        self.instance_id = instance_id
        self.layers = layers
        self.workdir = workdir
        self.port = port
        self.user_data = user_data
        self.public_keys = public_keys
        self.package_cache = package_cache  # None: the caches every container shares
        self.upper = workdir / "upper"
        self.merged = workdir / "root"
        self.console = workdir / "console.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.exit_code: int | None = None

    def boot(self) -> None:
        mount_overlay(self.layers, self.upper, self.workdir / "work", self.merged)
        seed = self.merged / SEED
        seed.mkdir(parents=True, exist_ok=True)
        meta = {
            "instance-id": self.instance_id,
            "local-hostname": self.instance_id,
            "public-keys": self.public_keys,
        }
        (seed / "meta-data").write_text(yaml.safe_dump(meta))
        (seed / "user-data").write_text(self.user_data or "#cloud-config\n{}\n")
        drop_in = self.merged / SSHD_DROP_IN
        drop_in.parent.mkdir(parents=True, exist_ok=True)
        drop_in.write_text(f"Port {self.port}\nListenAddress 127.0.0.1\n")
        socket_drop_in = self.merged / SSH_SOCKET_DROP_IN
        socket_drop_in.parent.mkdir(parents=True, exist_ok=True)
        socket_drop_in.write_text(f"[Socket]\nListenStream=\nListenStream=127.0.0.1:{self.port}\n")
        binds = [
            f"--bind={shared_cache('pip', self.package_cache)}:/var/cache/emulator-pip",
            f"--bind={shared_cache('uv', self.package_cache)}:/var/cache/emulator-uv",
        ]
        with open(self.console, "wb") as console:
            self.proc = subprocess.Popen(
                [
                    "systemd-nspawn",
                    "--quiet",
                    "-D",
                    str(self.merged),
                    "-b",
                    "--register=no",
                    "--keep-unit",
                    f"--machine={self.instance_id}",
                    *binds,
                ],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        if self.proc is None:
            return False
        code = self.proc.poll()
        if code is not None:
            self.exit_code = code
            return False
        return True

    def power_off(self, timeout_s: float = 30.0) -> None:
        """An orderly power-off (as EC2 does on terminate), then a hard stop if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.exit_code = self.proc.returncode

    def snapshot(self, dest: Path) -> Path:
        """The container's own changes as a new image layer (what CreateImage saves)."""
        os.sync()
        # cp -a, not shutil: overlay whiteouts are device nodes and must be copied as such.
        subprocess.run(["cp", "-a", str(self.upper), str(dest)], check=True, capture_output=True)
        shutil.rmtree(dest / SEED, ignore_errors=True)
        (dest / SSHD_DROP_IN).unlink(missing_ok=True)
        (dest / SSH_SOCKET_DROP_IN).unlink(missing_ok=True)
        return dest

    def console_tail(self, lines: int = 30) -> str:
        try:
            text = self.console.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def discard(self) -> None:
        """Stop it if needed, unmount, and delete its writable layer."""
        self.power_off(timeout_s=15)
        deadline = time.monotonic() + 10
        while os.path.ismount(self.merged) and time.monotonic() < deadline:
            unmount(self.merged)
            if os.path.ismount(self.merged):
                time.sleep(0.5)
        shutil.rmtree(self.workdir, ignore_errors=True)
