"""The three layouts MNIST is shipped in, decoded to the Keras arrays and shape-checked:
Keras' ``mnist.npz``, the four IDX files, and the 50k/10k/10k ``mnist.pkl.gz`` pickle (read by
an unpickler that builds NumPy arrays and nothing else).

Split from ``trainers.data`` (where to find MNIST, fetching, caching, verifying) to keep each
module under the 400-line house rule; stdlib and NumPy only, like the rest of ``trainers``.
"""

from __future__ import annotations

import gzip
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from trainers.errors import DataError

IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
SHAPES = {
    "x_train": (60000, 28, 28),
    "y_train": (60000,),
    "x_test": (10000, 28, 28),
    "y_test": (10000,),
}


def decode(path: Path, layout: str) -> dict[str, np.ndarray]:
    """Arrays in the Keras layout (uint8 images (N, 28, 28), uint8 labels), shape-checked."""
    try:
        if layout == "npz":
            with np.load(path, allow_pickle=False) as npz:
                arrays = {key: np.asarray(npz[key]) for key in SHAPES}
        elif layout == "pkl":
            arrays = decode_pickle(path)
        else:
            raise DataError(f"unknown layout {layout!r}")
    except DataError:
        raise
    except (
        OSError,
        ValueError,
        KeyError,
        EOFError,
        zipfile.BadZipFile,
        pickle.UnpicklingError,
    ) as e:
        raise DataError(f"{path} is not a readable MNIST {layout} file: {e}") from e
    check_shapes(arrays, str(path))
    return arrays


def check_shapes(arrays: dict[str, np.ndarray], where: str) -> None:
    for key, shape in SHAPES.items():
        arr = arrays[key]
        if arr.shape != shape or arr.dtype != np.uint8:
            raise DataError(f"{where}: {key} is {arr.dtype}{arr.shape}, expected uint8{shape}")
    for key in ("y_train", "y_test"):
        if int(arrays[key].max()) > 9:
            raise DataError(f"{where}: {key} holds labels above 9")


class ArrayUnpickler(pickle.Unpickler):
    """Unpickles NumPy arrays and nothing else: a pickle can run code, this one cannot."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        # Protocol-2 pickles written by Python 3 spell array bytes as _codecs.encode(str, enc).
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from an MNIST pickle")


def decode_pickle(path: Path) -> dict[str, np.ndarray]:
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        # latin1: the original pickle was written by Python 2 (its arrays are byte strings).
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = ArrayUnpickler(fh, encoding="latin1").load()

    def pixels(x: np.ndarray) -> np.ndarray:
        # The pickle stores uint8/256 as float32, so *256 is exact.
        return np.rint(np.asarray(x, np.float32) * 256.0).astype(np.uint8).reshape(-1, 28, 28)

    return {
        "x_train": np.concatenate([pixels(x_tr), pixels(x_va)]),
        "y_train": np.concatenate([y_tr, y_va]).astype(np.uint8),
        "x_test": pixels(x_te),
        "y_test": np.asarray(y_te).astype(np.uint8),
    }


def find_idx(data_dir: Path) -> dict[str, Path] | None:
    found: dict[str, Path] = {}
    for key, stem in IDX_NAMES.items():
        # Some mirrors write "train-images.idx3-ubyte" (a dot where the first dash was).
        dotted = stem.replace("-idx", ".idx")
        names = (stem, stem + ".gz", dotted, dotted + ".gz")
        path = next((data_dir / n for n in names if (data_dir / n).is_file()), None)
        if path is None:
            return None
        found[key] = path
    return found


def read_idx(path: Path) -> np.ndarray:
    """One IDX file: magic (0, 0, type 0x08 = ubyte, ndim), ndim big-endian int32 sizes, data."""
    opener: Any = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path} is not readable: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, ">i4", count=ndim, offset=4))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path}: header says {dims}, file holds {data.size} bytes (truncated?)")
    return data.reshape(dims)
