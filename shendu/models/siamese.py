"""Siamese networks: one embedding network applied to both inputs, ``verify`` by a
distance threshold, and N-way k-shot evaluation of an embedding on unseen classes.

>>> import shendu as sd
>>> net = Siamese(sd.nn.Sequential(sd.nn.Flatten(), sd.nn.Linear(4, 2)))
>>> x = sd.randn(3, 1, 2, 2)
>>> net(x, x).shape
(3,)
>>> net.verify(x, x, threshold=0.5).tolist()
[True, True, True]
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..autograd.grad_mode import no_grad
from ..creation import as_tensor
from ..nn import functional as F
from ..nn.module import Module
from ..tensor import Tensor

__all__ = ["Siamese", "verify", "few_shot_accuracy"]


class Siamese(Module):
    """Twin network: ``embed(x)`` is ``embedding(x)`` (L2-normalised when ``normalize``);
    ``forward(x1, x2)`` gives the Euclidean distance between the two embeddings per row.

    Args:
        embedding: the shared network mapping inputs to ``(N, D)`` vectors.
        normalize: put embeddings on the unit sphere (distances then lie in [0, 2]).
    """

    def __init__(self, embedding: Module, normalize: bool = True):
        super().__init__()
        self.embedding, self.normalize = embedding, normalize

    def embed(self, x: Tensor) -> Tensor:
        z = self.embedding(x)
        return F.normalize(z, dim=1) if self.normalize else z

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return ((self.embed(x1) - self.embed(x2)) ** 2).sum(dim=1).clamp(min=1e-12).sqrt()

    def verify(self, a: Tensor, b: Tensor, threshold: float) -> Tensor:
        """True where ``a[i]`` and ``b[i]`` are judged the same (distance < threshold)."""
        return verify(self, a, b, threshold)


def verify(model: Siamese, a: Tensor, b: Tensor, threshold: float) -> Tensor:
    """Same-or-different decisions: ``model(a, b) < threshold`` in eval mode, no gradients.

    Pick ``threshold`` on validation pairs (e.g. where false accepts and false rejects are
    equally frequent). ``a`` and ``b`` are batches of the same length.
    """
    if len(a) != len(b):
        raise ValueError(f"verify: a and b must hold the same number of samples, got "
                         f"{len(a)} and {len(b)}")
    was = model.training
    model.eval()
    try:
        with no_grad():
            return model(a, b) < threshold
    finally:
        model.train(was)


def few_shot_accuracy(embed: Callable | None, x, y, n_way: int = 5, k_shot: int = 1,
                      queries: int = 15, episodes: int = 200, seed: int = 0,
                      rule: str = "prototype") -> tuple[float, float]:
    """Mean accuracy and 95% confidence half-width of N-way k-shot episodes.

    Each episode draws ``n_way`` classes of ``y``, ``k_shot`` support and ``queries``
    query examples per class, and labels each query by its nearest class prototype (the
    mean support embedding; Snell et al. 2017) or, with ``rule='nearest'``, by its nearest
    support example.

    Args:
        embed: maps an ``(M, ...)`` array of inputs to ``(M, D)`` vectors (a function or
            module; it gets float32 tensors); None compares the raw inputs, flattened.
        x, y: the evaluation inputs and labels (unseen classes).
        n_way, k_shot, queries, episodes, seed: the episode design.
        rule: ``'prototype'`` or ``'nearest'``.

    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(np.arange(6), 20); x = y[:, None] + 0.1 * rng.normal(size=(120, 3))
    >>> few_shot_accuracy(None, x, y, n_way=5, k_shot=1, episodes=20)
    (1.0, 0.0)
    """
    if rule not in ("prototype", "nearest"):
        raise ValueError(f"few_shot_accuracy: rule must be 'prototype' or 'nearest', got "
                         f"{rule!r}")
    x, y = np.asarray(x), np.asarray(y).reshape(-1)
    classes = np.unique(y)
    if n_way > len(classes):
        raise ValueError(f"few_shot_accuracy: {n_way}-way episodes need {n_way} classes, "
                         f"the labels hold {len(classes)}")
    z = _embed_all(embed, x)
    rng = np.random.default_rng(seed)
    accs = []
    for _ in range(episodes):
        chosen = rng.choice(classes, n_way, replace=False)
        sup, qry = [], []
        for c in chosen:
            idx = rng.choice(np.flatnonzero(y == c), k_shot + queries, replace=False)
            sup.append(idx[:k_shot])
            qry.append(idx[k_shot:])
        s = z[np.concatenate(sup)]
        q = z[np.concatenate(qry)]
        truth = np.repeat(np.arange(n_way), queries)
        if rule == "prototype":
            s = s.reshape(n_way, k_shot, -1).mean(1)
            owner = np.arange(n_way)
        else:
            owner = np.repeat(np.arange(n_way), k_shot)
        d2 = (q * q).sum(1)[:, None] - 2 * q @ s.T + (s * s).sum(1)[None, :]
        accs.append(float((owner[d2.argmin(1)] == truth).mean()))
    accs = np.asarray(accs)
    half = 1.96 * accs.std(ddof=1) / np.sqrt(len(accs)) if len(accs) > 1 else float("nan")
    return round(float(accs.mean()), 4), round(float(half), 4)


def _embed_all(embed, x: np.ndarray, batch: int = 1000) -> np.ndarray:
    if embed is None:
        return x.reshape(len(x), -1).astype(np.float64)
    if isinstance(embed, Module):
        was = embed.training
        embed.eval()
    out = []
    try:
        with no_grad():
            for i in range(0, len(x), batch):
                z = embed(as_tensor(np.ascontiguousarray(x[i:i + batch], np.float32)))
                out.append(np.asarray(z.numpy() if isinstance(z, Tensor) else z))
    finally:
        if isinstance(embed, Module):
            embed.train(was)
    return np.concatenate(out).astype(np.float64)
