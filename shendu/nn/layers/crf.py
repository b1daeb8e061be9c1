"""Linear-chain conditional random field over per-position tag scores.

``score(y) = start[y_0] + sum_t emit[t, y_t] + sum_t trans[y_{t-1}, y_t] + end[y_last]``;
``log p(y | x) = score(y) - log Z`` with ``log Z`` from the forward algorithm (log-sum-exp
over the previous tag at each step, written with autograd ops so gradients come for free);
``decode`` is Viterbi. Masks (B, T) mark real positions; each row's mask must start with
True and be contiguous (padding at the end), as in the ``pytorch-crf`` package whose
interface this follows.
"""
from __future__ import annotations

import numpy as np

from ... import creation
from ...ops.elementwise import where
from ...ops.reduce import logsumexp
from ...tensor import Tensor
from .. import init
from ..module import Module
from ..parameter import Parameter

__all__ = ["CRF"]


class CRF(Module):
    """Linear-chain CRF with learned start, end and transition scores.

    Args:
        num_tags: number of tags.
        batch_first: emissions are (B, T, K) instead of (T, B, K).

    ``forward(emissions, tags, mask=None, reduction='sum')`` returns the log-likelihood of
    the tags (``'none'``: per sequence, ``'sum'``, ``'mean'``, ``'token_mean'``); the loss
    to minimise is its negative. ``decode(emissions, mask=None)`` returns the best tag
    list of each sequence.

    >>> import shendu as sd
    >>> crf = sd.nn.CRF(3, batch_first=True)
    >>> em = sd.randn(2, 4, 3)
    >>> crf(em, sd.tensor([[0, 1, 2, 1], [2, 2, 0, 0]])).shape
    ()
    >>> [len(p) for p in crf.decode(em, mask=sd.tensor([[1, 1, 1, 1], [1, 1, 0, 0]]))]
    [4, 2]
    """

    def __init__(self, num_tags: int, batch_first: bool = False) -> None:
        super().__init__()
        if isinstance(num_tags, bool) or not isinstance(num_tags, int) or num_tags < 1:
            raise ValueError(f"CRF: num_tags must be a positive integer, got {num_tags!r}")
        self.num_tags, self.batch_first = num_tags, batch_first
        self.start_transitions = Parameter(creation.empty(num_tags))
        self.end_transitions = Parameter(creation.empty(num_tags))
        self.transitions = Parameter(creation.empty(num_tags, num_tags))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for p in (self.start_transitions, self.end_transitions, self.transitions):
            init.uniform_(p, -0.1, 0.1)

    def extra_repr(self) -> str:
        return f"num_tags={self.num_tags}"

    # ------------------------------------------------------------------ checks
    def _prepare(self, op: str, emissions: Tensor, tags=None, mask=None):
        if not isinstance(emissions, Tensor) or emissions.ndim != 3:
            raise ValueError(f"CRF.{op}: emissions must be a 3-D tensor, got shape "
                             f"{getattr(emissions, 'shape', None)}")
        if emissions.shape[2] != self.num_tags:
            raise ValueError(f"CRF.{op}: emissions have {emissions.shape[2]} tag scores but "
                             f"the CRF has num_tags={self.num_tags}")
        if self.batch_first:
            emissions = emissions.transpose(0, 1)
        T, B = emissions.shape[:2]
        if T == 0:
            raise ValueError(f"CRF.{op}: empty sequences (emissions shape "
                             f"{tuple(emissions.shape)})")
        if mask is None:
            m = np.ones((T, B), dtype=bool)
        else:
            m = np.asarray(mask.numpy() if isinstance(mask, Tensor) else mask).astype(bool)
            if self.batch_first:
                m = m.T
            if m.shape != (T, B):
                raise ValueError(f"CRF.{op}: mask shape {m.shape} does not match (time, "
                                 f"batch) = {(T, B)}")
            if not m[0].all():
                raise ValueError(f"CRF.{op}: the mask's first time step must be all True "
                                 "(every sequence needs at least one position)")
            if (m[1:] & ~m[:-1]).any():
                raise ValueError(f"CRF.{op}: the mask must be contiguous (padding only at "
                                 "the end of each sequence)")
        y = None
        if tags is not None:
            y = np.asarray(tags.numpy() if isinstance(tags, Tensor) else tags).astype(np.int64)
            if self.batch_first:
                y = y.T
            if y.shape != (T, B):
                raise ValueError(f"CRF.{op}: tags shape {y.shape} does not match (time, "
                                 f"batch) = {(T, B)}")
            if ((y < 0) | (y >= self.num_tags))[m].any():
                raise ValueError(f"CRF.{op}: tags must be in [0, {self.num_tags})")
            y = np.where(m, y, 0)
        return emissions, y, m

    # ------------------------------------------------------------------ likelihood
    def forward(self, emissions: Tensor, tags, mask=None, reduction: str = "sum") -> Tensor:
        if reduction not in ("none", "sum", "mean", "token_mean"):
            raise ValueError(f"CRF: reduction must be 'none', 'sum', 'mean' or 'token_mean', "
                             f"got {reduction!r}")
        em, y, m = self._prepare("forward", emissions, tags, mask)
        llh = self._score(em, y, m) - self._log_partition(em, m)
        if reduction == "none":
            return llh
        if reduction == "sum":
            return llh.sum()
        if reduction == "mean":
            return llh.mean()
        return llh.sum() / float(m.sum())

    def _score(self, em: Tensor, y: np.ndarray, m: np.ndarray) -> Tensor:
        T, B = y.shape
        ar = np.arange(B)
        t_idx = np.repeat(np.arange(T), B)
        b_idx = np.tile(ar, T)
        emit = em[creation.tensor(t_idx), creation.tensor(b_idx),
                  creation.tensor(y.ravel())].reshape(T, B)
        mf = creation.tensor(m.astype(np.float32)).to(em.dtype)
        score = self.start_transitions[creation.tensor(y[0])] + (emit * mf).sum(0)
        if T > 1:
            tr = self.transitions[creation.tensor(y[:-1].ravel()),
                                  creation.tensor(y[1:].ravel())].reshape(T - 1, B)
            score = score + (tr * mf[1:]).sum(0)
        last = y[m.sum(0) - 1, ar]
        return score + self.end_transitions[creation.tensor(last)]

    def _log_partition(self, em: Tensor, m: np.ndarray) -> Tensor:
        alpha = self.start_transitions + em[0]  # (B, K)
        trans = self.transitions.unsqueeze(0)
        for t in range(1, em.shape[0]):
            nxt = logsumexp(alpha.unsqueeze(2) + trans, dim=1) + em[t]
            keep = creation.tensor(m[t][:, None])
            alpha = where(keep, nxt, alpha)
        return logsumexp(alpha + self.end_transitions, dim=1)

    # ------------------------------------------------------------------ decoding
    def decode(self, emissions: Tensor, mask=None) -> list[list[int]]:
        """Viterbi: the highest-scoring tag sequence of each batch row (masked length)."""
        em, _, m = self._prepare("decode", emissions, None, mask)
        e = em.detach().numpy().astype(np.float64)
        tr = self.transitions.detach().numpy().astype(np.float64)
        start = self.start_transitions.detach().numpy().astype(np.float64)
        end = self.end_transitions.detach().numpy().astype(np.float64)
        T, B, _ = e.shape
        score = start + e[0]
        back = []
        for t in range(1, T):
            cand = score[:, :, None] + tr[None]            # (B, prev, next)
            best = cand.argmax(1)
            nxt = cand.max(1) + e[t]
            back.append(best)
            score = np.where(m[t][:, None], nxt, score)
        lengths = m.sum(0)
        out = []
        for b in range(B):
            tag = int(np.argmax(score[b] + end))
            path = [tag]
            for t in range(lengths[b] - 1, 0, -1):
                tag = int(back[t - 1][b, tag])
                path.append(tag)
            out.append(path[::-1])
        return out

