"""The trainers leave nothing in the system temporary folder (`trainers.scratch`): PyTensor's
Numba backend and TensorFlow's autograph write generated source there and never delete it."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from tests.mnist_data import MNIST_DIR, needs_mnist
from trainers.mnist import parse_config, run
from trainers.pca import main as pca_main
from trainers.scratch import PREFIX, STALE_AFTER_S, private_tempdir, sweep_stale


@pytest.fixture
def system_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh folder standing in for /tmp, for this test's `tempfile` calls."""
    path = tmp_path / "system-tmp"
    path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    return path


def test_the_frameworks_do_write_there_unguarded(system_tmp: Path) -> None:
    """What the guard is for: a PyTensor function compiled outside it leaves its source."""
    import pytensor
    import pytensor.tensor as pt

    x = pt.vector("x")
    pytensor.function([x], pt.exp(x) * 3.0 + 1.0, mode="NUMBA")
    assert list(system_tmp.iterdir())


def test_the_block_gets_its_own_folder_and_removes_it(system_tmp: Path) -> None:
    with private_tempdir() as outer:
        assert outer.parent == system_tmp and tempfile.gettempdir() == str(outer)
        with private_tempdir() as inner:
            Path(tempfile.mkstemp()[1]).write_text("generated")
            assert inner.parent == outer and list(inner.iterdir())
        assert not inner.exists() and tempfile.gettempdir() == str(outer)
    assert not outer.exists() and tempfile.gettempdir() == str(system_tmp)
    assert not list(system_tmp.iterdir())


@needs_mnist
@pytest.mark.parametrize("framework", ["theano", "tensorflow"])
def test_an_mnist_run_leaves_nothing_behind(
    system_tmp: Path, tmp_path: Path, framework: str
) -> None:
    argv = [
        "--framework", framework, "--optimizer", "momentum", "--epochs", "1", "--hidden", "16",
        "--batch-size", "100", "--subset", "500", "--data-dir", str(MNIST_DIR),
        "--out", str(tmp_path / "out"),
    ]  # fmt: skip
    metrics = run(parse_config(argv))
    assert metrics["epochs"] == 1
    assert not list(system_tmp.iterdir())


@pytest.mark.parametrize("framework", ["theano", "tensorflow"])
def test_a_pca_run_leaves_nothing_behind(system_tmp: Path, tmp_path: Path, framework: str) -> None:
    x = np.random.default_rng(0).standard_normal((200, 12)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    argv = ["--framework", framework, "--device", "cpu", "--components", "2"]
    argv += ["--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "out")]
    assert pca_main(argv) == 0
    assert (tmp_path / "out" / "metrics.json").exists()
    assert not list(system_tmp.iterdir())


def test_folders_of_dead_trainers_are_swept_once_an_hour_old(tmp_path: Path) -> None:
    """What a SIGKILLed trainer leaves is removed by a later trainer's start."""
    dead_pid = _dead_pid()
    now = time.time()
    folders = {
        "dead, old": (dead_pid, now - 2 * STALE_AFTER_S),
        "dead, recent": (dead_pid, now - 60),
        "alive, old": (os.getpid(), now - 2 * STALE_AFTER_S),
    }
    paths = {}
    for what, (pid, mtime) in folders.items():
        path = tmp_path / f"{PREFIX}{pid}-{what.replace(', ', '-')}"
        (path / "sub").mkdir(parents=True)
        (path / "sub" / "generated.py").write_text("x = 1\n")
        os.utime(path, (mtime, mtime))
        paths[what] = path
    other = tmp_path / "tmpabc123"
    other.mkdir()
    os.utime(other, (now - 2 * STALE_AFTER_S,) * 2)

    assert sweep_stale(tmp_path, now=now) == [paths["dead, old"]]
    assert not paths["dead, old"].exists()
    assert paths["dead, recent"].exists() and paths["alive, old"].exists() and other.exists()


def test_the_guard_sweeps_where_it_makes_its_folder(system_tmp: Path) -> None:
    dead_pid = _dead_pid()
    left = system_tmp / f"{PREFIX}{dead_pid}-killed"
    left.mkdir()
    old = time.time() - 2 * STALE_AFTER_S
    os.utime(left, (old, old))
    with private_tempdir() as mine:
        assert mine.name.startswith(f"{PREFIX}{os.getpid()}-")
        assert not left.exists()


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen(["true"])  # noqa: S607
    proc.wait()
    return proc.pid
