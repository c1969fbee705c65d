"""A data matrix read in row blocks, so PCA's memory is O(chunk·D), not O(N·D).

``RowChunks`` wraps either an array already in memory or a ``.npy`` file on disk. For a file it
reads the NumPy header once (as ``np.load(mmap_mode="r")`` would) and then ``pread``s each row
block into one reused buffer. That is a memory map's access pattern without its accounting: the
pages of a real ``np.memmap`` count towards the process's resident size as they are touched, so
a pass over a 2 GB file would look like a 2 GB process; here resident memory stays one chunk and
the kernel's page cache (reclaimable, not ours) does the caching.

Also here: the streaming column mean and total variance, and writing an array to ``.npy`` once
(the MNIST training set is staged that way, then streamed like any ``--input`` file).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from trainers.errors import BadArgument, DataError

# 32 MiB chunks: large enough that a BLAS call amortises its overhead, small next to any RAM.
DEFAULT_CHUNK_BYTES = 32 << 20


@dataclass(frozen=True)
class RowChunks:
    """Rows of an (N, D) float matrix, ``rows`` at a time, as float32.

    Build with ``from_array`` or ``from_npy``. Iterating yields views of one reused buffer for a
    file (copy a chunk you keep; pass ``copy=True`` to ``iter``), or views of the array.
    """

    n: int
    d: int
    rows: int
    path: Path | None = None
    _array: np.ndarray | None = field(default=None, repr=False)
    _offset: int = 0
    _dtype: np.dtype = field(default=np.dtype(np.float32), repr=False)

    @classmethod
    def from_array(cls, array: np.ndarray, rows: int | None = None) -> RowChunks:
        if array.ndim != 2:
            raise DataError(f"PCA needs a 2-D matrix, got shape {array.shape}")
        n, d = array.shape
        return cls(n=n, d=d, rows=_rows(d, rows, n), _array=array, _dtype=array.dtype)

    @classmethod
    def from_npy(cls, path: Path, rows: int | None = None) -> RowChunks:
        """Open a C-ordered 2-D float ``.npy`` without reading its data."""
        try:
            with open(path, "rb") as fh:
                shape, fortran, dtype = _read_header(fh)
                offset = fh.tell()
        except (OSError, ValueError) as exc:
            raise DataError(f"{path} is not a readable .npy file: {exc}") from exc
        if len(shape) != 2:
            raise DataError(f"{path}: PCA needs a 2-D matrix, the file holds shape {shape}")
        if fortran:
            raise DataError(f"{path} is Fortran-ordered; save it C-ordered (np.ascontiguousarray)")
        if dtype.kind != "f":
            raise DataError(f"{path} holds {dtype}, expected float32 or float64")
        n, d = (int(s) for s in shape)
        expected = offset + n * d * dtype.itemsize
        if os.path.getsize(path) < expected:
            raise DataError(f"{path} is truncated: header says {shape}, file is too short")
        return cls(n=n, d=d, rows=_rows(d, rows, n), path=Path(path), _offset=offset, _dtype=dtype)

    @property
    def n_chunks(self) -> int:
        return -(-self.n // self.rows)

    @property
    def nbytes_f32(self) -> int:
        return self.n * self.d * 4

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.iter()

    def iter(self, *, copy: bool = False) -> Iterator[np.ndarray]:
        """Yield float32 (rows, D) blocks in order; the last may be shorter."""
        if self._array is not None:
            for start in range(0, self.n, self.rows):
                block = np.asarray(self._array[start : start + self.rows], dtype=np.float32)
                yield block.copy() if copy else block
            return
        assert self.path is not None
        itemsize = self._dtype.itemsize
        raw = np.empty(self.rows * self.d, dtype=self._dtype)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for start in range(0, self.n, self.rows):
                count = min(self.rows, self.n - start)
                view = raw.data.cast("B")[: count * self.d * itemsize]
                _pread_full(fd, view, self._offset + start * self.d * itemsize)
                block = raw[: count * self.d].reshape(count, self.d)
                if self._dtype != np.float32:
                    yield block.astype(np.float32)
                else:
                    yield block.copy() if copy else block
        finally:
            os.close(fd)


def column_stats(chunks: RowChunks) -> tuple[np.ndarray, float]:
    """Column mean (float64, D) and the sum of squared centred entries (= N·trace of biased C).

    Two passes, accumulated in float64: the one-pass ``Σx² − N·μ²`` loses digits to
    cancellation when the mean is large next to the spread.
    """
    total = np.zeros(chunks.d, dtype=np.float64)
    for block in chunks:
        total += block.sum(axis=0, dtype=np.float64)
    mean = total / chunks.n
    mean32 = mean.astype(np.float32)
    squares = 0.0
    for block in chunks:
        centred = block - mean32
        squares += float(np.einsum("ij,ij->", centred, centred, dtype=np.float64))
    return mean, squares


def scatter_matrix(chunks: RowChunks, mean: np.ndarray) -> np.ndarray:
    """Σ (x − μ)(x − μ)ᵀ as a D×D float64 matrix, streamed: the reference for PCA's checks.

    This is what gradient PCA avoids forming; use it only where D×D fits (D ≤ a few thousand).
    """
    scatter = np.zeros((chunks.d, chunks.d), dtype=np.float64)
    for block in chunks:
        centred = block.astype(np.float64) - mean
        scatter += centred.T @ centred
    return scatter


def write_npy_once(path: Path, array: np.ndarray) -> Path:
    """Write ``array`` to ``path`` unless a file of the same shape and dtype is there already.

    Written under a temporary name and renamed, so a concurrent reader never sees half a file.
    """
    if path.is_file():
        try:
            existing = RowChunks.from_npy(path)
            if (existing.n, existing.d) == array.shape and existing._dtype == array.dtype:
                return path
        except DataError:
            pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.lib.format.write_array(fh, np.ascontiguousarray(array), allow_pickle=False)
    os.replace(tmp, path)
    return path


def _read_header(fh: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fh)  # type: ignore[no-any-return]
    # 2.0 widens the header length field; 3.0 (UTF-8 field names) parses the same way here.
    return np.lib.format.read_array_header_2_0(fh)  # type: ignore[no-any-return]


def _rows(d: int, rows: int | None, n: int) -> int:
    if rows is not None and rows < 1:
        raise BadArgument(f"--chunk-rows must be >= 1, got {rows}")
    chosen = rows if rows is not None else max(1, DEFAULT_CHUNK_BYTES // (4 * max(d, 1)))
    return max(1, min(chosen, max(n, 1)))


def _pread_full(fd: int, view: memoryview, offset: int) -> None:
    got = 0
    while got < len(view):
        n = os.preadv(fd, [view[got:]], offset + got)
        if n == 0:
            raise DataError("unexpected end of file while reading a chunk")
        got += n
