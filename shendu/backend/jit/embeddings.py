"""Word-embedding training loops: skip-gram with negative sampling and GloVe's AdaGrad,
one sparse SGD step per training example, in place (``backend/embeddings.py`` dispatches).

The NumPy references (``backend/embeddings.py``) update a mini-batch of examples at once
with ``np.add.at``: one call per array touched, a Python round trip per batch. Here each
example reads and writes only its own rows, as word2vec and GloVe's C code do, with no
temporaries; each step is exactly the reference's update for a batch of one example (the
same operations in the same order), so the two agree to rounding at ``batch_size=1``.

The loops run on one thread (``SERIAL``): each step reads rows the previous one wrote, so
the order of the steps is part of the result, and one thread keeps a seeded run
reproducible. They compile on first use for the dtypes they meet and are cached on disk.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .elementwise import HELPER, SERIAL, at_kernel_level


def _serial(fn):
    return at_kernel_level(njit(**SERIAL)(fn))


@njit(**HELPER, fastmath={"reassoc", "nsz"})
def _dot(a, b):
    """``a . b`` for 1-D arrays, reassociated so that it vectorises."""
    total = a.dtype.type(0)
    for j in range(a.size):
        total += a[j] * b[j]
    return total


@njit(inline="always")
def _sigmoid(x, half, one):
    """``0.5 (1 + tanh(x / 2))`` in ``x``'s precision, the reference's form (no overflow
    for large |x|)."""
    return half * (one + math.tanh(half * x))


@_serial
def skipgram_steps(w_in, w_out, centres, contexts, negatives, lrs):
    """For each pair ``p`` in order, one SGD step of rate ``lrs[p]`` on ``-log s(u . v_o)
    - sum_k log s(-u . v_k)`` with ``u = w_in[centres[p]]``, ``v_o = w_out[contexts[p]]``
    and ``v_k = w_out[negatives[p, k]]``: every score is taken before any row moves (a
    noise word drawn twice, or equal to the context, gets both steps, as with
    ``np.add.at``), then the output rows move, then ``u``. Returns the summed loss before
    the steps (float64)."""
    n_pairs, k = negatives.shape
    dim = w_in.shape[1]
    zero, half, one = w_in.dtype.type(0), w_in.dtype.type(0.5), w_in.dtype.type(1)
    eps = w_in.dtype.type(1e-7)
    coef = np.empty(k + 1, w_in.dtype)  # d loss / d score: the context's, then the noise's
    noise = np.empty(dim, w_in.dtype)   # sum_k coef_k v_k
    total = 0.0
    for p in range(n_pairs):
        u = w_in[centres[p]]
        vo = w_out[contexts[p]]
        lr = w_in.dtype.type(lrs[p])
        for t in range(k + 1):
            v = vo if t == 0 else w_out[negatives[p, t - 1]]
            s = _sigmoid(_dot(u, v), half, one)
            if t == 0:
                total -= math.log(s + eps)
                coef[0] = s - one
            else:
                total -= math.log(one - s + eps)
                coef[t] = s
        noise[:] = zero
        for t in range(1, k + 1):
            v = w_out[negatives[p, t - 1]]
            c = coef[t]
            for j in range(dim):
                noise[j] += c * v[j]
        for j in range(dim):  # the gradient for u, from the rows before they move
            noise[j] = coef[0] * vo[j] + noise[j]
        for t in range(k + 1):
            v = vo if t == 0 else w_out[negatives[p, t - 1]]
            c = -lr * coef[t]
            for j in range(dim):
                v[j] += c * u[j]
        for j in range(dim):
            u[j] += -lr * noise[j]
    return total


@_serial
def glove_steps(w, wc, b, bc, gw, gwc, gb, gbc, rows, cols, logx, fx, order, lr):
    """For each cell ``n = order[m]`` in turn, one AdaGrad step on ``fx[n] (w_i . wc_k +
    b_i + bc_k - logx[n])^2 / 2`` (``i = rows[n]``, ``k = cols[n]``): both gradients
    taken before either row moves, each squared gradient added to its accumulator
    (``g*``) before the step divides by its root. Returns the summed ``fx diff^2``
    (float64) before the steps."""
    dim = w.shape[1]
    rate = w.dtype.type(lr)
    total = 0.0
    for m in range(order.size):
        n = order[m]
        i, k = rows[n], cols[n]
        wi, wk = w[i], wc[k]
        diff = _dot(wi, wk) + b[i] + bc[k] - logx[n]
        total += fx[n] * diff * diff
        g = fx[n] * diff
        gwi, gwk = gw[i], gwc[k]
        for j in range(dim):
            dw, dwc = g * wk[j], g * wi[j]
            gwi[j] += dw * dw
            gwk[j] += dwc * dwc
            wi[j] += -rate * dw / math.sqrt(gwi[j])
            wk[j] += -rate * dwc / math.sqrt(gwk[j])
        gb[i] += g * g
        b[i] += -rate * g / math.sqrt(gb[i])
        gbc[k] += g * g
        bc[k] += -rate * g / math.sqrt(gbc[k])
    return total
