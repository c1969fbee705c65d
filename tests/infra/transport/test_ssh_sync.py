"""Tree sync over a real sshd: incremental put_tree, get_tree, and a sync cut off half way."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.errors import RemoteDiskFull, TransportError
from infra.transport import manifest as mf
from infra.transport.ssh import SshTransport
from tests.sshd import SshdServer

pytestmark = pytest.mark.sshd


def make_tree(root: Path, n: int = 20) -> Path:
    for i in range(n):
        sub = root / f"pkg{i % 3}" / ("deep" if i % 2 else "")
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"mod{i}.py").write_text(f"value = {i}\n" * (i + 1))
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    return root


def contents(root: Path) -> dict[str, tuple[str, int]]:
    """Path -> (sha256, permission bits), leaving our manifest out."""
    return {p: (e.sha256, e.mode) for p, e in mf.scan(root, cache=mf.HashCache()).files.items()}


def test_put_tree_sends_only_what_changed(ssh_transport: SshTransport, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src")
    dst = tmp_path / "dst"
    first = ssh_transport.put_tree(src, str(dst))
    assert (first.files_total, first.files_sent) == (21, 21)
    assert first.bytes_sent > 0
    assert contents(dst) == contents(src)
    assert (dst / mf.MANIFEST_NAME).exists()
    assert os.stat(dst / "run.sh").st_mode & 0o777 == 0o755

    again = ssh_transport.put_tree(src, str(dst))
    assert (again.files_sent, again.files_deleted, again.bytes_sent) == (0, 0, 0)

    (src / "pkg0" / "mod0.py").write_text("value = 'changed'\n")
    one = ssh_transport.put_tree(src, str(dst))
    assert (one.files_sent, one.files_deleted) == (1, 0)
    assert (dst / "pkg0" / "mod0.py").read_text() == "value = 'changed'\n"

    (src / "pkg1" / "deep" / "mod1.py").unlink()
    gone = ssh_transport.put_tree(src, str(dst))
    assert (gone.files_sent, gone.files_deleted) == (0, 1)
    assert not (dst / "pkg1" / "deep" / "mod1.py").exists()

    (src / "pkg2" / "mod2.py").chmod(0o700)
    mode = ssh_transport.put_tree(src, str(dst))
    assert mode.files_sent == 1
    assert os.stat(dst / "pkg2" / "mod2.py").st_mode & 0o777 == 0o700
    assert contents(dst) == contents(src)


def test_put_tree_rechecks_when_the_remote_manifest_is_missing_or_stale(
    ssh_transport: SshTransport, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "src")
    dst = tmp_path / "dst"
    ssh_transport.put_tree(src, str(dst))

    (dst / mf.MANIFEST_NAME).unlink()  # lost manifest: hashes are computed remotely instead
    assert ssh_transport.put_tree(src, str(dst)).files_sent == 0

    tampered = dst / "pkg0" / "mod0.py"  # changed behind our back
    tampered.write_text(tampered.read_text().replace("0", "9"))  # same size, new content
    stats = ssh_transport.put_tree(src, str(dst))
    assert stats.files_sent == 1
    assert contents(dst) == contents(src)


def test_put_tree_exclude_neither_sends_nor_deletes(
    ssh_transport: SshTransport, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "src")
    (src / "__pycache__").mkdir()
    (src / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (src / "notes.log").write_text("local only")
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "outputs").mkdir()
    (dst / "outputs" / "result.log").write_text("remote only")
    stats = ssh_transport.put_tree(src, str(dst), exclude=["__pycache__", "*.log"])
    assert stats.files_total == 21 and stats.files_deleted == 0
    assert not (dst / "__pycache__").exists() and not (dst / "notes.log").exists()
    assert (dst / "outputs" / "result.log").read_text() == "remote only"


def test_put_tree_replaces_a_file_by_a_directory(
    ssh_transport: SshTransport, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_text("file")
    dst = tmp_path / "dst"
    ssh_transport.put_tree(src, str(dst))
    (src / "a").unlink()
    (src / "a").mkdir()
    (src / "a" / "b").write_text("nested")
    stats = ssh_transport.put_tree(src, str(dst))
    assert (stats.files_sent, stats.files_deleted) == (1, 1)
    assert (dst / "a" / "b").read_text() == "nested"


def test_get_tree_fetches_only_changed_files(ssh_transport: SshTransport, tmp_path: Path) -> None:
    remote = make_tree(tmp_path / "remote")
    local = tmp_path / "local"
    first = ssh_transport.get_tree(str(remote), local)
    assert (first.files_total, first.files_sent) == (21, 21)
    assert contents(local) == contents(remote)
    assert os.stat(local / "run.sh").st_mode & 0o777 == 0o755

    assert ssh_transport.get_tree(str(remote), local).files_sent == 0
    (remote / "pkg0" / "mod0.py").write_text("new\n")
    (local / "mine.txt").write_text("kept")
    stats = ssh_transport.get_tree(str(remote), local)
    assert stats.files_sent == 1
    assert (local / "pkg0" / "mod0.py").read_text() == "new\n"
    assert (local / "mine.txt").read_text() == "kept"


@pytest.mark.slow
def test_sync_cut_off_by_sshd_dying_resumes_on_the_next_call(
    sshd: SshdServer, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(120):  # ~60 MB, incompressible, so the stream takes a while
        (src / f"blob{i:03d}.bin").write_bytes(os.urandom(512 * 1024))
    dst = tmp_path / "dst"
    transport = SshTransport(sshd.address, connect_timeout_s=2, deadline_s=10)
    failure: list[BaseException] = []

    def sync() -> None:
        try:
            transport.put_tree(src, str(dst))
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=sync)
    worker.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(list(dst.glob("*.bin"))) < 10:
        time.sleep(0.005)
    sshd.stop()
    worker.join(30)
    assert failure and isinstance(failure[0], TransportError), failure
    arrived = len(list(dst.glob("*.bin")))
    assert 0 < arrived < 120

    sshd.start()
    with transport:
        stats = transport.put_tree(src, str(dst))
    assert stats.files_total == 120
    assert 0 < stats.files_sent < 120  # what arrived intact is not sent again
    assert contents(dst) == contents(src)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, where this machine lets us mount one (root in a VM); else skip."""
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0 or shutil.which("umount") is None:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_remote_disk_full_is_reported_clearly(
    ssh_transport: SshTransport, tmp_path: Path, small_fs: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        (src / f"big{i}.bin").write_bytes(os.urandom(512 * 1024))
    with pytest.raises(RemoteDiskFull, match="no space left"):
        ssh_transport.put_tree(src, str(small_fs / "dst"))


@pytest.mark.parametrize("compress", [True, False])
def test_put_tree_gzip_and_plain_streams_both_arrive_intact(
    sshd: SshdServer, tmp_path: Path, compress: bool
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "text.txt").write_bytes(b"compressible line of text\n" * 200_000)  # 5.2 MB
    (src / "noise.bin").write_bytes(os.urandom(300_000))
    dst = tmp_path / "dst"
    with SshTransport(sshd.address, compress=compress) as transport:
        stats = transport.put_tree(src, str(dst))
    assert contents(dst) == contents(src)
    raw = 5_200_000 + 300_000
    # gzip: the first block is deflated before the link is measured; later ones may be stored.
    assert stats.bytes_sent < raw if compress else stats.bytes_sent > raw


def test_put_tree_on_loopback_sends_plain_tar(ssh_transport: SshTransport, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "text.txt").write_bytes(b"compressible\n" * 100_000)
    stats = ssh_transport.put_tree(src, str(tmp_path / "dst"))
    assert stats.bytes_sent > 1_300_000  # loopback round trips are LAN-short: no deflate
