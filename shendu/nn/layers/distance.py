"""Similarity and distance between pairs of vectors as modules: ``CosineSimilarity`` and
``PairwiseDistance`` (the building blocks of ``CosineEmbeddingLoss`` and
``TripletMarginLoss``, for models that output a similarity score themselves).
"""
from __future__ import annotations

from ...tensor import Tensor
from .. import functional as F
from ..module import Module

__all__ = ["CosineSimilarity", "PairwiseDistance"]


class CosineSimilarity(Module):
    """``x1 . x2 / (|x1| |x2|)`` along ``dim`` (the norms' product kept above ``eps``);
    the two inputs broadcast against each other.

    >>> import shendu as sd
    >>> CosineSimilarity(dim=1)(sd.tensor([[1.0, 0.0], [1.0, 1.0]]), sd.tensor([[2.0, 0.0]]))
    tensor([1.0000, 0.7071])
    """

    def __init__(self, dim: int = 1, eps: float = 1e-8) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return F.cosine_similarity(x1, x2, self.dim, self.eps)


class PairwiseDistance(Module):
    """The p-norm of ``x1 - x2 + eps`` over the last dimension (``eps`` keeps the gradient
    finite when the two points coincide).

    >>> import shendu as sd
    >>> PairwiseDistance(eps=0.0)(sd.tensor([[3.0, 0.0]]), sd.tensor([[0.0, 4.0]]))
    tensor([5.])
    """

    def __init__(self, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> None:
        super().__init__()
        self.norm, self.eps, self.keepdim = p, eps, keepdim

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return F.pairwise_distance(x1, x2, self.norm, self.eps, self.keepdim)
