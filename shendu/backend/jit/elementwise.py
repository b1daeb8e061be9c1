"""Elementwise kernels over flat (1-D, contiguous) arrays."""
from __future__ import annotations

from numba import njit, prange

# Every kernel: compiled once per dtype and cached on disk, GIL released, no Python
# exception checks in the arithmetic, loops marked prange split over numba's threads.
KERNEL = dict(nogil=True, cache=True, error_model="numpy", parallel=True)


@njit(nogil=True, cache=True, fastmath={"reassoc", "nsz"})
def vector_sum(a):
    """Sum of a 1-D array, reassociated so that it vectorises (NaN and inf propagate)."""
    total = a.dtype.type(0)
    for j in range(a.size):
        total += a[j]
    return total


@njit(**KERNEL)
def relu_forward(x, out):
    """``out = max(x, 0)``; a NaN stays NaN, as with ``np.maximum``."""
    for i in prange(x.size):
        v = x[i]
        out[i] = 0 if v <= 0 else v


@njit(**KERNEL)
def relu_backward(g, y, out):
    """``out = g where y > 0 else 0`` for the ReLU's output ``y`` (PyTorch's rule: a NaN
    gradient at a unit that is off is dropped)."""
    for i in prange(g.size):
        out[i] = g[i] if y[i] > 0 else 0


@njit(**KERNEL)
def bias_relu_rows(out, b):
    """``out = max(out + b, 0)`` in place for (M, N) ``out`` with unit-stride rows, ``b`` a
    row vector (or empty: no bias)."""
    m, n = out.shape
    for i in prange(m):
        row = out[i]
        if b.size:
            for j in range(n):
                v = row[j] + b[j]
                row[j] = 0 if v <= 0 else v
        else:
            for j in range(n):
                v = row[j]
                row[j] = 0 if v <= 0 else v


@njit(**KERNEL)
def fill_rows(out, b):
    """Every row of (M, N) ``out`` set to the row vector ``b``."""
    m, n = out.shape
    for i in prange(m):
        row = out[i]
        for j in range(n):
            row[j] = b[j]


@njit(**KERNEL)
def column_sums(a, parts, threads):
    """The column sums of (M, N) ``a``: thread t adds its block of rows into
    ``parts[t]`` (threads, N); the caller sums the parts."""
    m, n = a.shape
    for t in prange(threads):
        acc = parts[t]
        acc[:] = 0
        for i in range(t * m // threads, (t + 1) * m // threads):
            row = a[i]
            for j in range(n):
                acc[j] += row[j]
