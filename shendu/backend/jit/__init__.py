"""CPU kernels compiled by numba, beside the NumPy code they speed up.

A NumPy expression makes one pass over memory per ufunc, and usually a temporary per
pass: ``g * (y > 0)`` reads ``y``, writes a mask, reads it and ``g``, writes the result. A
compiled loop reads each input once and writes the output once. The ops that move the
most memory in a training step (ReLU, pooling, im2col/col2im, the optimizers' updates,
the LSTM's gate arithmetic) call the kernels here when ``on(...)`` says so, and otherwise
run their plain NumPy code, which stays the reference the kernels are tested against.

The kernels are on when numba is importable (``pip install shendu[fast]``; the ``train``
and ``test`` extras include it) and the environment variable ``SHENDU_JIT`` is not ``0``;
``set_enabled`` and ``enabled(False)`` switch them at run time. They apply to NumPy
float32/float64 arrays only (CuPy arrays keep their own kernels).

Threads. The kernels are numba ``prange`` loops. When MKL does the matrix products
(``shendu.backend.blas``) it runs on GNU OpenMP, and numba is put on the same OpenMP
layer, so a product and the ReLU after it take turns on one pool of threads, as in
PyTorch. Without MKL, NumPy's OpenBLAS keeps its own threads spinning after each product,
and a second pool fighting them was measured 16x slower than either alone (a 128x784x512
product then a ReLU: 7.6 ms instead of 0.47 ms), so the kernels then run on one thread.
``shendu.set_num_threads`` sets both counts. In a ``fork()`` child the kernels are off
(GNU OpenMP cannot be used again there; see ``blas``).

Each kernel compiles on first use for the dtypes it meets (about 0.1-0.5 s each) and is
cached on disk by numba (``cache=True``), so later processes load it in milliseconds.

>>> import numpy as np
>>> from shendu.backend import jit
>>> jit.on(np.zeros(3, np.float32)) == jit.enabled()
True
>>> jit.on(np.zeros(3, np.int64))
False
"""
from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator

import numpy as np

__all__ = ["available", "enabled", "set_enabled", "use", "on", "on_all", "set_num_threads",
           "num_threads", "parallel"]

# Modules holding the kernels; their public names become attributes of this package.
_KERNEL_MODULES = ("elementwise", "pool", "conv", "optim", "mkl", "rnn", "loss")
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))

_available: bool | None = None  # numba importable (None: not looked at yet)
_on = os.environ.get("SHENDU_JIT", "1") != "0"


def available() -> bool:
    """Whether numba can be imported (looked up once)."""
    global _available
    if _available is None:
        try:
            importlib.import_module("numba")
            _available = True
        except Exception:  # ImportError, or a numba that fails against this NumPy
            _available = False
    return _available


def enabled() -> bool:
    """Whether ops use the compiled kernels now."""
    return _on and available()


def set_enabled(flag: bool) -> bool:
    """Turn the kernels on or off for the whole process; returns the previous setting.
    On without numba installed still means off: ``enabled()`` tells."""
    global _on
    before, _on = _on, bool(flag)
    return before


@contextlib.contextmanager
def use(flag: bool) -> Iterator[None]:
    """``with jit.use(False):`` runs the block on the plain NumPy paths (tests compare)."""
    before = set_enabled(flag)
    try:
        yield
    finally:
        set_enabled(before)


def on(a) -> bool:
    """Whether a kernel may take ``a``: kernels on, ``a`` a NumPy float32/float64 array."""
    return _on and type(a) is np.ndarray and a.dtype in _FLOATS and available()


def on_all(*arrays) -> bool:
    """``on`` for several arrays of one dtype."""
    if not (_on and available()):
        return False
    first = arrays[0]
    return all(type(a) is np.ndarray and a.dtype == first.dtype for a in arrays) and \
        first.dtype in _FLOATS


_parallel: bool | None = None  # kernels may use several threads (None: numba not set up)
_threads = 0  # the count asked for by set_num_threads (0: numba's default)
_serial = True  # kernels run their serial versions (one thread; see elementwise.Kernel)


def _setup_numba() -> None:
    """Choose numba's threads before the first kernel runs (see the module docstring)."""
    global _parallel
    if _parallel is not None:
        return
    import numba

    from .. import blas

    _parallel = blas.mkl_loaded()
    if _parallel:
        from .._omp_wait import before_openmp

        before_openmp()  # before numba's OpenMP layer starts (see _omp_wait)
        numba.config.THREADING_LAYER = "omp"  # MKL's layer: one pool for both
    set_num_threads(_threads or (numba.config.NUMBA_NUM_THREADS if _parallel else 1))
    if _parallel:
        _no_nested_openmp()


def _no_nested_openmp() -> None:
    """Undo the nested parallelism numba's OpenMP layer turns on when it starts.

    numba calls ``omp_set_nested(1)`` for the whole process. The kernels never nest, but a
    library parallel inside a parallel region then starts a second team per thread: MKL
    called in a kernel's loop took ~650 us per small product, and PyTorch's Adam step in
    the same process went from 1.1 to 34 ms. One active level restores both."""
    import ctypes

    try:
        ctypes.CDLL("libgomp.so.1").omp_set_max_active_levels(1)  # the copy already loaded
    except (OSError, AttributeError):
        pass


def set_num_threads(n: int) -> None:
    """Threads for the kernels started from this thread (1 when they must not share the
    cores with OpenBLAS's threads)."""
    global _threads, _serial
    _threads = int(n)
    if _parallel is None:
        return
    import numba

    count = max(1, min(_threads, numba.config.NUMBA_NUM_THREADS)) if _parallel else 1
    numba.set_num_threads(count)
    _serial = count == 1


def num_threads() -> int:
    """How many threads a kernel started from this thread may use."""
    if not available():
        return 1
    _setup_numba()
    if not _parallel:
        return 1
    import numba

    return numba.get_num_threads()


def parallel() -> bool:
    """Whether the kernels run on several threads (MKL present); False before set-up."""
    return bool(_parallel)


def __getattr__(name: str):
    # The kernel modules import numba, so they load on the first kernel asked for.
    if name.startswith("_"):
        raise AttributeError(name)
    _setup_numba()
    for mod in _KERNEL_MODULES:
        module = importlib.import_module(f"{__name__}.{mod}")
        if hasattr(module, name):
            value = getattr(module, name)
            globals()[name] = value
            return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
