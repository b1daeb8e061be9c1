"""Softmax cross-entropy over the rows of (M, C) scores (``shendu/ops/nn_ops.py``).

For a language model the scores over the vocabulary are the largest array of a step
(1120 x 10000 for the LSTM benchmark). The NumPy path makes an ``exp`` pass, a row-sum
pass and, in backward, a scaling pass, each on one thread. ``softmax_rows`` does the
first two row by row on every thread, with MKL's vector ``exp`` (VML, faster than
NumPy's single-threaded ``exp``; numba's own ``exp`` is a scalar library call per
element); ``scale_rows`` does the third. Needs MKL.

The shift is chosen as on the NumPy path (``backend.cpu.exp_rows``): none when the row's sum
of ``exp(x)`` is finite and large enough that what underflowed is below its precision
(the usual case for logits: ``x`` is read once), else the row's finite maximum.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .elementwise import HELPER, kernel
from .elementwise import vector_sum as _sum
from .mkl import exp_into
from .mkl import threads_here as _mkl_threads_here


@njit(**HELPER)
def _shift_exp_sum(row, out, least):
    """``(m, s)`` with ``out = exp(row - m)`` and ``s`` its sum: ``m = 0`` when that sum is
    finite and at least ``least``, else the row's finite maximum (0 when it has none)."""
    exp_into(row, out)
    total = _sum(out)
    if total < np.inf and total >= least:
        return row.dtype.type(0), total
    m = row.dtype.type(-np.inf)
    for j in range(row.size):
        v = row[j]
        m = v if v > m else m
    if not (m > -np.inf and m < np.inf):
        m = row.dtype.type(0)  # a row of infinities (or -inf only): not shifted
    for j in range(row.size):
        out[j] = row[j] - m
    exp_into(out, out)
    return m, _sum(out)


@kernel
def softmax_rows(x, e, m, s, least, threads):
    """For C-contiguous (M, C) ``x``: ``e = exp(x - m)``, ``m`` (M,) the shifts and ``s``
    the row sums of ``e``, so that ``log_softmax = x - m - log(s)`` and ``softmax =
    e / s``; ``least``: the smallest row sum taken unshifted; on ``threads`` threads."""
    rows = x.shape[0]
    for t in prange(threads):
        before = _mkl_threads_here(1)
        for i in range(t * rows // threads, (t + 1) * rows // threads):
            m[i], s[i] = _shift_exp_sum(x[i], e[i], least)
        _mkl_threads_here(before)


@kernel
def scale_rows(e, c):
    """``e[i] *= c[i]`` in place for (M, C) ``e``."""
    for i in prange(e.shape[0]):
        row = e[i]
        k = c[i]
        for j in range(row.size):
            row[j] = row[j] * k
