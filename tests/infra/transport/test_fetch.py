"""``infra.transport.fetch`` through ``LocalTransport.get_tree``: what a trainer leaves in its
output directory is untrusted too (the ssh side is ``tests/integration/test_hostile_remote``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from infra.transport.fetch import FetchLimits, RejectedFile, check_name
from infra.transport.local import LocalTransport


@pytest.fixture
def out(tmp_path: Path) -> Path:
    d = tmp_path / "remote_out"
    d.mkdir()
    (d / "metrics.json").write_text("{}")
    (tmp_path / "outside").mkdir()
    return d


def test_regular_files_arrive_and_a_second_fetch_copies_nothing(out: Path, tmp_path: Path) -> None:
    (out / "sub").mkdir()
    (out / "sub" / "t.jsonl").write_text("1\n")
    t = LocalTransport()
    first = t.get_tree(str(out), tmp_path / "task")
    assert (first.files_total, first.files_sent) == (2, 2)
    assert (tmp_path / "task" / "sub" / "t.jsonl").read_text() == "1\n"
    assert t.get_tree(str(out), tmp_path / "task").files_sent == 0


def test_links_fifos_and_sockets_are_refused_the_rest_arrives(out: Path, tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "secret"
    secret.write_text("s3cret")
    (out / "leak").symlink_to(secret)
    (out / "dirlink").symlink_to(tmp_path / "outside")
    os.mkfifo(out / "pipe.json")
    with pytest.raises(RejectedFile) as caught:
        LocalTransport().get_tree(str(out), tmp_path / "task")
    msg = str(caught.value)
    assert "'leak' (a symlink)" in msg and "'dirlink' (a symlink)" in msg
    assert "'pipe.json' (a FIFO)" in msg
    assert sorted(p.name for p in (tmp_path / "task").iterdir()) == ["metrics.json"]


def test_a_planted_symlink_in_the_task_dir_is_replaced_not_followed(
    out: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "outside" / "victim"
    victim.write_text("precious")
    task = tmp_path / "task"
    task.mkdir()
    (task / "metrics.json").symlink_to(victim)
    LocalTransport().get_tree(str(out), task)
    assert victim.read_text() == "precious"
    assert not (task / "metrics.json").is_symlink()
    assert (task / "metrics.json").read_text() == "{}"


def test_the_task_dir_itself_may_not_be_a_symlink(out: Path, tmp_path: Path) -> None:
    (tmp_path / "task").symlink_to(tmp_path / "outside")
    with pytest.raises(OSError):
        LocalTransport().get_tree(str(out), tmp_path / "task")
    assert list((tmp_path / "outside").iterdir()) == []


def test_size_caps_come_from_the_environment(
    out: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (out / "big.bin").write_bytes(bytes(2 << 20))
    monkeypatch.setenv("ORCHESTRATE_FETCH_MAX_FILE_MB", "1")
    with pytest.raises(RejectedFile, match=r"'big.bin'.*per-file cap of 1 MB"):
        LocalTransport().get_tree(str(out), tmp_path / "task")


def test_limits_ignore_bad_values() -> None:
    env = {"ORCHESTRATE_FETCH_MAX_FILES": "x", "ORCHESTRATE_FETCH_MAX_TOTAL_MB": "-3"}
    assert FetchLimits.from_env(env) == FetchLimits()
    assert FetchLimits.from_env({"ORCHESTRATE_FETCH_MAX_FILES": "7"}).max_files == 7


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("/etc/passwd", "absolute"),
        ("a/../../b", "'..'"),
        ("a\nb", "control"),
        ("\x1b[31m", "control"),
        ("a\\b", "control"),
        ("x" * 300, "component"),
        ("a/" * 600, "over 1024"),
        ("\udcff", "UTF-8"),
        (".", "directory itself"),
    ],
)
def test_check_name_refuses(name: str, why: str) -> None:
    reason = check_name(name)
    assert isinstance(reason, str) and why in reason


def test_check_name_normalises_harmless_names() -> None:
    assert check_name("./a//b/./c") == ("a", "b", "c")
    assert check_name("outputs/ckpt-1.npz") == ("outputs", "ckpt-1.npz")
