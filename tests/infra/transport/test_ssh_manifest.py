"""The content-hash manifest and sync planning (pure; no sshd needed)."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import pytest

from infra.transport import manifest as mf
from infra.transport.ssh_tar import choose_level, gzip_member


def test_scan_hashes_files_with_mode_and_skips_excluded(tmp_path: Path) -> None:
    (tmp_path / "a" / "__pycache__").mkdir(parents=True)
    (tmp_path / "a" / "x.py").write_text("x = 1\n")
    (tmp_path / "a" / "x.py").chmod(0o640)
    (tmp_path / "a" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (tmp_path / "run.sh").write_text("#!/bin/sh\n")
    (tmp_path / "run.sh").chmod(0o750)
    (tmp_path / mf.MANIFEST_NAME).write_text("{}")
    (tmp_path / "link").symlink_to(tmp_path / "run.sh")
    (tmp_path / "dangling").symlink_to(tmp_path / "missing")
    found = mf.scan(tmp_path, exclude=["__pycache__"], cache=mf.HashCache())
    assert sorted(found.files) == ["a/x.py", "link", "run.sh"]
    entry = found.files["a/x.py"]
    assert entry.sha256 == hashlib.sha256(b"x = 1\n").hexdigest()
    assert (entry.size, entry.mode) == (6, 0o640)
    assert found.files["run.sh"].mode == 0o750
    assert found.files["run.sh"].mtime_ns % 1_000_000_000 == 0  # whole seconds, as tar keeps


def test_scan_of_missing_root_is_empty(tmp_path: Path) -> None:
    assert mf.scan(tmp_path / "nope").files == {}


def test_hash_cache_rereads_only_changed_files(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("one")
    cache = mf.HashCache()
    first = mf.scan(tmp_path, cache=cache).files["f"].sha256
    f.write_text("two")  # new size: the cache must notice
    assert mf.scan(tmp_path, cache=cache).files["f"].sha256 != first


@pytest.mark.parametrize(
    ("path", "patterns", "excluded"),
    [
        ("a/b/c.pyc", ["*.pyc"], True),
        (".git/config", [".git"], True),
        ("runs/1/out.txt", ["runs/"], True),
        ("src/runs.py", ["runs/"], False),
        ("data/raw/x.csv", ["data/raw"], True),
        ("data/rawish/x.csv", ["data/raw"], False),
        ("keep.py", [], False),
    ],
)
def test_is_excluded(path: str, patterns: list[str], excluded: bool) -> None:
    assert mf.is_excluded(path, patterns) is excluded


def test_manifest_json_round_trip_and_garbage() -> None:
    m = mf.Manifest({"a b/ü.txt": mf.Entry("0" * 64, 3, 0o644, 1_700_000_000_000_000_000)})
    assert mf.Manifest.from_json(m.to_json()) == m
    for bad in ["", "{", '{"version": 9, "files": {}}', '{"version": 1, "files": {"a": [1]}}']:
        assert mf.Manifest.from_json(bad) is None


def test_parsers_read_find_and_sha256sum_output() -> None:
    listing = mf.parse_find_listing(b"a/x\x0012\x001700000000.5000000000\x00755\x00")
    assert listing == {"a/x": mf.RemoteStat(12, 1_700_000_000_500_000_000, 0o755)}
    digest = "ab" * 32
    assert mf.parse_sha256sum(f"{digest}  we ird\n\0".encode()) == {"we ird\n": digest}


def test_plan_push_trusts_matching_stat_and_resends_the_rest() -> None:
    e = mf.Entry("h1", 5, 0o644, 1_000_000_000)
    mine = mf.Manifest({"same": e, "changed": e, "new": e, "chmod": e})
    listing = {
        "same": mf.RemoteStat(5, 7, 0o644),
        "changed": mf.RemoteStat(5, 7, 0o644),
        "chmod": mf.RemoteStat(5, 7, 0o600),
        "gone": mf.RemoteStat(1, 7, 0o644),
    }
    old = mf.Manifest({"same": mf.Entry("h1", 5, 0o644, 7), "changed": mf.Entry("h1", 5, 0o644, 6)})
    known, unknown = mf.remote_hashes(old, listing)
    assert known == {"same": "h1"} and sorted(unknown) == ["changed", "chmod", "gone"]
    plan = mf.plan_push(mine, old, listing, {**known, "changed": "h2", "chmod": "h1"})
    assert plan.send == ("changed", "chmod", "new") and plan.delete == ("gone",)
    assert plan.manifest.files["same"].mtime_ns == 7  # the remote stat, for the next check
    assert plan.manifest.files["new"].mtime_ns == 1_000_000_000


def test_gzip_members_concatenate_and_level_follows_the_link() -> None:
    text = b"the same words again and again " * 40_000
    noise = os.urandom(1 << 20)
    stream = gzip_member(text, 1) + gzip_member(noise, 0)
    assert gzip.decompress(stream) == text + noise  # gzip -d reads members as one stream
    assert choose_level(noise, None) == 0  # incompressible: always stored
    assert choose_level(text, None) == 1  # unknown link: compress
    assert choose_level(text, 10e6) == 1  # 10 MB/s link: deflate pays
    assert choose_level(text, 1e12) == 0  # a link faster than deflate: store
