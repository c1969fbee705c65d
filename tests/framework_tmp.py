"""An autouse fixture for the test folders that build PyTensor and TensorFlow models in this
process: the frameworks write generated source (PyTensor's Numba functions, TF's autograph
files) to the system temporary folder and never delete it (`trainers.scratch`); here it goes to
a folder of pytest's instead, pruned with the rest of pytest's temporaries. A folder's conftest
imports it."""

from __future__ import annotations

import tempfile

import pytest


@pytest.fixture(autouse=True)
def generated_sources_in_pytest_tmp(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """This process's `tempfile` paths go beside the test's tmp_path (not in it: some tests
    list their tmp_path)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path_factory.mktemp("tempfile")))
