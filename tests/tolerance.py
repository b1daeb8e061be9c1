"""Tolerances for results that sum the same terms in a different order.

Two BLAS builds (MKL on an Intel Xeon, OpenBLAS on an AMD EPYC), a compiled kernel and
NumPy, or one thread and two, each add the products of a matrix product in their own
order. Those results differ, and by how much follows from the arithmetic, not from what
one CPU happened to give: a sum of ``n`` terms computed in floating point with unit
roundoff ``u = eps / 2`` is within ``(n - 1) * u * sum|term|`` of the exact sum (the
classic recursive-summation bound, which also covers pairwise and blocked orders), so two
orders differ by at most ``(n - 1) * eps * sum|term|``. The helpers below use
``(n + 2) * eps * sum|term|``: the sum bound plus the final rounding of each result and of
a bias or accumulated ``out`` added after it. Exact claims that run one path twice (a
resumed training run) stay exact; these are for comparing different paths.
"""
from __future__ import annotations

import numpy as np


def sum_bound(n_terms, scale, dtype):
    """Largest difference between two evaluation orders of sums of ``n_terms`` terms
    whose absolute values add up to ``scale`` (an array or a number), in ``dtype``."""
    info = np.finfo(dtype)
    return (n_terms + 2) * float(info.eps) * np.asarray(scale, np.float64) + float(info.tiny)


def assert_sums_close(got, want, n_terms, scale, dtype=None, err_msg=""):
    """``got`` and ``want`` hold the same sums (at most ``n_terms`` terms each, absolute
    values adding up to ``scale``) computed in different orders, or one of them exactly."""
    got, want = np.asarray(got), np.asarray(want)
    dtype = np.dtype(dtype or got.dtype)
    assert got.shape == want.shape, f"shapes {got.shape} and {want.shape} differ {err_msg}"
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    bound = np.broadcast_to(sum_bound(n_terms, scale, dtype), err.shape)
    bad = ~(err <= bound)
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, err - bound, -np.inf)), err.shape)
        raise AssertionError(
            f"{bad.sum()} of {err.size} elements differ by more than reassociation allows "
            f"({n_terms} terms, {dtype}): at {i} got {got[i]!r}, want {want[i]!r}, "
            f"difference {err[i]:.3g} over a bound of {bound[i]:.3g}. {err_msg}")


def matmul_scale(a, b):
    """``|a| @ |b|`` in float64: the sum of the absolute products of each entry."""
    return np.abs(np.asarray(a, np.float64)) @ np.abs(np.asarray(b, np.float64))


def assert_matmul_close(got, a, b, bias=None, dtype=None, err_msg=""):
    """``got`` is ``a @ b (+ bias)`` up to the reassociation of its ``k`` products,
    measured against the product taken in float64."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    want = a64 @ b64
    scale = matmul_scale(a, b)
    if bias is not None:
        want = want + np.asarray(bias, np.float64)
        scale = scale + np.abs(np.asarray(bias, np.float64))
    assert_sums_close(got, want, a64.shape[-1], scale, dtype or np.asarray(got).dtype, err_msg)
