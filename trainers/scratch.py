"""A private temporary folder for one trainer run, removed when the run ends.

Both frameworks write generated source to the system temporary folder and never delete it:
PyTensor's Numba backend every graph it converts (``NamedTemporaryFile(delete=False)``, in every
process, cache hit or not), TensorFlow's autograph every function it traces. One quickstart left
51 files in /tmp (measured 2026-12-07), one run of the test suite 1,413. Numba's
compiled cache is keyed by PyTensor's own hash, not by these files, so nothing needs them once
the run is over.

Only `tempfile.tempdir` is redirected (both frameworks ask `tempfile` at the moment they
write), not ``TMPDIR``, so child processes and the caller's own later temporaries are untouched.
A trainer killed with SIGKILL cannot remove its folder; the folder's name carries its pid, and
the next trainer to start removes such folders once their process is gone and they have not
changed for an hour (a process in another pid namespace sharing /tmp is left alone meanwhile).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PREFIX = "orchestrate-trainer-"
STALE_AFTER_S = 3600.0
_OWNED = re.compile(re.escape(PREFIX) + r"(\d+)-")


@contextlib.contextmanager
def private_tempdir() -> Iterator[Path]:
    """Inside the block, `tempfile` hands out paths in a fresh folder, removed after it.

    A block inside another one of these (the tests call `trainers.mnist.run` in-process)
    gets its own folder and puts the outer one back.
    """
    sweep_stale(Path(tempfile.gettempdir()))
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
    before = tempfile.tempdir
    tempfile.tempdir = str(path)
    try:
        yield path
    finally:
        tempfile.tempdir = before
        shutil.rmtree(path, ignore_errors=True)


def sweep_stale(parent: Path, *, now: float | None = None) -> list[Path]:
    """Remove the folders of trainers that died without removing theirs; returns them."""
    now = time.time() if now is None else now
    removed = []
    with contextlib.suppress(OSError):
        for entry in parent.iterdir():
            owned = _OWNED.match(entry.name)
            if owned is None or _alive(int(owned.group(1))):
                continue
            with contextlib.suppress(OSError):
                if now - entry.stat().st_mtime > STALE_AFTER_S and entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                    removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
