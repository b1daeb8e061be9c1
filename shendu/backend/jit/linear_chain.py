"""A chain of Linear layers (each with its bias and an optional ReLU) for inference, the
rows of the batch split between the threads.

Each thread takes a block of rows through the whole chain on its own: a one-thread GEMM
per layer, then the bias and the ReLU over its block while it is still in cache. There is
no barrier between layers (a row's next activation needs only that row), and each thread's
GEMMs read the weights in MKL's packed layout (``cblas_?gemm_pack``, made once per weight
by the caller with one thread, as these products run), so no product re-packs them.
Against MKL's own threading of each product (both threads on every GEMM, a join after
each, the weights re-packed by every call) this is what makes a compiled MLP's inference
faster than the GEMMs run one by one (``shendu.jit.chain``).
"""
from __future__ import annotations

from numba import njit, prange, types

from .elementwise import HELPER, kernel
from .mkl import threads_here as _mkl_threads_here

_ROW, _NO_TRANS, _PACKED = 101, 111, 151
_i, _p = types.int32, types.intp
# out = a @ B + beta * out, B from cblas_?gemm_pack (the symbols resolve from the libmkl_rt
# that ``.mkl`` made visible to LLVM)
_scompute = types.ExternalFunction("cblas_sgemm_compute", types.void(
    _i, _i, _i, _i, _i, _i, _p, _i, _p, _i, types.float32, _p, _i))
_dcompute = types.ExternalFunction("cblas_dgemm_compute", types.void(
    _i, _i, _i, _i, _i, _i, _p, _i, _p, _i, types.float64, _p, _i))


@njit(**HELPER)
def _packed_product(a_ptr, lda, packed, m, n, k, c_ptr, ldc, itemsize):
    """``c = a @ B`` for ``m`` rows at ``a_ptr`` and the packed (k, n) ``B``."""
    if itemsize == 8:
        _dcompute(_ROW, _NO_TRANS, _PACKED, m, n, k, a_ptr, lda, packed.ctypes.data, k, 0.0,
                  c_ptr, ldc)
    else:
        _scompute(_ROW, _NO_TRANS, _PACKED, m, n, k, a_ptr, lda, packed.ctypes.data, k, 0.0,
                  c_ptr, ldc)


@njit(**HELPER)
def _bias_relu_block(out, r0, r1, b, relu):
    """Rows ``r0:r1`` of ``out`` plus the row vector ``b`` (empty: none), then a ReLU if
    ``relu`` (a NaN stays NaN, as in ``bias_relu_rows``)."""
    n = out.shape[1]
    zero = out.dtype.type(0)
    for i in range(r0, r1):
        row = out[i]
        if b.size:
            if relu:
                for j in range(n):
                    v = row[j] + b[j]
                    row[j] = zero if v <= 0 else v
            else:
                for j in range(n):
                    row[j] += b[j]
        elif relu:
            for j in range(n):
                v = row[j]
                row[j] = zero if v <= 0 else v


@kernel
def linear_chain_forward(x, lda, packs, biases, relus, outs, threads):
    """``outs[l] = act_l(outs[l-1] @ W_l.T + b_l)`` for every layer ``l`` (``outs[-1]`` is
    ``x``, ``lda`` its row stride in elements): ``packs[l]`` is ``W_l.T`` packed by
    ``cblas_?gemm_pack`` with one thread, ``biases[l]`` a row vector (empty: none),
    ``relus[l]`` whether a ReLU follows; ``outs`` are C-contiguous (m, n_l). The rows are
    split into ``threads`` blocks, each taken through every layer by one thread."""
    m = x.shape[0]
    itemsize = x.itemsize
    per = (m + threads - 1) // threads
    for t in prange(threads):
        before = _mkl_threads_here(1)
        r0 = t * per
        r1 = min(m, r0 + per)
        if r1 > r0:
            a_ptr, ld, k = x.ctypes.data + r0 * lda * itemsize, lda, x.shape[1]
            for layer in range(len(packs)):
                out = outs[layer]
                n = out.shape[1]
                c_ptr = out.ctypes.data + r0 * n * itemsize
                _packed_product(a_ptr, ld, packs[layer], r1 - r0, n, k, c_ptr, n, itemsize)
                _bias_relu_block(out, r0, r1, biases[layer], relus[layer])
                a_ptr, ld, k = c_ptr, n, n
        _mkl_threads_here(before)
