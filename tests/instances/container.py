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

# The hierarchies a container's systemd manages on a hybrid (cgroup v1 + v2) host such as this
# workplace's VMs: the named v1 one and the unified one. A host with only the unified hierarchy
# at /sys/fs/cgroup is left as it was: not seen here, so not changed blind.
CGROUP_MOUNTS = (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"))
CGROUP_PARENT = "orchestrate-emulator"


def own_cgroups(name: str, mounts: tuple[Path, ...] = CGROUP_MOUNTS) -> list[Path]:
    """A cgroup of its own for one container, in every hierarchy mounted here (made now).

    ``systemd-nspawn --keep-unit`` on a host whose init is not systemd splits the cgroup it was
    started in into ``payload`` (the container's systemd) and ``supervisor``. Containers started
    from one cgroup thus shared ``/payload``: two booted systemds managed the same tree, and one
    removed what the other had just made. Seen as a container's ``systemd-user-sessions``
    failing at boot (``Failed to attach to cgroup ...: No such file or directory``, status
    219/CGROUP), which leaves ``/run/nologin`` in place, so PAM refused every SSH login and the
    machine never became ready. A cgroup per container keeps their trees apart.
    """
    made = []
    for mount in mounts:
        if not (mount / "cgroup.procs").is_file():
            continue  # not a cgroup hierarchy (the tmpfs above the v1 ones), or absent
        own = mount / CGROUP_PARENT / name
        own.mkdir(parents=True, exist_ok=True)
        made.append(own)
    return made


def cgroup_pids(cgroups: list[Path]) -> set[int]:
    """The processes in these cgroups and every cgroup below them."""
    pids: set[int] = set()
    for own in cgroups:
        for procs in own.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(pid) for pid in procs.read_text().split())
    return pids


def kill_cgroups(cgroups: list[Path], timeout_s: float = 10.0) -> None:
    """SIGKILL whatever is left in a container's cgroups, until nothing is.

    A hard stop kills nspawn's process group, but the container's systemd runs in a PID
    namespace and session of its own: a container asked to power off while it was still
    booting (its systemd not yet handling the signal) kept running after nspawn was gone,
    seen as leftover ``systemd`` and ``systemd-journald`` processes on this host.
    """
    deadline = time.monotonic() + timeout_s
    while (pids := cgroup_pids(cgroups)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def remove_cgroups(cgroups: list[Path]) -> None:
    """Remove the cgroups `own_cgroups` made and whatever the container's systemd left below
    them, deepest first; a cgroup that still has processes stays (rmdir refuses)."""
    for own in cgroups:
        if not own.is_dir():
            continue
        for sub in sorted((d for d in own.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts)):
            with contextlib.suppress(OSError):
                sub.rmdir()
        with contextlib.suppress(OSError):
            own.rmdir()
        with contextlib.suppress(OSError):
            own.parent.rmdir()  # the emulator's parent, once no container is left in it


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
        self.cgroups: list[Path] = []

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
        self.cgroups = own_cgroups(self.instance_id)
        # The shell joins the container's own cgroups, then becomes nspawn (see own_cgroups).
        join = "".join(f'echo $$ > "{c}/cgroup.procs" && ' for c in self.cgroups)
        with open(self.console, "wb") as console:
            self.proc = subprocess.Popen(
                [
                    "sh",
                    "-c",
                    f'{join}exec "$@"',
                    "nspawn",
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
        """An orderly power-off (as EC2 does on terminate), then a hard stop if it hangs; then
        nothing of the container may be left running (`kill_cgroups`)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            self.exit_code = self.proc.returncode
        kill_cgroups(self.cgroups)

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
        """Stop it if needed, unmount, and delete its writable layer and its cgroups."""
        self.power_off(timeout_s=15)
        remove_cgroups(self.cgroups)
        deadline = time.monotonic() + 10
        while os.path.ismount(self.merged) and time.monotonic() < deadline:
            unmount(self.merged)
            if os.path.ismount(self.merged):
                time.sleep(0.5)
        shutil.rmtree(self.workdir, ignore_errors=True)
