"""The emulator proper: moto's instances, played by booted containers.

A thread polls moto (``DescribeInstances``) twice a second:

- an instance that is pending or running and has no container gets one, booted from its
  image's layers with its real user-data and its key pair's public key;
- an instance moto shows terminated, shutting down or stopped has its container powered off;
- a container that powered itself off (the deadline timer, ``poweroff`` inside) gets its
  instance terminated in moto when its shutdown behaviour is ``terminate`` (else stopped).

``CreateImage`` is hooked in moto (the server runs in this process): the image is born
``pending``, the container's disk is snapshotted into a new layer, then it turns ``available``,
so the product's wait for the image runs for real. ``register_public_images`` fills the public
catalog moto lacks (Canonical's and the DLAMI's images the bundled specs resolve to), and
``register_baked`` makes an already-baked image for a spec (a venv, no packages) so tests that
are not about setup skip it, exactly as a user's second run after ``ami bake`` does.
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from ami.spec import load_specs, spec_hash
from tests.instances.container import Container, mount_overlay, unmount
from tests.instances.disk import base_rootfs
from tests.sshd import free_port

ACCOUNT = "123456789012"  # moto's default account
LOGIN_UID = 1000  # cloud-init's default user is the image's first user
VENV = "/opt/orchestrate/venv"


@dataclass
class Event:
    """Something the emulator did, for tests to assert on."""

    instance_id: str
    what: str  # "booted" | "powered off" | "terminated in moto" | "stopped in moto" | ...
    at: float


class InstanceEmulator:
    """Boots a container for every instance moto launches (see the module docstring)."""

    def __init__(
        self,
        endpoint_url: str,
        workdir: Path,
        *,
        region: str = "us-east-1",
        package_cache: Path | None = None,
    ) -> None:
        self.region = region
        self.package_cache = package_cache  # pip's and uv's caches; None: shared by all runs
        self.workdir = workdir
        self.endpoints_file = workdir / "endpoints.json"
        self.ec2 = boto3.client(
            "ec2",
            region_name=region,
            endpoint_url=endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self.base = base_rootfs()
        self.images: dict[str, list[Path]] = {}  # AMI id -> layers (bottom first)
        self.containers: dict[str, Container] = {}
        self.done: set[str] = set()  # instances whose machine is gone for good
        self.events: list[Event] = []
        self.errors: list[str] = []
        self._pending_images: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="instance-emulator", daemon=True)
        self._unhook: list[Any] = []

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> InstanceEmulator:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_endpoints()
        self._hook_create_image()
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        for undo in self._unhook:
            undo()
        for container in list(self.containers.values()):
            container.discard()
        self.containers.clear()

    # ------------------------------------------------------------------ catalog
    def register_public_images(self) -> dict[str, str]:
        """A public image per bundled spec, as its owner publishes it; returns spec -> AMI id."""
        from moto.ec2.models import ec2_backends
        from moto.ec2.models.amis import Ami
        from moto.ec2.utils import random_ami_id

        backend = ec2_backends[ACCOUNT][self.region]
        found: dict[str, str] = {}
        for spec in load_specs().values():
            if not (spec.owner and spec.name_filter):
                continue
            owner_id, alias = (
                ("137112412989", "amazon") if spec.owner == "amazon" else (spec.owner, None)
            )
            ami = Ami(
                backend,
                random_ami_id(),
                name=spec.name_filter.replace("*", " 20261101"),
                description=f"emulated public image for {spec.name}",
                owner_id=owner_id,
                owner_alias=alias,
                public=True,
                architecture=spec.architecture,
                virtualization_type="hvm",
                root_device_type="ebs",
                creation_date=datetime(2026, 11, 1, tzinfo=UTC),
            )
            backend.amis[ami.id] = ami
            self.images[ami.id] = [self.base]
            found[spec.name] = ami.id
        return found

    def register_baked(self, spec_name: str, *, mask_deadline: bool = False) -> str:
        """An image tagged as a finished bake of ``spec_name``: the base plus an empty venv.

        ``mask_deadline`` makes it a broken image whose deadline timer cannot start.
        """
        spec = load_specs()[spec_name]
        layers = [self.base, self._venv_layer()]
        if mask_deadline:
            mask = self.workdir / "mask-deadline-layer"
            units = mask / "etc" / "systemd" / "system"
            units.mkdir(parents=True, exist_ok=True)
            (units / "orchestrate-deadline.timer").symlink_to("/dev/null")
            layers.append(mask)
        image_id = self.ec2.register_image(
            Name=f"orchestrate-{spec.name}-{spec_hash(spec)}-emulated",
            Architecture="x86_64",
            RootDeviceName="/dev/sda1",
            VirtualizationType="hvm",
        )["ImageId"]
        self.ec2.create_tags(
            Resources=[image_id],
            Tags=[
                {"Key": "orchestrate:spec", "Value": spec.name},
                {"Key": "orchestrate:spec-hash", "Value": spec_hash(spec)},
                {"Key": "orchestrate:owner", "Value": "emulator"},
            ],
        )
        self.images[image_id] = layers
        return image_id

    def _venv_layer(self) -> Path:
        """A layer holding a venv at the specs' path, owned by the login user (built once)."""
        layer = self.base.with_name(self.base.name + "-venv")
        if (layer / ".complete").exists():
            return layer
        scratch = self.workdir / "venv-layer"
        upper, merged = scratch / "upper", scratch / "root"
        mount_overlay([self.base], upper, scratch / "work", merged)
        try:
            subprocess.run(
                ["chroot", str(merged), "python3", "-m", "venv", VENV],
                check=True,
                capture_output=True,
            )
            subprocess.run(
                ["chroot", str(merged), "chown", "-R", f"{LOGIN_UID}:{LOGIN_UID}", VENV],
                check=True,
                capture_output=True,
            )
        finally:
            unmount(merged)
        subprocess.run(["rm", "-rf", str(layer)], check=True)
        subprocess.run(["cp", "-a", str(upper), str(layer)], check=True)
        (layer / ".complete").write_text("venv\n")
        subprocess.run(["rm", "-rf", str(scratch)], check=True)
        return layer

    # ------------------------------------------------------------------ moto hooks
    def _hook_create_image(self) -> None:
        from moto.ec2.models.amis import AmiBackend

        original = AmiBackend.create_image
        emulator = self

        def create_image(backend: Any, instance_id: str, *args: Any, **kwargs: Any) -> Any:
            ami = original(backend, instance_id, *args, **kwargs)
            ami.state = "pending"  # until the disk is saved, as on EC2
            with emulator._lock:
                emulator._pending_images.append((ami.id, instance_id))
            return ami

        AmiBackend.create_image = create_image  # type: ignore[method-assign]
        self._unhook.append(lambda: setattr(AmiBackend, "create_image", original))

    def _set_image_state(self, image_id: str, state: str) -> None:
        from moto.ec2.models import ec2_backends

        ec2_backends[ACCOUNT][self.region].amis[image_id].state = state

    # ------------------------------------------------------------------ the loop
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception as exc:  # keep watching; tests read self.errors
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(0.5)

    def _instances(self) -> Iterator[dict[str, Any]]:
        for page in self.ec2.get_paginator("describe_instances").paginate():
            for reservation in page.get("Reservations", []):
                yield from reservation.get("Instances", [])

    def _tick(self) -> None:
        for inst in self._instances():
            iid = inst["InstanceId"]
            state = inst["State"]["Name"]
            container = self.containers.get(iid)
            if state in ("pending", "running"):
                if container is None and iid not in self.done:
                    self._boot(inst)
                elif container is not None and not container.running:
                    self._powered_off(iid, container)
            elif container is not None and container.running:
                container.power_off()
                self._event(iid, f"powered off ({state} in moto)")
                self.done.add(iid)
        with self._lock:
            pending, self._pending_images = self._pending_images, []
        for image_id, instance_id in pending:
            self._snapshot(image_id, instance_id)

    def _boot(self, inst: dict[str, Any]) -> None:
        iid = inst["InstanceId"]
        raw = self.ec2.describe_instance_attribute(InstanceId=iid, Attribute="userData")
        encoded = raw.get("UserData", {}).get("Value")
        user_data = base64.b64decode(encoded).decode() if encoded else ""
        keys = []
        if inst.get("KeyName"):
            pairs = self.ec2.describe_key_pairs(KeyNames=[inst["KeyName"]], IncludePublicKey=True)
            keys = [p["PublicKey"].strip() for p in pairs["KeyPairs"] if p.get("PublicKey")]
        container = Container(
            iid,
            layers=self.images.get(inst["ImageId"], [self.base]),
            workdir=self.workdir / iid,
            port=free_port(),
            user_data=user_data,
            public_keys=keys,
            package_cache=self.package_cache,
        )
        self.containers[iid] = container
        container.boot()
        self._write_endpoints()
        self._event(iid, "booted")

    def _powered_off(self, iid: str, container: Container) -> None:
        self._event(iid, f"powered off (exit {container.exit_code})")
        behaviour = self.ec2.describe_instance_attribute(
            InstanceId=iid, Attribute="instanceInitiatedShutdownBehavior"
        )["InstanceInitiatedShutdownBehavior"]["Value"]
        if behaviour == "terminate":
            self.ec2.terminate_instances(InstanceIds=[iid])
            self._event(iid, "terminated in moto")
        else:
            self.ec2.stop_instances(InstanceIds=[iid])
            self._event(iid, "stopped in moto")
        self.done.add(iid)

    def _snapshot(self, image_id: str, instance_id: str) -> None:
        container = self.containers.get(instance_id)
        if container is None:
            self._set_image_state(image_id, "failed")
            return
        layer = self.workdir / "images" / image_id
        layer.parent.mkdir(parents=True, exist_ok=True)
        container.snapshot(layer)
        self.images[image_id] = [*container.layers, layer]
        self._set_image_state(image_id, "available")
        self._event(instance_id, f"saved as {image_id}")

    # ------------------------------------------------------------------ helpers
    def _event(self, iid: str, what: str) -> None:
        self.events.append(Event(iid, what, time.monotonic()))

    def _write_endpoints(self) -> None:
        table = {iid: f"127.0.0.1:{c.port}" for iid, c in self.containers.items()}
        tmp = self.endpoints_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(table))
        tmp.replace(self.endpoints_file)

    def wait_for(self, iid: str, what: str, timeout_s: float) -> Event:
        """The first event of ``iid`` containing ``what``, waiting up to ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for event in list(self.events):
                if event.instance_id == iid and what in event.what:
                    return event
            time.sleep(0.5)
        tail = self.containers[iid].console_tail() if iid in self.containers else ""
        raise AssertionError(f"{iid}: no {what!r} within {timeout_s:.0f}s\n{tail}")

    def run(
        self, iid: str, command: str, *, timeout_s: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` as root inside instance ``iid``'s booted system (test inspection)."""
        container = self.containers[iid]
        assert container.proc is not None
        children = Path(f"/proc/{container.proc.pid}/task/{container.proc.pid}/children")
        leader = children.read_text().split()[0]  # the container's systemd (its PID 1)
        return subprocess.run(
            ["nsenter", "-t", leader, "-m", "-u", "-i", "-p", "--", "sh", "-c", command],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
