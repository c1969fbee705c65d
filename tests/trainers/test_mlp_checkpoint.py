"""Checkpoint files: a round trip, the atomic replace, and refusals of foreign or torn files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainers.checkpoint import FILE_NAME, Checkpoint, load_checkpoint, save_checkpoint
from trainers.errors import BadArgument


def _ckpt(epoch: int) -> Checkpoint:
    rng = np.random.default_rng(epoch)
    params = [rng.standard_normal((3, 2)).astype(np.float32), np.zeros(2, np.float32)]
    slots = {"m": [p + 1 for p in params], "v": [p * 2 for p in params]}
    return Checkpoint(epoch, "abc", params, slots, t=epoch * 7, history=[{"epoch": epoch}])


def test_round_trip_and_replace(tmp_path: Path) -> None:
    assert load_checkpoint(tmp_path, "abc") is None
    save_checkpoint(tmp_path, _ckpt(1))
    save_checkpoint(tmp_path, _ckpt(2))
    got = load_checkpoint(tmp_path, "abc")
    want = _ckpt(2)
    assert got is not None and got.epoch == 2 and got.t == 14 and got.history == [{"epoch": 2}]
    for a, b in zip(got.params, want.params, strict=True):
        np.testing.assert_array_equal(a, b)
    assert sorted(got.slots) == ["m", "v"]
    np.testing.assert_array_equal(got.slots["v"][0], want.slots["v"][0])
    assert [p.name for p in tmp_path.iterdir()] == [FILE_NAME]  # no temporaries left


def test_foreign_or_torn_checkpoint_is_refused(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, _ckpt(1))
    with pytest.raises(BadArgument, match="different run"):
        load_checkpoint(tmp_path, "other")
    stale = tmp_path / ".mlp-dead.npz.tmp"  # as left by a writer killed mid-save
    stale.write_bytes(b"partial")
    assert load_checkpoint(tmp_path, "abc") is not None
    assert not stale.exists()
    path = tmp_path / FILE_NAME
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(BadArgument, match="unreadable"):
        load_checkpoint(tmp_path, "abc")
