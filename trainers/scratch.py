"""A private temporary folder for one trainer run, removed when the run ends.

Both frameworks write generated source to the system temporary folder and never delete it:
PyTensor's Numba backend every graph it converts (``NamedTemporaryFile(delete=False)``, in every
process, cache hit or not), TensorFlow's autograph every function it traces. One quickstart left
51 files in /tmp (measured 2026-12-07), one run of the test suite 1,413. Numba's
compiled cache is keyed by PyTensor's own hash, not by these files, so nothing needs them once
the run is over.

Only `tempfile.tempdir` is redirected (both frameworks ask `tempfile` at the moment they
write), not ``TMPDIR``, so child processes and the caller's own later temporaries are untouched.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def private_tempdir(prefix: str = "orchestrate-trainer-") -> Iterator[Path]:
    """Inside the block, `tempfile` hands out paths in a fresh folder, removed after it.

    A block inside another one of these (the tests call `trainers.mnist.run` in-process)
    gets its own folder and puts the outer one back.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    before = tempfile.tempdir
    tempfile.tempdir = str(path)
    try:
        yield path
    finally:
        tempfile.tempdir = before
        shutil.rmtree(path, ignore_errors=True)
