"""MKL's GEMM called from compiled code: from the kernels (``conv.py``) and, for its lower
call overhead (a fraction of a ctypes call's), from ``backend.cpu.matmul``.

The routines are linked by name from the ``libmkl_rt`` that ``backend.runtime`` loaded;
they are only called when it did (``runtime.mkl_loaded()``).
"""
from __future__ import annotations

import llvmlite.binding as llvm
import numba
from numba import njit, types

from .. import runtime
from .elementwise import HELPER, kernel_opt_level

_ROW, N, T = 101, 111, 112  # CBLAS row-major, no-transpose, transpose
_PACKED = 151  # CBLAS_PACKED: the right operand is a ``blas.Packed`` buffer

if runtime.mkl_path():
    llvm.load_library_permanently(runtime.mkl_path())  # cblas_?gemm resolve by name from here on
_i, _p = types.int32, types.intp
_sgemm = types.ExternalFunction("cblas_sgemm", types.void(
    _i, _i, _i, _i, _i, _i, types.float32, _p, _i, _p, _i, types.float32, _p, _i))
_dgemm = types.ExternalFunction("cblas_dgemm", types.void(
    _i, _i, _i, _i, _i, _i, types.float64, _p, _i, _p, _i, types.float64, _p, _i))
# products with a right operand packed by ``blas.pack`` (cblas_?gemm_pack)
_sgemm_compute = types.ExternalFunction("cblas_sgemm_compute", types.void(
    _i, _i, _i, _i, _i, _i, _p, _i, _p, _i, types.float32, _p, _i))
_dgemm_compute = types.ExternalFunction("cblas_dgemm_compute", types.void(
    _i, _i, _i, _i, _i, _i, _p, _i, _p, _i, types.float64, _p, _i))
# A kernel's per-thread GEMMs must run on that thread alone. With nested OpenMP (which
# numba turns on, and ``jit._no_nested_openmp`` turns off again) MKL started a team of
# its own per call, which made small products many times slower; the kernels also say
# so to MKL directly.
threads_here = types.ExternalFunction("MKL_Set_Num_Threads_Local", _i(_i))


# MKL's vector math (VML): exp of n values (in place allowed), to half an ulp or so
vsexp = types.ExternalFunction("vsExp", types.void(_i, _p, _p))
vdexp = types.ExternalFunction("vdExp", types.void(_i, _p, _p))
# tanh (the LSTM's gates and cell), to within an ulp (measured: 0.56 ulp float32)
vstanh = types.ExternalFunction("vsTanh", types.void(_i, _p, _p))
vdtanh = types.ExternalFunction("vdTanh", types.void(_i, _p, _p))
# and erf (GELU)
vserf = types.ExternalFunction("vsErf", types.void(_i, _p, _p))
vderf = types.ExternalFunction("vdErf", types.void(_i, _p, _p))


@njit(**HELPER)
def exp_into(a, out):
    """``out = exp(a)`` for contiguous 1-D float arrays of one size (``out`` may be ``a``),
    by MKL's vector math (faster than NumPy's ``exp``; numba's is a scalar call per
    element)."""
    if a.itemsize == 8:
        vdexp(a.size, a.ctypes.data, out.ctypes.data)
    else:
        vsexp(a.size, a.ctypes.data, out.ctypes.data)


@njit(**HELPER)
def tanh_at(a, start, n, out, out_start):
    """``out.flat[out_start:out_start + n] = tanh(a.flat[start:start + n])`` for C-contiguous
    float arrays of one dtype (``out`` may be ``a``), by MKL's vector math. Offsets rather
    than views: views made inside a kernel's ``prange`` loop count as aliases of its arrays,
    and numba then leaves out the ``noalias`` its loops need to vectorise."""
    item = a.itemsize
    src, dst = a.ctypes.data + start * item, out.ctypes.data + out_start * item
    if item == 8:
        vdtanh(n, src, dst)
    else:
        vstanh(n, src, dst)


@njit(**HELPER)
def erf_into(a, out):
    """``out = erf(a)``, as :func:`exp_into` (MKL's vector math; ``out`` may be ``a``)."""
    if a.itemsize == 8:
        vderf(a.size, a.ctypes.data, out.ctypes.data)
    else:
        vserf(a.size, a.ctypes.data, out.ctypes.data)


def mkl_gemm_available() -> bool:
    """The kernels that call MKL need it loaded."""
    return runtime.mkl_loaded()


@njit(**HELPER)
def gemm_raw(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc):
    """``c = op(a) @ op(b) + beta * c`` on the arrays' first elements (their dtype picks
    MKL's single or double precision routine)."""
    if a.itemsize == 8:
        _dgemm(_ROW, ta, tb, m, n, k, 1.0, a.ctypes.data, lda, b.ctypes.data, ldb, beta,
               c.ctypes.data, ldc)
    else:
        _sgemm(_ROW, ta, tb, m, n, k, 1.0, a.ctypes.data, lda, b.ctypes.data, ldb, beta,
               c.ctypes.data, ldc)


@njit(**HELPER)
def _layout(a):
    """``(trans, ld)`` passing matrix ``a`` to row-major CBLAS without a copy, or
    ``(-1, 0)`` when neither it nor its transpose has unit-stride rows."""
    m, k = a.shape
    s0, s1 = a.strides[0] // a.itemsize, a.strides[1] // a.itemsize
    if (s1 == 1 or k == 1) and a.strides[0] % a.itemsize == 0:
        ld = s0 if m > 1 else k
        if ld >= max(k, 1):
            return N, ld
    if (s0 == 1 or m == 1) and a.strides[1] % a.itemsize == 0:
        ld = s1 if k > 1 else m
        if ld >= max(m, 1):
            return T, ld
    return -1, 0


@njit(nogil=True, cache=True)
def _gemm_any(a, b, out, beta):
    """``gemm`` compiled for matrices of any layout ('A'), one version per dtype."""
    m, k = a.shape
    n = b.shape[1]
    ta, lda = _layout(a)
    tb, ldb = _layout(b)
    if ta < 0 or tb < 0:
        return False
    ldc = out.strides[0] // out.itemsize if m > 1 else max(n, 1)
    gemm_raw(ta, tb, m, n, k, a, lda, b, ldb, beta, out, ldc)
    return True


_ready: set = set()  # dtypes _gemm_any has its one version for


def gemm(a, b, out, beta):
    """``out = a @ b + beta * out`` for matrices of one float dtype; ``out`` has unit-stride
    rows. Returns False (doing nothing) when ``a`` or ``b`` must be copied first.

    Compiled once per dtype for any memory layout: numba would otherwise compile a version
    for every combination of C- and Fortran-ordered operands a training step meets (three
    in LeNet's first step), each as long to compile as this one."""
    if a.dtype not in _ready:
        arr = types.Array(numba.from_dtype(a.dtype), 2, "A")
        _gemm_any.disable_compile(False)
        try:
            with kernel_opt_level():
                _gemm_any.compile((arr, arr, arr, types.float64))
        finally:
            _gemm_any.disable_compile()  # other layouts convert to this version
        _ready.add(a.dtype)
    return _gemm_any(a, b, out, beta)


@njit(**HELPER)
def gemm_packed_raw(a, buffer, k, n, out, beta):
    """``out = a @ b + beta * out`` for the (k, n) ``b`` packed in ``buffer`` (a
    ``blas.Packed``'s); ``out`` has unit-stride rows. Returns False (doing nothing) when
    ``a`` must be copied first."""
    m = a.shape[0]
    ta, lda = _layout(a)
    if ta < 0:
        return False
    ldc = out.strides[0] // out.itemsize if m > 1 else max(n, 1)
    if a.itemsize == 8:
        _dgemm_compute(_ROW, ta, _PACKED, m, n, k, a.ctypes.data, lda, buffer.ctypes.data,
                       k, beta, out.ctypes.data, ldc)
    else:
        _sgemm_compute(_ROW, ta, _PACKED, m, n, k, a.ctypes.data, lda, buffer.ctypes.data,
                       k, beta, out.ctypes.data, ldc)
    return True


@njit(**HELPER)
def gemm_at(a, a_start, m, b, k, n, out, out_start, beta):
    """Rows ``a_start // k ..`` of the C-contiguous (., k) ``a``: ``m`` of them times the
    C-contiguous (k, n) ``b``, into (``beta`` 0) or onto (1) the rows of the C-contiguous
    (., n) ``out`` from flat offset ``out_start``. Offsets rather than views, as
    ``tanh_at``."""
    src = a.ctypes.data + a_start * a.itemsize
    dst = out.ctypes.data + out_start * out.itemsize
    if a.itemsize == 8:
        _dgemm(_ROW, N, N, m, n, k, 1.0, src, k, b.ctypes.data, n, beta, dst, n)
    else:
        _sgemm(_ROW, N, N, m, n, k, 1.0, src, k, b.ctypes.data, n, beta, dst, n)


@njit(nogil=True, cache=True)
def _gemm_packed_any(a, buffer, k, n, out, beta):
    """``gemm_packed`` compiled for any layout of ``a`` and ``out`` ('A'), per dtype."""
    return gemm_packed_raw(a, buffer, k, n, out, beta)


_packed_ready: set = set()  # dtypes _gemm_packed_any has its one version for


def gemm_packed(a, packed, out, beta):
    """``out = a @ b + beta * out`` for the ``b`` behind ``packed`` (a ``blas.Packed``):
    ``blas.gemm_packed`` at the call overhead of compiled code, for the per-step products
    of the recurrent layers. The caller has checked the shapes and dtypes (``out`` has
    unit-stride rows and does not overlap ``a``). Returns False (doing nothing) when ``a``
    must be copied first."""
    if a.dtype not in _packed_ready:
        arr = types.Array(numba.from_dtype(a.dtype), 2, "A")
        vec = types.Array(numba.from_dtype(a.dtype), 1, "C")
        _gemm_packed_any.disable_compile(False)
        try:
            with kernel_opt_level():
                _gemm_packed_any.compile((arr, vec, types.intp, types.intp, arr, types.float64))
        finally:
            _gemm_packed_any.disable_compile()
        _packed_ready.add(a.dtype)
    return _gemm_packed_any(a, packed.buffer, packed.k, packed.n, out, beta)
