"""Shared by the trainer tests."""

from __future__ import annotations

import tempfile

import pytest


@pytest.fixture(autouse=True)
def _generated_sources_in_pytest_tmp(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """This process's `tempfile` paths go to a folder of pytest's (beside each test's
    tmp_path, which some tests list, and pruned with it): the tests that build
    PyTensor and TensorFlow models directly (not through a trainer's `trainers.scratch`
    folder) would otherwise leave the frameworks' generated sources in /tmp."""
    path = tmp_path_factory.mktemp("tempfile")
    monkeypatch.setattr(tempfile, "tempdir", str(path))
