"""`trainers.heap`: a step's temporaries reuse the pages of the step before (issue 18)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

STEPS = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    if sys.argv[1] == "keep":
        from trainers.heap import keep_freed_memory
        assert keep_freed_memory()
    def step():  # a 4 MB and a 2 MB temporary, as a training step makes and drops them
        a = np.ones((1000, 1000), np.float32)
        b = np.ones((500, 1000), np.float32)
        return float(a[0, 0] + b[0, 0])
    step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(50):
        step()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def _faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", STEPS, mode], capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_kept_memory_spares_the_page_faults_of_every_step() -> None:
    plain, kept = _faults("plain"), _faults("keep")
    assert plain > 500  # glibc gave the pages back and the steps faulted them in again
    assert kept < 50, f"{kept} minor faults in 50 steps with freed memory kept ({plain} without)"
