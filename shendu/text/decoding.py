"""Greedy and beam-search decoding.

``beam_search_core`` is model-free: it drives a ``step(tokens, state, t)`` function that
returns log-probabilities (K, V) for K live hypotheses, and a ``select(state, rows)``
function that reorders the state; ``beam_search`` and ``greedy_search`` run it on a
``Seq2Seq``/``TransformerSeq2Seq`` model.

Scores: the sum of token log-probabilities (``<eos>`` included) divided by
``length ** length_penalty`` (0: raw sum, which favours short outputs; 1: mean per token).
At each step every live hypothesis is extended by every token; those ending in ``<eos>``
join the finished list, and the ``beam_size`` best others (by raw sum) stay live.
Hypotheses still live after ``max_len`` tokens are finished as they stand.

>>> import numpy as np
>>> from shendu.text.decoding import beam_search_core
>>> table = np.log(np.array([[0.1, 0.6, 0.3], [0.5, 0.25, 0.25], [0.9, 0.05, 0.05]]))
>>> step = lambda toks, state, t: (table[toks], state)   # a bigram model; eos = 0
>>> best = beam_search_core(step, None, lambda s, r: s, bos=1, eos=0, beam_size=3,
...                         max_len=3, n_best=2)
>>> [(toks, round(score, 4)) for toks, score in best]
[([0], -0.6931), ([2, 0], -0.7458)]
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import creation
from ..autograd import no_grad
from ..nn.functional.activation import log_softmax
from ..ops.selection import index_select
from ..tensor import Tensor

__all__ = ["beam_search_core", "beam_search", "greedy_search"]


def _score(logp: float, length: int, length_penalty: float) -> float:
    return float(logp) / (length ** length_penalty)


def beam_search_core(step: Callable, state, select: Callable, bos: int, eos: int,
                     beam_size: int, max_len: int, length_penalty: float = 1.0,
                     n_best: int = 1) -> list[tuple[list[int], float]]:
    """The ``n_best`` best ``(tokens, score)`` pairs (tokens exclude ``<bos>``, include a
    final ``<eos>`` when one was produced), best first.

    Args:
        step: ``step(tokens (K,) int array, state, t) -> (log_probs (K, V) array, state)``.
        state: the initial state for a single hypothesis (K = 1).
        select: ``select(state, rows) -> state`` keeping the given rows, in that order.
        bos, eos: start and end token ids.
        beam_size: live hypotheses kept per step.
        max_len: most tokens generated.
        length_penalty: exponent of the length normalisation.
        n_best: how many finished hypotheses to return.
    """
    for name, v in (("beam_size", beam_size), ("max_len", max_len), ("n_best", n_best)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"beam_search: {name} must be a positive integer, got {v!r}")
    seqs: list[list[int]] = [[]]
    sums = np.zeros(1)
    last = np.array([bos])
    finished: list[tuple[list[int], float]] = []
    for t in range(max_len):
        logp, state = step(last, state, t)
        logp = np.asarray(logp, dtype=np.float64)
        total = sums[:, None] + logp  # (K, V)
        for k in range(len(seqs)):  # every hypothesis that ends here is finished
            if np.isfinite(total[k, eos]):
                finished.append((seqs[k] + [eos],
                                 _score(total[k, eos], len(seqs[k]) + 1, length_penalty)))
        total[:, eos] = -np.inf
        flat = total.ravel()
        n_live = min(beam_size, int(np.isfinite(flat).sum()))
        if n_live == 0:
            break
        best = np.argsort(-flat, kind="stable")[:n_live]
        rows, toks = np.divmod(best, total.shape[1])
        seqs = [seqs[r] + [int(c)] for r, c in zip(rows, toks)]
        sums, last = flat[best], toks
        if t == max_len - 1:
            finished += [(s, _score(v, len(s), length_penalty)) for s, v in zip(seqs, sums)]
        else:
            state = select(state, rows)
    finished.sort(key=lambda x: -x[1])
    return finished[:n_best]


def _select_rows(state: tuple, rows: np.ndarray) -> tuple:
    idx = creation.tensor(np.asarray(rows, dtype=np.int64))
    return tuple(index_select(s, 0, idx) for s in state)


def beam_search(model, src: Tensor, bos: int, eos: int, beam_size: int = 5,
                max_len: int = 50, length_penalty: float = 1.0, n_best: int = 1):
    """Beam search for each source row of ``src`` (B, S) through a model with
    ``encode``/``decode_step``; returns, per row, a list of ``n_best`` ``(tokens, score)``.
    """
    was = model.training
    model.eval()
    results = []
    with no_grad():
        for b in range(src.shape[0]):
            row = src[b:b + 1]
            memory, mask, proj, state = model.encode(row)
            enc = {"memory": memory, "mask": mask, "proj": proj}

            def step(toks, st, t, enc=enc):
                K = len(toks)
                mem = enc["memory"].expand(K, *enc["memory"].shape[1:])
                msk = enc["mask"].expand(K, *enc["mask"].shape[1:])
                prj = None if enc["proj"] is None else enc["proj"].expand(
                    K, *enc["proj"].shape[1:])
                logits, st, _ = model.decode_step(creation.tensor(toks.astype(np.int64)),
                                                  st, mem, msk, prj)
                return log_softmax(logits, dim=-1).numpy(), st

            results.append(beam_search_core(step, state, _select_rows, bos, eos, beam_size,
                                            max_len, length_penalty, n_best))
    model.train(was)
    return results


def greedy_search(model, src: Tensor, bos: int, eos: int, max_len: int = 50,
                  return_attention: bool = False):
    """Arg-max decoding of a batch: a list of token lists (each cut after its ``<eos>``);
    with ``return_attention`` also a list of (T, S) weight arrays (recurrent models)."""
    was = model.training
    model.eval()
    B = src.shape[0]
    with no_grad():
        memory, mask, proj, state = model.encode(src)
        y = creation.full((B,), bos, dtype=src.dtype)
        out = np.zeros((B, 0), dtype=np.int64)
        weights = []
        done = np.zeros(B, dtype=bool)
        for _ in range(max_len):
            logits, state, w = model.decode_step(y, state, memory, mask, proj)
            nxt = logits.numpy().argmax(-1)
            out = np.concatenate([out, nxt[:, None]], 1)
            if w is not None:
                weights.append(w.numpy())
            done |= nxt == eos
            if done.all():
                break
            y = creation.tensor(nxt.astype(np.int64))
    model.train(was)
    seqs = []
    for row in out.tolist():
        seqs.append(row[:row.index(eos) + 1] if eos in row else row)
    if return_attention:
        att = np.stack(weights, 1) if weights else None
        return seqs, [None if att is None else att[i, :len(s)] for i, s in enumerate(seqs)]
    return seqs
