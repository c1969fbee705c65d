"""Row-chunk streaming: the same numbers from a file as from memory, and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainers.chunks import RowChunks, column_stats, scatter_matrix, write_npy_once
from trainers.errors import BadArgument, DataError


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_file_chunks_equal_the_array(tmp_path: Path, dtype: type) -> None:
    x = np.random.default_rng(0).standard_normal((103, 7)).astype(dtype)
    np.save(tmp_path / "x.npy", x)
    chunks = RowChunks.from_npy(tmp_path / "x.npy", rows=10)
    assert (chunks.n, chunks.d, chunks.n_chunks) == (103, 7, 11)
    blocks = [b.copy() for b in chunks]
    assert [len(b) for b in blocks] == [10] * 10 + [3]
    assert all(b.dtype == np.float32 for b in blocks)
    np.testing.assert_array_equal(np.concatenate(blocks), x.astype(np.float32))
    # iter(copy=True) hands out blocks that later reads do not overwrite.
    kept = list(chunks.iter(copy=True))
    np.testing.assert_array_equal(kept[0], x[:10].astype(np.float32))


def test_stats_and_scatter_match_numpy(tmp_path: Path) -> None:
    x = (np.random.default_rng(1).standard_normal((500, 6)) * 3 + 100).astype(np.float32)
    chunks = RowChunks.from_array(x, rows=64)
    mean, squares = column_stats(chunks)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(axis=0), rtol=1e-12)
    centred = x64 - x64.mean(axis=0)
    assert squares == pytest.approx(float((centred**2).sum()), rel=1e-5)
    np.testing.assert_allclose(scatter_matrix(chunks, mean), centred.T @ centred, rtol=1e-5)


def test_default_rows_fill_about_32_mib() -> None:
    chunks = RowChunks.from_array(np.zeros((100_000, 1000), np.float32)[:, :])
    assert chunks.rows == (32 << 20) // 4000
    assert RowChunks.from_array(np.zeros((5, 3), np.float32)).rows == 5
    with pytest.raises(BadArgument):
        RowChunks.from_array(np.zeros((5, 3), np.float32), rows=0)


def test_bad_files_are_data_errors(tmp_path: Path) -> None:
    np.save(tmp_path / "ints.npy", np.ones((4, 4), np.int32))
    np.save(tmp_path / "fortran.npy", np.asfortranarray(np.ones((4, 3), np.float32)))
    np.save(tmp_path / "ok.npy", np.ones((40, 40), np.float32))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "ok.npy").read_bytes()[:-50])
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    for name, match in [
        ("ints", "float32"),
        ("fortran", "Fortran"),
        ("cut", "truncated"),
        ("junk", "not a readable"),
    ]:
        with pytest.raises(DataError, match=match):
            RowChunks.from_npy(tmp_path / f"{name}.npy")


def test_write_npy_once_reuses_a_matching_file(tmp_path: Path) -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = write_npy_once(tmp_path / "a.npy", x)
    stamp = path.stat().st_mtime_ns
    assert write_npy_once(path, x) == path and path.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(np.load(path), x)
    write_npy_once(path, np.zeros((2, 4), np.float32))  # a different shape replaces it
    assert np.load(path).shape == (2, 4)
    assert [p.name for p in tmp_path.iterdir()] == ["a.npy"]
