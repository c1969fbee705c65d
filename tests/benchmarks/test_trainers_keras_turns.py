"""`benchmarks.trainers.keras_fit`: Keras's epochs are the turns of one long ``fit`` call, each
waiting for the parent's ``go``, and the call ends when the parent stops asking."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import numpy as np
import pytest

from benchmarks import trainers as bench


class Parent(io.StringIO):
    """The parent's side of the child's stdin: its lines, and how many lines the child had
    written when each was read (so the test sees whether an epoch waited for its ``go``)."""

    def __init__(self, text: str, child_out: io.StringIO) -> None:
        super().__init__(text)
        self.child_out = child_out
        self.written_at_read: list[int] = []

    def readline(self, size: int | None = -1) -> str:
        self.written_at_read.append(len(self.child_out.getvalue().splitlines()))
        return super().readline(size)


def _data(n: int = 600) -> SimpleNamespace:
    rng = np.random.default_rng(0)
    return SimpleNamespace(
        x_train=rng.random((n, 784), dtype=np.float32), y_train=rng.integers(0, 10, n)
    )


@pytest.mark.parametrize("last", ["", "stop\n"])
def test_each_go_is_one_timed_epoch_of_one_fit_call(last: str) -> None:
    pytest.importorskip("keras")
    out = io.StringIO()
    parent = Parent("go 1\ngo 2\n" + last, out)
    bench.keras_fit(_data(), hidden=16, batch=100, lr=0.1, turns=parent, out=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "ready"  # the warm-up epoch, untimed
    values = [json.loads(line)["value"] for line in lines[1:]]
    assert len(values) == 2 and all(v > 0 for v in values)
    # Each epoch after the warm-up started only once its `go` was read: one line more written
    # before each read. The third read (end of input or `stop`) ended the call.
    assert parent.written_at_read == [1, 2, 3]
