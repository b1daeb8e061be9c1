"""Scaled dot-product attention, forward and backward, one (batch, head) pair at a time.

The NumPy reference (``backend.cpu.attention``) runs batched products over the whole
(B, H, L, S) score array and then four or five passes of softmax arithmetic over it, each
on one thread. Here each thread takes a share of the B*H pairs and, per pair, calls MKL's
single-threaded GEMM on the strided (L, D) blocks of q, k and v as they lie in memory (the
heads of a ``(N, L, 3E)`` projection are read in place, never copied), and does the mask,
softmax and gradient arithmetic on an (L, S) block that stays in cache.

The probabilities ``p`` (B, H, L, S) are kept for the backward pass:

    dv = p^T do,   dp = do v^T,   ds = p * (dp - rowsum(dp * p)),
    dq = scale * ds k,   dk = scale * ds^T q.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .elementwise import HELPER, kernel
from .elementwise import vector_sum as _sum
from .mkl import _ROW, N, T, _dgemm, _layout, _sgemm, exp_into
from .mkl import threads_here as _mkl_threads_here


@njit(**HELPER)
def _gemm(a, ta, b, tb, c, alpha, beta):
    """``c = alpha * op(a) @ op(b) + beta * c`` for 2-D blocks with unit-stride rows
    (``ta``/``tb``: transpose the block first)."""
    la, lda = _layout(a)
    lb, ldb = _layout(b)
    if ta:
        la = T if la == N else N
    if tb:
        lb = T if lb == N else N
    m = a.shape[1] if ta else a.shape[0]
    k = a.shape[0] if ta else a.shape[1]
    n = b.shape[0] if tb else b.shape[1]
    ldc = c.strides[0] // c.itemsize if m > 1 else max(n, 1)
    if a.itemsize == 8:
        _dgemm(_ROW, la, lb, m, n, k, alpha, a.ctypes.data, lda, b.ctypes.data, ldb, beta,
               c.ctypes.data, ldc)
    else:
        _sgemm(_ROW, la, lb, m, n, k, alpha, a.ctypes.data, lda, b.ctypes.data, ldb, beta,
               c.ctypes.data, ldc)


@njit(**HELPER)
def _softmax_row(row, mask_row, use_mask, width):
    """``row[:width] = softmax(row[:width] + mask_row[:width])`` in place (the mask only
    when ``use_mask``), ``row[width:] = 0`` (the causally hidden positions). A row whose
    every entry is -inf becomes NaN, as ``exp(x - max(x))`` makes it."""
    if use_mask:
        for j in range(width):
            row[j] += mask_row[j]
    m = row.dtype.type(-np.inf)
    for j in range(width):
        v = row[j]
        m = v if v > m else m
    for j in range(width):
        row[j] = row[j] - m
    head = row[:width]
    exp_into(head, head)
    inv = row.dtype.type(1) / _sum(head)
    for j in range(width):
        row[j] = row[j] * inv
    for j in range(width, row.size):
        row[j] = 0


# Rows per block of a causal attention: a block of rows needs the keys up to its last
# row only, so the products skip the hidden upper triangle block by block (5/8 of the work
# of the full products at L = 128).
CAUSAL_BLOCK = 32


@njit(**HELPER)
def _zero(a):
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            a[i, j] = 0


@kernel
def attention_forward(q, k, v, mask, use_mask, causal, scale, p, o, threads):
    """For (B, H, L, D) ``q``, (B, H, S, D) ``k``, (B, H, S, Dv) ``v`` whose (L, D) blocks
    have unit-stride rows: ``p = softmax(scale * q k^T + mask)`` (B, H, L, S), with the
    positions after the diagonal hidden when ``causal``, and ``o = p v`` (B, H, L, Dv).
    ``mask`` is (B, H, L, S) (broadcast views welcome), added when ``use_mask``; on
    ``threads`` threads."""
    bsz, heads, lq, _ = q.shape
    lk = k.shape[2]
    jobs = bsz * heads
    blk = CAUSAL_BLOCK if causal else lq
    for t in prange(threads):
        before = _mkl_threads_here(1)
        for job in range(t * jobs // threads, (t + 1) * jobs // threads):
            b, h = job // heads, job % heads
            pb, qb, kb, vb, ob = p[b, h], q[b, h], k[b, h], v[b, h], o[b, h]
            for r0 in range(0, lq, blk):
                r1 = min(lq, r0 + blk)
                cols = min(r1, lk) if causal else lk  # the keys these rows may see
                _gemm(qb[r0:r1], False, kb[:cols], True, pb[r0:r1, :cols], scale, 0.0)
                for i in range(r0, r1):
                    width = min(i + 1, lk) if causal else lk
                    _softmax_row(pb[i], mask[b, h, i], use_mask, width)
                _gemm(pb[r0:r1, :cols], False, vb[:cols], False, ob[r0:r1], 1.0, 0.0)
        _mkl_threads_here(before)


@kernel
def attention_backward(go, q, k, v, p, causal, scale, dq, dk, dv, needs_q, needs_k,
                       needs_v, threads):
    """The gradients of :func:`attention_forward` from ``go`` (B, H, L, Dv) and the kept
    ``p``: into ``dq``, ``dk``, ``dv`` (shaped like q, k, v, unit-stride rows) where
    ``needs_*`` says so; ``causal`` as in the forward (``p`` is 0 above the diagonal)."""
    bsz, heads, lq, _ = q.shape
    lk = k.shape[2]
    jobs = bsz * heads
    blk = CAUSAL_BLOCK if causal else lq
    for t in prange(threads):
        before = _mkl_threads_here(1)
        ds = np.empty((lq, lk), q.dtype)
        for job in range(t * jobs // threads, (t + 1) * jobs // threads):
            b, h = job // heads, job % heads
            pb, gb, qb, kb, vb = p[b, h], go[b, h], q[b, h], k[b, h], v[b, h]
            for r0 in range(0, lq, blk):
                r1 = min(lq, r0 + blk)
                cols = min(r1, lk) if causal else lk
                # dk and dv sum over the row blocks: the first one writes (and zeroes the
                # rows no block reaches yet), the later ones add
                beta = 0.0 if r0 == 0 else 1.0
                if needs_v:
                    _gemm(pb[r0:r1, :cols], True, gb[r0:r1], False, dv[b, h][:cols], 1.0,
                          beta)
                    if r0 == 0:
                        _zero(dv[b, h][cols:])
                if not (needs_q or needs_k):
                    continue
                d = ds[r0:r1, :cols]
                _gemm(gb[r0:r1], False, vb[:cols], True, d, 1.0, 0.0)
                for i in range(r1 - r0):
                    prow, drow = pb[r0 + i], d[i]
                    dot = q.dtype.type(0)
                    for j in range(cols):
                        dot += prow[j] * drow[j]
                    for j in range(cols):
                        drow[j] = prow[j] * (drow[j] - dot)
                if needs_q:
                    _gemm(d, False, kb[:cols], False, dq[b, h][r0:r1], scale, 0.0)
                if needs_k:
                    _gemm(d, True, qb[r0:r1], False, dk[b, h][:cols], scale, beta)
                    if r0 == 0:
                        _zero(dk[b, h][cols:])
        _mkl_threads_here(before)
