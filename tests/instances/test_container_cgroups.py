"""Each emulated instance's systemd manages a cgroup tree of its own (`own_cgroups`): two
containers booted from one process shared nspawn's ``/payload`` and broke each other's boots."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.instances.container import CGROUP_MOUNTS, Container, own_cgroups, remove_cgroups
from tests.instances.disk import base_rootfs, unavailable_reason


def _hierarchy(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "cgroup.procs").write_text("")
    return root


def test_a_cgroup_is_made_in_each_mounted_hierarchy_only(tmp_path: Path) -> None:
    named, unified = _hierarchy(tmp_path / "systemd"), _hierarchy(tmp_path / "unified")
    plain = tmp_path / "tmpfs"  # no cgroup.procs: not a hierarchy
    plain.mkdir()
    made = own_cgroups("i-1", (named, unified, plain, tmp_path / "absent"))
    assert made == [
        named / "orchestrate-emulator" / "i-1",
        unified / "orchestrate-emulator" / "i-1",
    ]
    assert all(d.is_dir() for d in made)
    assert not (plain / "orchestrate-emulator").exists()


def test_removal_takes_what_the_container_left_below_deepest_first(tmp_path: Path) -> None:
    named = _hierarchy(tmp_path / "systemd")
    (mine,) = own_cgroups("i-1", (named,))
    (other,) = own_cgroups("i-2", (named,))
    (mine / "payload" / "system.slice" / "ssh.service").mkdir(parents=True)
    (mine / "supervisor").mkdir()
    remove_cgroups([mine])
    assert not mine.exists()
    assert other.is_dir()  # another container's stays, and so does the parent holding it
    remove_cgroups([other])
    assert not (named / "orchestrate-emulator").exists()


@pytest.mark.instance
@pytest.mark.slow
def test_two_booted_containers_each_run_in_their_own_cgroup(tmp_path: Path) -> None:
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"instance emulator: {reason}")
    if not (CGROUP_MOUNTS[0] / "cgroup.procs").is_file():
        pytest.skip("no named systemd cgroup hierarchy here (not a hybrid cgroup host)")
    base = base_rootfs()
    containers = [
        Container(
            f"i-cg{n}",
            layers=[base],
            workdir=tmp_path / f"c{n}",
            port=0,
            user_data="",
            public_keys=[],
        )
        for n in (1, 2)
    ]
    try:
        for c in containers:
            c.boot()
        for c in containers:
            line = _named_cgroup_of_init(c)
            assert line.startswith(f"/orchestrate-emulator/{c.instance_id}/payload"), line
    finally:
        for c in containers:
            c.discard()
    for c in containers:
        assert all(not d.exists() for d in c.cgroups)


def _named_cgroup_of_init(container: Container, timeout_s: float = 30) -> str:
    """The cgroup of the container's systemd in the named hierarchy, once it has started."""
    assert container.proc is not None
    children = Path(f"/proc/{container.proc.pid}/task/{container.proc.pid}/children")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pids = children.read_text().split() if children.exists() else []
        # nspawn forks, moves the child into the payload cgroup, then the child execs systemd.
        if pids and Path(f"/proc/{pids[0]}/comm").read_text().strip() == "systemd":
            for line in Path(f"/proc/{pids[0]}/cgroup").read_text().splitlines():
                if line.split(":")[1] == "name=systemd":
                    return line.split(":", 2)[2]
        time.sleep(0.2)
    raise AssertionError(f"{container.instance_id}: its systemd did not start")
