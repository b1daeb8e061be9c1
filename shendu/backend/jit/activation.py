"""GELU (exact, ``x * Phi(x)``) forward and backward over flat contiguous arrays.

The NumPy reference (``backend.cpu.gelu``) makes about six passes over memory, with
SciPy's ``erf`` on one thread. These kernels walk each thread's share of the array in
blocks that stay in the L1 cache, with MKL's vector ``erf`` and ``exp`` (VML) on each
block: one read of ``x`` (and ``g``), one write of the result. Needs MKL.
"""
from __future__ import annotations

import math

import numpy as np
from numba import prange

from .elementwise import kernel
from .mkl import erf_into, exp_into
from .mkl import threads_here as _mkl_threads_here

# Elements per block: three blocks of float64 stay well inside a 32 KiB L1 cache.
GELU_BLOCK = 1024
_INV_SQRT2 = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


@kernel
def gelu_forward(x, out, threads):
    """``out = x/2 * (1 + erf(x / sqrt(2)))`` for 1-D contiguous ``x``, on ``threads``."""
    n = x.size
    half, one, c = x.dtype.type(0.5), x.dtype.type(1), x.dtype.type(_INV_SQRT2)
    for t in prange(threads):
        before = _mkl_threads_here(1)
        buf = np.empty(GELU_BLOCK, x.dtype)
        for s in range(t * n // threads, (t + 1) * n // threads, GELU_BLOCK):
            m = min(GELU_BLOCK, (t + 1) * n // threads - s)
            b = buf[:m]
            for j in range(m):
                b[j] = x[s + j] * c
            erf_into(b, b)
            for j in range(m):
                out[s + j] = half * x[s + j] * (one + b[j])
        _mkl_threads_here(before)


@kernel
def gelu_backward(g, x, out, threads):
    """``out = g * (Phi(x) + x * phi(x))``, the gradient through GELU at ``x``."""
    n = x.size
    half, one = x.dtype.type(0.5), x.dtype.type(1)
    c, d = x.dtype.type(_INV_SQRT2), x.dtype.type(_INV_SQRT_2PI)
    for t in prange(threads):
        before = _mkl_threads_here(1)
        cdf = np.empty(GELU_BLOCK, x.dtype)
        pdf = np.empty(GELU_BLOCK, x.dtype)
        for s in range(t * n // threads, (t + 1) * n // threads, GELU_BLOCK):
            m = min(GELU_BLOCK, (t + 1) * n // threads - s)
            a, e = cdf[:m], pdf[:m]
            for j in range(m):
                v = x[s + j]
                a[j] = v * c
                e[j] = -half * v * v
            erf_into(a, a)
            exp_into(e, e)
            for j in range(m):
                v = x[s + j]
                out[s + j] = g[s + j] * (half * (one + a[j]) + v * d * e[j])
        _mkl_threads_here(before)
