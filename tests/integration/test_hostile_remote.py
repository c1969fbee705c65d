"""A compromised host answers our fetch with a crafted tar: nothing lands outside the task
directory, nothing is written through a link, and the fetch fails naming what it refused.

The host is a real loopback ``sshd`` whose forced command (``tests/hostile_remote.py``) serves
the stream each test prepares; one test per attack of issue #14.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shlex
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from infra.transport.fetch import RejectedFile
from infra.transport.ssh import SshTransport
from tests.cli import last_json, orchestrate
from tests.fakes import FAKE_TRAINERS
from tests.sshd import SshdServer, keygen, make_server, sshd_available

pytestmark = pytest.mark.sshd

HOSTILE = Path(__file__).resolve().parents[1] / "hostile_remote.py"
Member = Callable[[tarfile.TarFile], None]


@dataclass
class Hostile:
    server: SshdServer
    payload: Path
    transport: SshTransport

    def serve(self, members: list[Member], claim: list[str] | None = None) -> None:
        """Next fetch gets a gzip tar of ``members`` and a listing claiming ``claim``."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.GNU_FORMAT) as tar:
            for add in members:
                add(tar)
        self.serve_raw(buf.getvalue(), claim or [])

    def serve_raw(self, stream: bytes, claim: list[str]) -> None:
        listing = b"".join(
            hashlib.sha256(n.encode()).hexdigest().encode() + b"  " + n.encode() + b"\0"
            for n in claim
        )
        (self.payload / "hashes").write_bytes(listing)
        (self.payload / "tar").write_bytes(stream)


@pytest.fixture(scope="module")
def hostile_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    if not sshd_available():
        pytest.skip("OpenSSH sshd is not installed (apt-get install openssh-server)")
    os.makedirs("/run/sshd", exist_ok=True)
    root = tmp_path_factory.mktemp("hostile")
    key = root / "id_ed25519"
    pub = keygen(key, comment="client")
    payload = root / "payload"
    payload.mkdir()
    forced = f"{shlex.quote(sys.executable)} -S {shlex.quote(str(HOSTILE))} {payload}"
    server = make_server(root, key_path=key, pub=f'command="{forced}" {pub}')
    server.start()
    transport = SshTransport(server.address, connect_timeout_s=5, deadline_s=10)
    try:
        yield Hostile(server, payload, transport)
    finally:
        transport.close()
        server.stop()


@pytest.fixture
def hostile(hostile_host: Hostile, tmp_path: Path) -> Hostile:
    (tmp_path / "outside").mkdir()
    return hostile_host


def regular(name: str, data: bytes = b"x") -> Member:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    return add


def special(name: str, kind: bytes, linkname: str = "") -> Member:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, linkname
        tar.addfile(info)

    return add


def fetch(h: Hostile, task_dir: Path) -> RejectedFile:
    with pytest.raises(RejectedFile) as caught:
        h.transport.get_tree("/nowhere/out/task", task_dir)
    return caught.value


def files_under(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink()
    }


def test_a_well_behaved_stream_still_arrives(hostile: Hostile, tmp_path: Path) -> None:
    hostile.serve(
        [regular("metrics.json", b"{}"), regular("sub/t.jsonl", b"1\n")],
        ["metrics.json", "sub/t.jsonl"],
    )
    stats = hostile.transport.get_tree("/nowhere/out/task", tmp_path / "task")
    assert stats.files_sent == 2
    assert files_under(tmp_path / "task") == {"metrics.json": b"{}", "sub/t.jsonl": b"1\n"}


def test_hard_link_to_a_local_path_then_a_file_of_that_name(
    hostile: Hostile, tmp_path: Path
) -> None:
    victim = tmp_path / "outside" / "victim"
    victim.write_bytes(b"precious")
    hostile.serve(
        [special("evil", tarfile.LNKTYPE, str(victim)), regular("evil", b"overwritten")],
        ["evil"],
    )
    err = fetch(hostile, tmp_path / "task")
    assert "'evil' (a hard link)" in str(err)
    assert victim.read_bytes() == b"precious"
    assert (tmp_path / "task" / "evil").read_bytes() == b"overwritten"  # a plain file, ours
    assert os.stat(tmp_path / "task" / "evil").st_ino != os.stat(victim).st_ino


def test_symlink_out_then_a_file_through_it(hostile: Hostile, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    hostile.serve(
        [
            special("link", tarfile.SYMTYPE, str(outside / "victim")),
            regular("link", b"through the link"),
            special("dir", tarfile.SYMTYPE, str(outside)),
            regular("dir/planted", b"x"),
        ],
        ["link", "dir/planted"],
    )
    err = fetch(hostile, tmp_path / "task")
    assert "'link' (a symlink)" in str(err) and "'dir' (a symlink)" in str(err)
    assert list(outside.iterdir()) == []
    assert not any(p.is_symlink() for p in (tmp_path / "task").rglob("*"))


def test_a_planted_local_symlink_is_replaced_not_written_through(
    hostile: Hostile, tmp_path: Path
) -> None:
    victim = tmp_path / "outside" / "victim"
    victim.write_bytes(b"precious")
    task = tmp_path / "task"
    task.mkdir()
    (task / "task.log").symlink_to(victim)  # left by an earlier attack or run
    (task / "sub").symlink_to(tmp_path / "outside")
    hostile.serve([regular("task.log", b"log"), regular("sub/x", b"x")], ["task.log", "sub/x"])
    err = fetch(hostile, task)
    assert "'sub/x'" in str(err)
    assert victim.read_bytes() == b"precious"
    assert not (tmp_path / "outside" / "x").exists()
    assert not (task / "task.log").is_symlink()
    assert (task / "task.log").read_bytes() == b"log"


@pytest.mark.parametrize(
    ("kind", "word"),
    [
        (tarfile.CHRTYPE, "character device"),
        (tarfile.BLKTYPE, "block device"),
        (tarfile.FIFOTYPE, "FIFO"),
    ],
)
def test_devices_and_fifos_are_refused(
    hostile: Hostile, tmp_path: Path, kind: bytes, word: str
) -> None:
    hostile.serve([special("metrics.json", kind), regular("ok.txt")], ["metrics.json", "ok.txt"])
    err = fetch(hostile, tmp_path / "task")
    assert f"'metrics.json' (a {word})" in str(err)
    assert [p.name for p in (tmp_path / "task").iterdir()] == ["ok.txt"]


@pytest.mark.parametrize(
    "name", ["../escape", "../../outside/escape", "/tmp/orchestrate-absolute", "a/../../b"]
)
def test_names_leaving_the_task_directory(hostile: Hostile, tmp_path: Path, name: str) -> None:
    task = tmp_path / "deep" / "task"
    hostile.serve([regular(name, b"escaped")], [name])
    err = fetch(hostile, task)
    assert ascii(name) in str(err)
    assert files_under(tmp_path) == {}
    assert not Path("/tmp/orchestrate-absolute").exists()


@pytest.mark.parametrize("name", ["new\nline", "\x1b]0;pwned\x07title", "bell\x07", "c1\x9bm"])
def test_names_with_control_characters(hostile: Hostile, tmp_path: Path, name: str) -> None:
    hostile.serve([regular(name)], [name])
    err = fetch(hostile, tmp_path / "task")
    assert "control or escape" in str(err)
    assert "\x1b" not in str(err) and "\n" not in str(err).splitlines()[0]
    assert files_under(tmp_path / "task") == {}


def test_a_small_stream_claiming_a_huge_file(
    hostile: Hostile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATE_FETCH_MAX_FILE_MB", "64")
    big = 512 << 20
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=9) as tar:
        info = tarfile.TarInfo("checkpoint.bin")
        info.size = big
        tar.addfile(info, _Zeros(big))
    assert len(buf.getvalue()) < 1 << 20  # a 0.5 MB stream
    hostile.serve_raw(buf.getvalue(), ["checkpoint.bin"])
    t0 = time.monotonic()
    err = fetch(hostile, tmp_path / "task")
    assert "'checkpoint.bin'" in str(err) and "64 MB" in str(err)
    assert time.monotonic() - t0 < 10
    assert sum(p.stat().st_size for p in (tmp_path / "task").rglob("*")) == 0


def test_the_fetch_total_and_file_count_are_capped(
    hostile: Hostile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATE_FETCH_MAX_FILES", "5")
    names = [f"f{i}" for i in range(20)]
    hostile.serve([regular(n) for n in names], names)
    err = fetch(hostile, tmp_path / "task")
    assert "more than 5 files" in str(err)
    assert len(list((tmp_path / "task").iterdir())) == 5


def test_a_huge_pax_header_is_refused_before_it_is_read(hostile: Hostile, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("x")
        info.pax_headers = {"comment": "A" * (1 << 20)}
        tar.addfile(info, io.BytesIO(b""))
    hostile.serve_raw(buf.getvalue(), ["x"])
    err = fetch(hostile, tmp_path / "task")
    assert "tar header" in str(err)


def test_files_not_asked_for_are_refused(hostile: Hostile, tmp_path: Path) -> None:
    hostile.serve([regular("asked"), regular("bonus.sh", b"rm -rf ~")], ["asked"])
    err = fetch(hostile, tmp_path / "task")
    assert "'bonus.sh' (a file that was not asked for)" in str(err)
    assert files_under(tmp_path / "task") == {"asked": b"x"}


def test_a_garbage_stream_is_a_clean_error(hostile: Hostile, tmp_path: Path) -> None:
    hostile.serve_raw(b"\x1f\x8b this is not gzip" * 100, ["a"])
    err = fetch(hostile, tmp_path / "task")
    assert "malformed" in str(err)


def test_a_directory_where_a_file_goes(hostile: Hostile, tmp_path: Path) -> None:
    (tmp_path / "task" / "metrics.json").mkdir(parents=True)
    hostile.serve([regular("metrics.json", b"{}")], ["metrics.json"])
    err = fetch(hostile, tmp_path / "task")
    assert "a directory of that name is here" in str(err)


class _Zeros(io.RawIOBase):
    """``n`` zero bytes, produced on demand (a 512 MB member without 512 MB of memory)."""

    def __init__(self, n: int) -> None:
        self._left = n

    def read(self, size: int = -1) -> bytes:
        size = self._left if size < 0 else min(size, self._left)
        self._left -= size
        return bytes(size)


def test_a_run_against_the_hostile_host_fails_the_task_naming_the_member(
    hostile: Hostile, tmp_path: Path
) -> None:
    """End to end: the refused member fails its task (exit 1), nothing outside is touched."""
    victim = tmp_path / "outside" / "victim"
    victim.write_bytes(b"precious")
    hostile.serve(
        [special("metrics.json", tarfile.LNKTYPE, str(victim)), regular("metrics.json", b"{}")],
        ["metrics.json"],
    )
    s = hostile.server
    exp = {
        "name": "hostile",
        "provider": "ssh",
        "hosts": [
            {
                "host": s.host,
                "port": s.port,
                "user": s.user,
                "key": s.key_path,
                "host_key": s.host_key,
                "python": sys.executable,
                "workspace_root": str(tmp_path / "remote"),
            }
        ],
        "jobs": [{"trainer": "mnist", "epochs": 1}],
    }
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(exp))
    env = dict(
        os.environ,
        ORCHESTRATE_TRAINERS_SRC=str(FAKE_TRAINERS),
        ORCHESTRATE_STATE_DIR=str(tmp_path / "state"),
        FAKE_EPOCH_S="0",
    )
    proc = orchestrate(["run", "exp.yaml", "--json"], env, tmp_path, timeout=120)
    assert proc.returncode == 1, proc.stderr
    summary = last_json(proc)
    (task,) = summary["tasks"]
    assert task["status"] == "failed"
    assert "'metrics.json' (a hard link)" in task["detail"]
    assert victim.read_bytes() == b"precious"
    assert "Traceback" not in json.dumps(summary) + proc.stderr
