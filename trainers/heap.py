"""Keep the pages of freed memory in a training process, so each step's temporaries reuse them.

A PyTensor step on MNIST allocates about 6 MB of temporaries (the batch, activations, their
gradients) and frees them before the next step. glibc returns such memory to the kernel: blocks
over its mmap threshold are unmapped on free, and the top of the heap is trimmed past its trim
threshold (both adapt, but the step's peak is over twice the largest block, so the trim
always fires). The next step then faults every page in again, zeroed by the kernel: 1,176 minor
faults per step measured at batch 500, a large part of the step's non-GEMM time (issue 18).

Raising both thresholds keeps that memory in the process: a trainer is the only tenant of its
process, and its peak is what it holds anyway. No library exposes `mallopt`, so it is called
through ctypes; where it is missing (musl, macOS) nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc refuses more on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 1024 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed blocks of up to 32 MB; True where it took both settings."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    mmap_ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX) == 1
    trim_ok = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    return mmap_ok and trim_ok
