"""Metric learning: the contrastive loss of Siamese networks (Hadsell, Chopra & LeCun 2006)
and online triplet miners (FaceNet's semi-hard, Hermans et al.'s batch-hard) that pick
triplets for ``TripletMarginLoss`` from the embeddings of one batch.

A miner maps ``(embeddings, labels)`` to index arrays ``(anchor, positive, negative)``;
the loss is then ``TripletMarginLoss()(emb[a], emb[p], emb[n])``. Mining looks at
distances only, so it runs on the raw arrays, outside the graph.

>>> import shendu as sd
>>> emb = sd.tensor([[0.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 0.5]])
>>> labels = sd.tensor([0, 0, 1, 1])
>>> a, p, n = BatchHardMiner()(emb, labels)
>>> a.tolist(), p.tolist(), n.tolist()
([0, 1, 2, 3], [1, 0, 3, 2], [3, 3, 0, 0])
>>> loss = sd.nn.TripletMarginLoss(margin=0.5)(emb[a], emb[p], emb[n])
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from ..tensor import Tensor
from . import functional as F
from .functional.loss import _reduce
from .module import Module

__all__ = ["contrastive_loss", "ContrastiveLoss", "BatchHardMiner", "SemiHardMiner",
           "BalancedBatchSampler", "pairwise_distances"]


def contrastive_loss(x1: Tensor, x2: Tensor, target: Tensor, margin: float = 1.0,
                     reduction: str = "mean") -> Tensor:
    """``0.5 d^2`` for similar pairs (``target`` 1), ``0.5 max(0, margin - d)^2`` for
    dissimilar ones (``target`` 0), ``d`` the Euclidean distance between the rows of
    ``x1`` and ``x2`` (Hadsell et al. 2006).

    >>> import shendu as sd
    >>> contrastive_loss(sd.tensor([[0.0, 0.0]]), sd.tensor([[0.0, 0.5]]), sd.tensor([0]))
    tensor(0.1250)
    """
    if x1.shape != x2.shape or x1.ndim != 2:
        raise ValueError(f"contrastive_loss: expected two (N, D) embeddings of one shape, "
                         f"got {tuple(x1.shape)} and {tuple(x2.shape)}")
    if tuple(target.shape) != (x1.shape[0],):
        raise ValueError(f"contrastive_loss: target must have shape ({x1.shape[0]},) to "
                         f"match the embeddings, got {tuple(target.shape)}")
    t = target.to(x1.dtype)
    sq = ((x1 - x2) ** 2).sum(dim=1)
    # d = sqrt(sq) only where the hinge needs it; eps keeps its gradient finite at d = 0
    d = (sq + 1e-12).sqrt()
    loss = 0.5 * (t * sq + (1 - t) * F.relu(margin - d) ** 2)
    return _reduce(loss, reduction, "contrastive_loss")


class ContrastiveLoss(Module):
    """Module form of :func:`contrastive_loss` (``target`` 1: same identity, 0: different).

    >>> import shendu as sd
    >>> loss = ContrastiveLoss(margin=2.0)(sd.zeros(1, 3), sd.zeros(1, 3), sd.tensor([0]))
    >>> round(loss.item(), 4)   # 0.5 * (2 - 0)^2
    2.0
    """

    def __init__(self, margin: float = 1.0, reduction: str = "mean"):
        super().__init__()
        if not margin > 0:
            raise ValueError(f"ContrastiveLoss: margin must be > 0, got {margin!r}")
        self.margin, self.reduction = float(margin), reduction

    def forward(self, x1: Tensor, x2: Tensor, target: Tensor) -> Tensor:
        return contrastive_loss(x1, x2, target, self.margin, self.reduction)


def _numpy(x) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def pairwise_distances(emb) -> np.ndarray:
    """Euclidean distance matrix of the rows of ``emb`` as a float64 NumPy array.

    >>> pairwise_distances([[0.0, 0.0], [3.0, 4.0]]).tolist()
    [[0.0, 5.0], [5.0, 0.0]]
    """
    e = _numpy(emb).astype(np.float64)
    if e.ndim != 2:
        raise ValueError(f"pairwise_distances: expected (N, D) embeddings, got shape {e.shape}")
    sq = (e * e).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * e @ e.T, 0.0)
    np.fill_diagonal(d2, 0.0)
    return np.sqrt(d2)


def _setup(who: str, embeddings, labels):
    d = pairwise_distances(embeddings)
    y = _numpy(labels).reshape(-1)
    if len(y) != len(d):
        raise ValueError(f"{who}: {len(d)} embeddings but {len(y)} labels")
    same = y[:, None] == y[None, :]
    return d, same, ~same


class BatchHardMiner:
    """For every anchor, its farthest positive and its nearest negative in the batch
    (Hermans, Beyer & Leibe 2017, "In defense of the triplet loss").

    Anchors whose class has no other member, or with no other class in the batch, are
    skipped. Returns ``(anchor, positive, negative)`` int64 index arrays.
    """

    def __call__(self, embeddings, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d, same, diff = _setup("BatchHardMiner", embeddings, labels)
        pos = same.copy()
        np.fill_diagonal(pos, False)
        ok = pos.any(1) & diff.any(1)
        a = np.flatnonzero(ok)
        p = np.where(pos, d, -np.inf)[a].argmax(1)
        n = np.where(diff, d, np.inf)[a].argmin(1)
        return a.astype(np.int64), p.astype(np.int64), n.astype(np.int64)


class SemiHardMiner:
    """For every positive pair ``(a, p)``, the nearest negative farther than ``p``
    (``d(a, n) > d(a, p)``: FaceNet's semi-hard negative, Schroff et al. 2015); when no
    negative is farther, the farthest one. Negatives beyond ``d(a, p) + margin`` give no
    loss; pass ``margin`` to drop those triplets.

    Args:
        margin: if given, keep only triplets with ``d(a, n) < d(a, p) + margin``.
    """

    def __init__(self, margin: float | None = None):
        self.margin = margin

    def __call__(self, embeddings, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d, same, diff = _setup("SemiHardMiner", embeddings, labels)
        pos = same.copy()
        np.fill_diagonal(pos, False)
        pos &= diff.any(1)[:, None]
        a, p = np.nonzero(pos)
        dap = d[a, p][:, None]
        dan = np.where(diff[a], d[a], np.nan)               # (pairs, N), NaN off negatives
        farther = np.where(dan > dap, dan, np.inf)
        n = farther.argmin(1)
        none = ~np.isfinite(farther[np.arange(len(a)), n])
        if none.any():
            n[none] = np.nanargmax(dan[none], 1)
        if self.margin is not None:
            keep = d[a, n] < d[a, p] + self.margin
            a, p, n = a[keep], p[keep], n[keep]
        return a.astype(np.int64), p.astype(np.int64), n.astype(np.int64)


class BalancedBatchSampler:
    """Batches of ``classes_per_batch`` classes times ``samples_per_class`` images each
    (the "PK" batches online miners need: every anchor has positives and negatives).

    Args:
        labels: the label of every sample of the dataset.
        classes_per_batch, samples_per_class: P and K.
        num_batches: batches per epoch (default: about one pass over the data).
        seed: seed of the sampler's own generator (a new draw each epoch).

    Use as ``DataLoader(ds, batch_sampler=BalancedBatchSampler(...))``.

    >>> s = BalancedBatchSampler([0, 0, 1, 1, 2, 2], 2, 2, num_batches=3)
    >>> [len(b) for b in s]
    [4, 4, 4]
    """

    def __init__(self, labels: Sequence[int], classes_per_batch: int, samples_per_class: int,
                 num_batches: int | None = None, seed: int = 0):
        y = _numpy(labels).reshape(-1)
        self.classes = np.unique(y)
        if classes_per_batch > len(self.classes):
            raise ValueError(f"BalancedBatchSampler: {classes_per_batch} classes per batch "
                             f"but the labels hold only {len(self.classes)}")
        self.by_class = {c: np.flatnonzero(y == c) for c in self.classes}
        self.p, self.k = classes_per_batch, samples_per_class
        self.num_batches = num_batches or max(1, len(y) // (self.p * self.k))
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[int]]:
        for _ in range(self.num_batches):
            batch = []
            for c in self.rng.choice(self.classes, self.p, replace=False):
                members = self.by_class[c]
                batch += self.rng.choice(members, self.k,
                                         replace=len(members) < self.k).tolist()
            yield batch
