"""Control how many threads NumPy's BLAS (OpenBLAS) uses, without extra dependencies.

Why: on a 2-core machine a small matrix product (the MLP's 32x784 @ 784x128) finishes
faster on one thread than on two, because waking and syncing the second thread costs more
than the work it takes over; large products (convolutions as im2col @ W) want every core.
Numba's own threads compete for the same cores, so callers pick per workload.

We look up OpenBLAS's ``set_num_threads`` in the library NumPy loaded. When it cannot be
found (another BLAS, another platform) the functions do nothing and return None.
"""

import contextlib
import ctypes
import glob
import os

import numpy as np

_SETTERS = ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_",
            "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
            "openblas_get_num_threads")


def _find_openblas():
    root = os.path.dirname(os.path.dirname(np.__file__))
    candidates = glob.glob(os.path.join(root, "numpy.libs", "*openblas*"))
    candidates += glob.glob(os.path.join(os.path.dirname(np.__file__), ".dylibs", "*openblas*"))
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        setter = next((getattr(lib, s) for s in _SETTERS if hasattr(lib, s)), None)
        getter = next((getattr(lib, g) for g in _GETTERS if hasattr(lib, g)), None)
        if setter is not None and getter is not None:
            setter.argtypes, setter.restype = [ctypes.c_int], None
            getter.argtypes, getter.restype = [], ctypes.c_int
            return setter, getter
    return None, None


_set, _get = _find_openblas()


def get_blas_threads():
    return _get() if _get is not None else None


def set_blas_threads(n):
    """Set the BLAS thread count; returns the previous count (None if unsupported)."""
    previous = get_blas_threads()
    if _set is not None and n is not None:
        _set(int(n))
    return previous


@contextlib.contextmanager
def blas_threads(n):
    """``with blas_threads(1): ...`` runs the block with ``n`` BLAS threads (None: unchanged)."""
    previous = set_blas_threads(n)
    try:
        yield
    finally:
        if n is not None:
            set_blas_threads(previous)
