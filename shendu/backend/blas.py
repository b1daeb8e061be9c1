"""Matrix products for the ops: Intel MKL when its wheel is installed, else ``xp.matmul``.

Why MKL. NumPy's wheels link OpenBLAS. On the Xeon (Sapphire Rapids) this project is
measured on, OpenBLAS 0.3.31 reaches 0.7-0.85 of MKL's speed on a training step's
products (128x784 @ 784x512: 206 vs 295 GFLOP/s on 2 threads) and half of it on the thin
products of small convolutions (6x25 @ 25x50176: 28 vs 55 GFLOP/s). PyTorch uses MKL. The
``mkl`` wheel (``pip install mkl``, or shendu's ``fast`` extra) puts ``libmkl_rt`` in the
environment's ``lib/``; it is loaded with ctypes, and ``matmul`` calls ``cblas_?gemm``
on float32/float64 matrices of any strides it can pass without a copy.

Threads. MKL is told to run on GNU OpenMP (libgomp), the layer numba's parallel kernels
(``shendu.backend.jit``) are then put on too, so products and kernels take turns on one
pool of threads instead of two pools spinning against each other (see ``jit``). Intel
TBB, the other layer both can share, measured ~10% slower on a training step. A process
that has used GNU OpenMP threads cannot use them again in a ``fork()`` child (MKL hangs,
numba's kernels kill the child), so a forked child runs products on one MKL thread and
ops on their plain NumPy paths (``_after_fork``); ``spawn`` children are unaffected.
MKL's thread count is the process's (threadpoolctl's ``blas`` limits reach it too).
``SHENDU_MKL=0`` in the environment keeps MKL unloaded.

>>> import numpy as np
>>> a, b = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)
>>> matmul(a, b)
array([[3., 3., 3., 3.],
       [3., 3., 3., 3.]], dtype=float32)
>>> out = np.ones((2, 4), np.float32)
>>> float(matmul(a, b, out, accumulate=True)[0, 0])   # out += a @ b
4.0
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from pathlib import Path

import numpy as np

from . import jit

__all__ = ["matmul", "takes", "mkl_loaded", "set_num_threads", "get_num_threads"]

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_GNU_THREADING = 3   # MKL_THREADING_GNU: libgomp, shared with numba's omp layer
_MIN_WORK = 1 << 15  # m*n*k below this: numpy's call is cheaper than the ctypes one
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))

_lib = None
_path = None         # the libmkl_rt file loaded (numba kernels link to it by symbol name)
_gemm: dict = {}     # dtype -> cblas_sgemm / cblas_dgemm
_tried = False


def _candidates():
    """Where ``libmkl_rt`` may be: the environment's lib/ (pip and conda put it there),
    then the system's search path."""
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix, os.environ.get("CONDA_PREFIX"))):
        if prefix:
            lib = Path(prefix) / "lib"
            yield from sorted(lib.glob("libmkl_rt.so*"), reverse=True)
            yield from sorted(lib.glob("mkl_rt*.dll"))
            yield from sorted(lib.glob("libmkl_rt*.dylib"))
    found = ctypes.util.find_library("mkl_rt")
    if found:
        yield found


def _load():
    global _lib, _path, _tried
    _tried = True
    if os.environ.get("SHENDU_MKL", "1") == "0":
        return
    from ._omp_wait import before_openmp

    before_openmp()  # MKL's GNU OpenMP layer loads libgomp: idle threads must not spin
    for path in _candidates():
        try:
            lib = ctypes.CDLL(str(path))
        except OSError:
            continue
        lib.MKL_Set_Threading_Layer.argtypes = [ctypes.c_int]
        if lib.MKL_Set_Threading_Layer(_GNU_THREADING) != _GNU_THREADING:
            continue  # no libgomp: MKL's own OpenMP would fight numba's threads
        ptr, i, f = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
        for dtype, name, scalar in ((np.float32, "cblas_sgemm", f),
                                    (np.float64, "cblas_dgemm", ctypes.c_double)):
            fn = getattr(lib, name)
            fn.restype = None
            fn.argtypes = [i, i, i, i, i, i, scalar, ptr, i, ptr, i, scalar, ptr, i]
            _gemm[np.dtype(dtype)] = fn
        lib.MKL_Set_Num_Threads_Local.argtypes = [ctypes.c_int]
        lib.MKL_Set_Num_Threads.argtypes = [ctypes.c_int]
        lib.MKL_Get_Max_Threads.restype = ctypes.c_int
        _lib, _path = lib, str(path)
        if _forked:
            _one_thread()
        return


_forked = False  # this process is a fork() child of one that may have used the pool


def _one_thread():
    _lib.MKL_Set_Num_Threads(1)
    _lib.MKL_Set_Num_Threads_Local(1)


def _after_fork():
    global _forked
    _forked = True
    if _lib is not None:
        _one_thread()
    from . import jit

    jit.set_enabled(False)  # numba's OpenMP kernels would kill this process


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def mkl_loaded() -> bool:
    """Whether products go through MKL (loaded on the first call)."""
    if not _tried:
        _load()
    return _lib is not None


def set_num_threads(n: int) -> None:
    """MKL's thread count (nothing without MKL; always 1 in a fork() child, see the
    module docstring)."""
    if mkl_loaded() and not _forked:
        _lib.MKL_Set_Num_Threads(int(n))


def describe() -> str:
    """``'MKL <version>'`` or ``'NumPy (<its BLAS>)'``: who multiplies matrices."""
    if mkl_loaded():
        buf = ctypes.create_string_buffer(256)
        _lib.MKL_Get_Version_String(buf, len(buf))
        text = buf.value.decode(errors="replace")
        version = text.split("Version")[-1].split("-Product")[0].strip()
        return f"MKL {version or text}"
    try:
        cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"NumPy ({cfg['name']} {cfg.get('version', '')})".replace(" )", ")")
    except Exception:  # noqa: BLE001 - older NumPy has no dict mode
        return "NumPy"


def get_num_threads() -> int | None:
    """MKL's thread count (None without MKL)."""
    return _lib.MKL_Get_Max_Threads() if mkl_loaded() else None


def takes(a, b) -> bool:
    """Whether MKL is loaded and takes these operands' type (NumPy matrices of one float
    dtype); ``matmul`` still hands tiny products to NumPy."""
    return (_lib is not None and type(a) is np.ndarray and type(b) is np.ndarray
            and a.dtype in _gemm and b.dtype == a.dtype and a.ndim == 2 and b.ndim == 2)


def _operand(a):
    """``(trans, ld, a)`` to pass matrix ``a`` to cblas in row-major order, copying it
    only when neither it nor its transpose has unit-stride rows."""
    m, k = a.shape
    item = a.itemsize
    s0, s1 = a.strides
    if s1 == item or k == 1:
        ld = s0 // item if m > 1 else k
        if s0 % item == 0 and ld >= max(k, 1):
            return _NO_TRANS, ld, a
    if s0 == item or m == 1:
        ld = s1 // item if k > 1 else m
        if s1 % item == 0 and ld >= max(m, 1):
            return _TRANS, ld, a
    a = np.ascontiguousarray(a)
    return _NO_TRANS, max(k, 1), a


def matmul(a, b, out=None, accumulate: bool = False):
    """``a @ b`` for matrices (``out += a @ b`` with ``accumulate``), into ``out`` if given
    (it may be a view with unit-stride rows, such as a column block of a bigger matrix, and
    may overlap ``a`` or ``b``, as with ``np.matmul``).

    MKL takes float32/float64 NumPy matrices when it is loaded and the product is not
    tiny; everything else (other dtypes, CuPy arrays, stacks of matrices) goes to the
    array module's ``matmul``. For float32/float64 NumPy matrices a bad ``out`` (another
    shape or dtype, read-only) raises ``ValueError`` whichever path the product takes."""
    if (type(a) is not np.ndarray or type(b) is not np.ndarray or a.ndim != 2 or b.ndim != 2
            or a.dtype not in _FLOATS or b.dtype != a.dtype):
        return _fallback(a, b, out, accumulate)
    m, k = a.shape
    n = b.shape[1]
    if b.shape[0] != k:
        return _fallback(a, b, out, accumulate)  # NumPy's error names the mismatch
    if out is not None:
        # Checked before the size test so that a bad ``out`` fails for small products too
        # (NumPy would silently cast it to another float dtype, or broadcast into it).
        if out.shape != (m, n) or out.dtype != a.dtype:
            raise ValueError(f"matmul: out has shape {out.shape} and dtype {out.dtype}, "
                             f"expected {(m, n)} and {a.dtype}")
        if not out.flags.writeable:
            raise ValueError("matmul: out is read-only")
    fn = _gemm.get(a.dtype) if (_lib is not None or (not _tried and mkl_loaded())) else None
    if fn is None or m * n * k < _MIN_WORK:
        return _fallback(a, b, out, accumulate)
    if out is None:
        out = np.empty((m, n), a.dtype)
        accumulate = False
    item = out.itemsize
    if (not (out.strides[1] == item and out.strides[0] % item == 0
             and (m == 1 or out.strides[0] >= n * item))
            or np.may_share_memory(out, a) or np.may_share_memory(out, b)):
        # gemm writes C while it still reads A and B: an overlapping out gets a copy
        tmp = matmul(a, b)
        out[...] = out + tmp if accumulate else tmp
        return out
    if jit.on(a) and jit.gemm(a, b, out, 1.0 if accumulate else 0.0):
        return out  # the same call from compiled code: ~6 us less per product
    ta, lda, a = _operand(a)
    tb, ldb, b = _operand(b)
    ldc = out.strides[0] // item if m > 1 else max(n, 1)
    fn(_ROW_MAJOR, ta, tb, m, n, k, 1.0, a.ctypes.data, lda, b.ctypes.data, ldb,
       1.0 if accumulate else 0.0, out.ctypes.data, ldc)
    return out


def _fallback(a, b, out, accumulate):
    if out is None:
        return a @ b
    if accumulate:
        prod = a @ b
        if prod.shape != out.shape:  # ``out += prod`` would broadcast a smaller product
            raise ValueError(f"matmul: out has shape {out.shape}, the product {prod.shape}")
        out += prod
        return out
    from . import get_array_module

    return get_array_module(a).matmul(a, b, out=out)
