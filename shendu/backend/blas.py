"""Intel MKL's GEMM through ctypes, for ``backend.cpu.matmul`` (the dispatch point that
decides when a product goes here).

Why MKL. NumPy's wheels link OpenBLAS, which was slower than MKL on a training step's
products and much slower on the thin products of small convolutions (numbers:
``benchmarks/README.md``, "Measurements behind the code"). PyTorch uses MKL.
The ``mkl`` wheel (``pip install mkl``, or shendu's ``fast`` extra) puts ``libmkl_rt`` in
the environment's ``lib/``; ``backend.runtime`` loads it (on GNU OpenMP, the layer numba's
kernels share, so products and kernels take turns on one pool of threads) and ``gemm``
here calls ``cblas_?gemm`` on float32/float64 matrices of any strides it can pass without
a copy. ``SHENDU_MKL=0`` in the environment keeps MKL unloaded.

>>> import numpy as np
>>> a, b = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)
>>> out = np.ones((2, 4), np.float32)
>>> if runtime.mkl_loaded():
...     gemm(a, b, out, 1.0)                         # out += a @ b
>>> float((out if runtime.mkl_loaded() else out + a @ b)[0, 0])
4.0
"""
from __future__ import annotations

import ctypes

import numpy as np

from . import runtime
from .runtime import mkl_loaded
from .runtime import mkl_threads as get_num_threads
from .runtime import set_mkl_threads as set_num_threads

__all__ = ["gemm", "takes", "Packed", "pack", "gemm_packed", "mkl_loaded", "set_num_threads",
           "get_num_threads", "describe"]

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
describe = runtime.blas_name
_fns: dict = {}  # dtype -> cblas_sgemm / cblas_dgemm of the loaded library
_PACKED, _B_MATRIX = 151, 162
_pack_fns: dict = {}  # dtype -> (pack_get_size, pack, compute)


def _gemm_fn(dtype):
    fn = _fns.get(dtype)
    if fn is None:
        lib = runtime.mkl()
        ptr, i = ctypes.c_void_p, ctypes.c_int
        scalar = ctypes.c_float if dtype == np.float32 else ctypes.c_double
        fn = getattr(lib, "cblas_sgemm" if dtype == np.float32 else "cblas_dgemm")
        fn.restype = None
        fn.argtypes = [i, i, i, i, i, i, scalar, ptr, i, ptr, i, scalar, ptr, i]
        _fns[dtype] = fn
    return fn


def takes(a, b) -> bool:
    """Whether MKL is loaded and takes these operands' type (NumPy matrices of one float
    dtype)."""
    return (type(a) is np.ndarray and type(b) is np.ndarray and a.dtype in FLOATS
            and b.dtype == a.dtype and a.ndim == 2 and b.ndim == 2 and runtime.mkl_loaded())


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


def gemm(a, b, out, beta: float) -> None:
    """``out = a @ b + beta * out`` by MKL (loaded: ``takes(a, b)``), for ``out`` of the
    product's shape and dtype with unit-stride rows, not overlapping ``a`` or ``b``."""
    m, k = a.shape
    n = b.shape[1]
    ta, lda, a = _operand(a)
    tb, ldb, b = _operand(b)
    ldc = out.strides[0] // out.itemsize if m > 1 else max(n, 1)
    _gemm_fn(a.dtype)(_ROW_MAJOR, ta, tb, m, n, k, 1.0, a.ctypes.data, lda, b.ctypes.data,
                      ldb, beta, out.ctypes.data, ldc)


def _pack_fn(dtype):
    fns = _pack_fns.get(dtype)
    if fns is None:
        lib = runtime.mkl()
        ptr, i = ctypes.c_void_p, ctypes.c_int
        scalar = ctypes.c_float if dtype == np.float32 else ctypes.c_double
        p = "cblas_sgemm_" if dtype == np.float32 else "cblas_dgemm_"
        size, pack_, compute = (getattr(lib, p + name)
                                for name in ("pack_get_size", "pack", "compute"))
        size.restype, size.argtypes = ctypes.c_size_t, [i, i, i, i]
        pack_.restype, pack_.argtypes = None, [i, i, i, i, i, i, scalar, ptr, i, ptr]
        compute.restype = None
        compute.argtypes = [i, i, i, i, i, i, ptr, i, ptr, i, scalar, ptr, i]
        fns = _pack_fns[dtype] = (size, pack_, compute)
    return fns


class Packed:
    """The right operand ``b`` (k, n) of products ``a @ b`` stored once in MKL's internal
    GEMM layout, so that products reusing it (a recurrent layer's ``W_hh`` at every step,
    a frozen model's weights) skip re-packing it on each call. MKL asks that the buffer
    never moves (it is a NumPy array this object owns) and that packing and products use
    the same thread count: ``threads`` records the count at packing time."""

    __slots__ = ("k", "n", "dtype", "threads", "buffer")

    def __init__(self, b):
        self.k, self.n = b.shape
        self.dtype = b.dtype
        self.threads = get_num_threads()
        size, pack_, _ = _pack_fn(b.dtype)
        nbytes = size(_B_MATRIX, 1, self.n, self.k)
        self.buffer = np.empty(-(-nbytes // b.itemsize), b.dtype)
        tb, ldb, b = _operand(b)
        # m is not part of B's packed layout (MKL sizes it the same for any m): 1 here.
        pack_(_ROW_MAJOR, _B_MATRIX, tb, 1, self.n, self.k, 1.0, b.ctypes.data, ldb,
              self.buffer.ctypes.data)

    def __repr__(self):
        return f"Packed({self.k}x{self.n} {self.dtype}, {self.threads} threads)"


def pack(b):
    """``b`` packed for repeated ``gemm_packed`` products, or None when MKL is not loaded
    or does not take it (not a float32/float64 NumPy matrix)."""
    if not takes(b, b):
        return None
    return Packed(b)


def gemm_packed(a, packed: Packed, out, beta: float) -> None:
    """``out = a @ b + beta * out`` for the ``b`` behind ``packed``; ``a`` (m, k) of the
    packed dtype, ``out`` (m, n) with unit-stride rows, not overlapping ``a``."""
    m, k = a.shape
    if k != packed.k or a.dtype != packed.dtype or out.shape != (m, packed.n):
        raise ValueError(f"gemm_packed: a {a.shape} {a.dtype} and out {out.shape} do not "
                         f"fit a packed {packed.k}x{packed.n} {packed.dtype} operand")
    ta, lda, a = _operand(a)
    ldc = out.strides[0] // out.itemsize if m > 1 else max(packed.n, 1)
    _pack_fn(a.dtype)[2](_ROW_MAJOR, ta, _PACKED, m, packed.n, k, a.ctypes.data, lda,
                         packed.buffer.ctypes.data, packed.k, beta, out.ctypes.data, ldc)
