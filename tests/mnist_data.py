"""Where the tests get MNIST: the way the product does, so any clone in any folder can run them.

Order: ``../shared/datasets/mnist.npz`` beside the checkout (a fast first choice where a team
keeps one; never required), then the product's cache (``$ORCHESTRATE_DATA_DIR``, else
``~/.cache/orchestrate/datasets``), then ``trainers.data.load_mnist``'s public sources, each
checked by sha256, which fill that cache once. ``.ci/run`` runs ``python -m tests.mnist_data``
before the tests, so the fetch happens there and not in the middle of collection.

Tests that need the file take ``MNIST_NPZ`` (``None`` when no source could be reached: they skip
and say how to provide it) and its folder ``MNIST_DIR`` (a ``--data-dir``).
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import pytest

from trainers.data import CACHE_NAME, default_cache_dir, file_sha256, load_mnist
from trainers.errors import DataError

SHARED_NPZ = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "mnist.npz"
NO_FETCH_ENV = "ORCHESTRATE_TEST_NO_FETCH"  # set to skip instead of fetching (offline laptops)


@functools.cache
def mnist_npz() -> Path | None:
    """The MNIST npz the tests use, fetched into the cache when nowhere else; ``None`` if
    every source failed (or ``$ORCHESTRATE_TEST_NO_FETCH`` is set and nothing is here)."""
    cached = default_cache_dir() / CACHE_NAME
    for candidate in (SHARED_NPZ, cached):
        if candidate.is_file():
            return candidate.resolve()
    if os.environ.get(NO_FETCH_ENV):
        return None
    try:
        load_mnist()  # the product's path: public sources, sha256-checked, into the cache
    except DataError as exc:
        print(f"tests: MNIST could not be fetched: {exc}", file=sys.stderr)
        return None
    return cached.resolve() if cached.is_file() else None


MNIST_NPZ = mnist_npz()
MNIST_DIR = MNIST_NPZ.parent if MNIST_NPZ else Path("/nonexistent-mnist")
MNIST_NPZ_SHA256 = file_sha256(MNIST_NPZ) if MNIST_NPZ else ""
needs_mnist = pytest.mark.skipif(
    MNIST_NPZ is None,
    reason="no MNIST: run `python -m tests.mnist_data` online, or put mnist.npz in "
    f"{default_cache_dir()} (or $ORCHESTRATE_DATA_DIR)",
)


if __name__ == "__main__":  # .ci/run: fetch once if absent, say where it is
    if MNIST_NPZ is None:
        sys.exit("MNIST is not available; the tests that need it will skip")
    print(f"MNIST for the tests: {MNIST_NPZ}")
