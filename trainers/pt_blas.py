"""A single-precision GEMM that Numba-compiled PyTensor graphs can call: the OpenBLAS of the
``scipy-openblas32`` wheel, when it is installed.

Numba's ``np.dot`` calls the BLAS that SciPy bundles, which lags the OpenBLAS releases (SciPy
1.17.1 bundles 0.3.30). At the MNIST step's shapes (a 250×784 part times 784×300, and its
transposed backward product) one thread of OpenBLAS 0.3.34 is 6-8% faster than that one,
measured alternating in one process on the 2-core Xeon (AVX-512) host (issue 18); at 2048² the
two are alike. The products are three quarters of a step: the whole trainer gained 6.7%
samples/s, A/B in one process (benchmarks/RESULTS.md, "Fifth session").

Why by hand: Numba offers no way to choose the BLAS behind ``np.dot``. The wheel's library is
opened with ctypes and its ``cblas_sgemm`` registered with LLVM under a name of our own
(`SYMBOL`), so compiled code, including code loaded from Numba's disk cache in a later process,
finds this library's function and never another copy's of the same exported name. Without the
wheel, or on a platform where it cannot be loaded, `available` is False and the products stay
``np.dot`` (the cache keys differ, so the two kinds of code never mix).

Only on x86-64 (`MEASURED_ON`): that is where the gain was measured, and OpenBLAS's recent
releases had wrong-result regressions in their Arm (Neoverse V1, ARMv8) and RISC-V kernels
(OpenBLAS issues 5735, 5743, 5811), so an Arm machine such as a Graviton keeps SciPy's BLAS.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
from typing import Any

SYMBOL = "orchestrate_cblas_sgemm"
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112  # the CBLAS enum values
MEASURED_ON = ("x86_64", "AMD64")  # platform.machine() where the wheel's GEMM is used


@functools.cache
def library_path() -> str | None:
    """The wheel's shared library, or None without the wheel."""
    try:
        import scipy_openblas32
    except ImportError:
        return None
    lib_dir = scipy_openblas32.get_lib_dir()
    names = sorted(n for n in os.listdir(lib_dir) if n.startswith("libscipy_openblas"))
    so = [n for n in names if ".so" in n or n.endswith(".dylib")]
    return os.path.join(lib_dir, so[0]) if so else None


@functools.cache
def cblas_sgemm() -> Any | None:
    """The wheel's ``cblas_sgemm`` as a ctypes function (untyped: callers pass ctypes values),
    or None when the wheel is absent or does not load."""
    path = library_path()
    if path is None:
        return None
    try:
        return ctypes.CDLL(path).scipy_cblas_sgemm
    except (OSError, AttributeError):
        return None


@functools.cache
def available() -> bool:
    """Whether `SYMBOL` is registered (once per process): the wheel loads and exports the
    function, and LLVM resolves our name to it."""
    function = cblas_sgemm()
    if function is None or platform.machine() not in MEASURED_ON:
        return False
    address = ctypes.cast(function, ctypes.c_void_p).value
    if not address:
        return False
    from llvmlite import binding

    binding.add_symbol(SYMBOL, address)
    return binding.address_of_symbol(SYMBOL) == address


@functools.cache
def sgemm() -> Any:
    """The Numba external function for `SYMBOL`.

    Its pointer arguments are declared as ``intp`` and given ``array.ctypes.data``: Numba has
    no cast from an integer to a typed pointer, and both are one 64-bit register in the C ABI
    of the platforms the wheel is built for.
    """
    from numba import types

    i32, ptr, f32 = types.int32, types.intp, types.float32
    signature = types.void(i32, i32, i32, i32, i32, i32, f32, ptr, i32, ptr, i32, f32, ptr, i32)
    return types.ExternalFunction(SYMBOL, signature)
