"""Word-embedding updates (``shendu/text/embeddings.py``): one dispatch function per model,
which runs the compiled loop (``jit/embeddings.py``, one sparse step per training example,
as word2vec's C code does) or the NumPy reference written here (one sparse step per
mini-batch of examples, ``np.add.at`` accumulating the rows a batch repeats).

The two do the same update for a batch of one example, so at ``batch_size=1`` they agree
to rounding (tests/text/test_text_embeddings.py). With larger batches the NumPy path takes
each batch's gradient at the rows as they were before the batch: different numbers, the
same objective. The kernel takes C-contiguous NumPy float32/float64 arrays when the
kernels are on; each call is reported to ``runtime.trace_paths()`` as
``('skipgram' | 'glove', 'numba' | 'numpy')``.

>>> import numpy as np
>>> from shendu.backend import embeddings, runtime
>>> w_in, w_out = np.full((3, 2), 0.5), np.zeros((3, 2))
>>> with runtime.trace_paths() as log:
...     loss = embeddings.skipgram_steps(w_in, w_out, np.array([0]), np.array([1]),
...                                      np.array([[2]]), np.array([0.1]), batch_size=1)
>>> round(loss, 4), w_out[1].tolist(), log[0][0]
(1.3863, [0.025, 0.025], 'skipgram')
"""
from __future__ import annotations

import numpy as np

from . import jit
from .cpu import _note

__all__ = ["skipgram_steps", "skipgram_update", "glove_steps", "glove_update"]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * x))  # no overflow for large |x|


def _kernel_takes(floats, ints) -> bool:
    return (jit.on_all(*floats) and all(a.flags.c_contiguous for a in floats + ints)
            and all(type(a) is np.ndarray and a.dtype.kind == "i" for a in ints))


def _check_ids(op: str, name: str, ids, limit: int) -> None:
    """The compiled loops index without bounds checks: refuse ids outside [0, limit)."""
    if ids.size and (ids.min() < 0 or ids.max() >= limit):
        raise IndexError(f"{op}: {name} must lie in [0, {limit}), got values from "
                         f"{ids.min()} to {ids.max()}")


def _check_lengths(op: str, **arrays) -> None:
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{op}: expected one entry per example, got lengths {lengths}")


def skipgram_steps(w_in, w_out, centres, contexts, negatives, lrs, batch_size: int,
                   rng: np.random.Generator | None = None) -> float:
    """Skip-gram with negative sampling over ``len(centres)`` (centre, context) pairs,
    in place: pair ``p`` pulls ``w_in[centres[p]]`` and ``w_out[contexts[p]]`` together
    and pushes it from ``w_out[negatives[p]]`` (K noise words) at learning rate
    ``lrs[p]``. Returns the summed loss (each pair's before its step).

    The kernel steps after every pair, in order. The NumPy reference steps after every
    ``batch_size`` pairs, the ``b``-th batch at rate ``lrs[b * batch_size]``; with
    ``rng`` and ``batch_size > 1`` its batches are drawn from the pairs in a random order
    (``rng.permutation``): consecutive pairs share words (one sentence's), and a batch of
    them sums many steps on the same rows, which diverged on small vocabularies."""
    op = "skipgram_steps"
    if w_in.shape != w_out.shape or w_in.ndim != 2 or negatives.ndim != 2:
        raise ValueError(f"{op}: expected input and output vectors of one (V, D) shape and "
                         f"(P, K) negatives, got {w_in.shape}, {w_out.shape} and "
                         f"{negatives.shape}")
    _check_lengths(op, centres=centres, contexts=contexts, negatives=negatives, lrs=lrs)
    for name, ids in (("centres", centres), ("contexts", contexts), ("negatives", negatives)):
        _check_ids(op, name, ids, w_in.shape[0])
    if _kernel_takes((w_in, w_out), (centres, contexts, negatives)):
        _note("skipgram", "numba")
        return float(jit.skipgram_steps(w_in, w_out, centres, contexts, negatives,
                                        np.ascontiguousarray(lrs, dtype=np.float64)))
    _note("skipgram", "numpy")
    order = (rng.permutation(len(centres)) if rng is not None and batch_size > 1
             else np.arange(len(centres)))
    total = 0.0
    for b in range(0, len(centres), batch_size):
        batch = order[b:b + batch_size]
        total += skipgram_update(w_in, w_out, centres[batch], contexts[batch],
                                 negatives[batch], float(lrs[b])) * batch.size
    return total


def skipgram_update(w_in, w_out, c, o, neg, lr) -> float:
    """One sparse SGD step on ``-log s(u.v_o) - sum log s(-u.v_neg)`` summed over a batch
    (``u = w_in[c]``, (B,); ``o`` (B,); ``neg`` (B, K)), every gradient taken before any
    row moves; returns the batch's mean loss before the step."""
    u, vo, vn = w_in[c], w_out[o], w_out[neg]            # (B,D) (B,D) (B,K,D)
    sp = _sigmoid(np.einsum("bd,bd->b", u, vo))
    sn = _sigmoid(np.einsum("bd,bkd->bk", u, vn))
    gp, gn = sp - 1, sn                                   # d loss / d score
    grad_u = gp[:, None] * vo + np.einsum("bk,bkd->bd", gn, vn)
    np.add.at(w_out, o, -lr * gp[:, None] * u)
    np.add.at(w_out, neg.ravel(), (-lr * gn[..., None] * u[:, None]).reshape(-1, u.shape[1]))
    np.add.at(w_in, c, -lr * grad_u)
    eps = 1e-7
    return float(-(np.log(sp + eps).mean() + np.log(1 - sn + eps).sum(1).mean()))


def glove_steps(params, accumulators, rows, cols, logx, fx, order, lr: float,
                batch_size: int) -> float:
    """GloVe's AdaGrad over the co-occurrence cells ``order`` lists, in place:
    ``params = (w, wc, b, bc)`` (word and context vectors and biases), ``accumulators``
    their summed squared gradients; cell ``n`` weighs ``(w_i . wc_k + b_i + bc_k -
    logx[n])^2`` by ``fx[n]`` (``i = rows[n]``, ``k = cols[n]``). The kernel steps after
    every cell; the NumPy reference after every ``batch_size`` cells. Returns the summed
    weighted loss (each cell's before its step)."""
    op = "glove_steps"
    _check_lengths(op, rows=rows, cols=cols, logx=logx, fx=fx)
    _check_ids(op, "rows", rows, params[0].shape[0])
    _check_ids(op, "cols", cols, params[1].shape[0])
    _check_ids(op, "order", order, len(rows))
    indices = (rows, cols, order)
    if _kernel_takes((*params, *accumulators, logx, fx), indices):
        _note("glove", "numba")
        return float(jit.glove_steps(*params, *accumulators, *indices[:2], logx, fx,
                                     order, lr))
    _note("glove", "numpy")
    total = 0.0
    for s in range(0, order.size, batch_size):
        total += glove_update(params, accumulators, rows, cols, logx, fx,
                              order[s:s + batch_size], lr)
    return total


def glove_update(params, accumulators, rows, cols, logx, fx, cells, lr: float) -> float:
    """One AdaGrad step on the weighted loss summed over ``cells``, every gradient taken
    before any row moves; returns that sum before the step."""
    W, Wc, b, bc = params
    gW, gWc, gb, gbc = accumulators
    i_, k_ = rows[cells], cols[cells]
    diff = np.einsum("bd,bd->b", W[i_], Wc[k_]) + b[i_] + bc[k_] - logx[cells]
    loss = float((fx[cells] * diff ** 2).sum())
    g = fx[cells] * diff                                   # half the gradient
    dW, dWc = g[:, None] * Wc[k_], g[:, None] * W[i_]
    for P, G, idx, grad in ((W, gW, i_, dW), (Wc, gWc, k_, dWc)):
        np.add.at(G, idx, grad ** 2)
        np.add.at(P, idx, -lr * grad / np.sqrt(G[idx]))
    for P, G, idx in ((b, gb, i_), (bc, gbc, k_)):
        np.add.at(G, idx, g ** 2)
        np.add.at(P, idx, -lr * g / np.sqrt(G[idx]))
    return loss
