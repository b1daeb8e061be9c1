"""Loss modules: each stores its options (PyTorch's constructor arguments) and calls the
function of the same name in ``shendu.nn.functional``.

``reduction`` is ``'mean'`` (default), ``'sum'`` or ``'none'``; the deprecated
``size_average``/``reduce`` flags are translated as PyTorch does. Class weights and
``pos_weight`` are registered as buffers, so they move with ``.to()`` and are saved in the
``state_dict``.
"""
from __future__ import annotations

from ..tensor import Tensor, _asarray
from . import functional as F
from .module import Module

__all__ = ["CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss",
           "BCELoss", "BCEWithLogitsLoss", "HingeEmbeddingLoss", "MultiMarginLoss",
           "SoftMarginLoss", "MarginRankingLoss", "KLDivLoss", "CosineEmbeddingLoss",
           "TripletMarginLoss", "GaussianNLLLoss"]

_REDUCTIONS = ("mean", "sum", "none")


def _legacy_reduction(size_average: bool | None, reduce: bool | None) -> str:
    """The reduction that the deprecated (size_average, reduce) pair asked for."""
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if not reduce:
        return "none"
    return "mean" if size_average else "sum"


class _Loss(Module):
    # the reductions a subclass accepts (a class attribute, so the constructor's arguments
    # stay exactly PyTorch's)
    _reductions: tuple = _REDUCTIONS

    def __init__(self, size_average: bool | None = None, reduce: bool | None = None,
                 reduction: str = "mean") -> None:
        super().__init__()
        if size_average is not None or reduce is not None:
            reduction = _legacy_reduction(size_average, reduce)
        allowed = self._reductions
        if reduction not in allowed:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {allowed}, got "
                             f"{reduction!r}")
        self.reduction = reduction


class _WeightedLoss(_Loss):
    def __init__(self, weight: Tensor | None = None, size_average: bool | None = None,
                 reduce: bool | None = None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _as_tensor(weight))


def _as_tensor(value) -> Tensor | None:
    return value if value is None or isinstance(value, Tensor) else Tensor._wrap(_asarray(value))


class CrossEntropyLoss(_WeightedLoss):
    """Softmax cross-entropy between raw scores (N, C) or (N, C, d1, ...) and targets that
    are class indices (N, d1, ...) or class probabilities shaped like the scores.

    Args:
        weight: per-class weights (C,).
        ignore_index: target value that contributes nothing (index targets only).
        reduction: 'mean' (weighted mean over non-ignored targets), 'sum' or 'none'.
        label_smoothing: mix the targets with the uniform distribution by this amount.

    >>> import shendu as sd
    >>> loss = CrossEntropyLoss()
    >>> loss(sd.tensor([[2.0, 0.0], [0.0, 2.0]]), sd.tensor([0, 1]))
    tensor(0.1269)
    """

    def __init__(self, weight: Tensor | None = None, size_average: bool | None = None,
                 ignore_index: int = -100, reduce: bool | None = None, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(input, target, self.weight, self.ignore_index, self.reduction,
                               self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of class-index targets given log-probabilities (e.g. the
    output of ``LogSoftmax``); ``LogSoftmax`` + ``NLLLoss`` = ``CrossEntropyLoss``.

    >>> import shendu as sd
    >>> NLLLoss()(sd.tensor([[-0.5, -1.0]]), sd.tensor([1]))
    tensor(1.)
    """

    def __init__(self, weight: Tensor | None = None, size_average: bool | None = None,
                 ignore_index: int = -100, reduce: bool | None = None,
                 reduction: str = "mean") -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.nll_loss(input, target, self.weight, self.ignore_index, self.reduction)


class MSELoss(_Loss):
    """Mean squared error ``(input - target)^2``.

    >>> import shendu as sd
    >>> MSELoss()(sd.tensor([1.0, 3.0]), sd.tensor([0.0, 0.0]))
    tensor(5.)
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(input, target, self.reduction)


class L1Loss(_Loss):
    """Mean absolute error ``|input - target|``.

    >>> import shendu as sd
    >>> L1Loss(reduction="sum")(sd.tensor([1.0, -3.0]), sd.tensor([0.0, 0.0]))
    tensor(4.)
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.l1_loss(input, target, self.reduction)


class SmoothL1Loss(_Loss):
    """``0.5 d^2 / beta`` for ``|d| < beta``, else ``|d| - 0.5 beta`` (Fast R-CNN's box loss).

    >>> import shendu as sd
    >>> SmoothL1Loss(reduction="none")(sd.tensor([0.5, 3.0]), sd.tensor([0.0, 0.0]))
    tensor([0.1250, 2.5000])
    """

    def __init__(self, size_average: bool | None = None, reduce: bool | None = None,
                 reduction: str = "mean", beta: float = 1.0) -> None:
        super().__init__(size_average, reduce, reduction)
        if beta < 0:
            raise ValueError(f"SmoothL1Loss: beta must be >= 0, got {beta}")
        self.beta = beta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.smooth_l1_loss(input, target, self.reduction, self.beta)


class HuberLoss(_Loss):
    """``0.5 d^2`` for ``|d| < delta``, else ``delta (|d| - 0.5 delta)``.

    >>> import shendu as sd
    >>> HuberLoss(reduction="none", delta=2.0)(sd.tensor([1.0, 4.0]), sd.tensor([0.0, 0.0]))
    tensor([0.5000, 6.0000])
    """

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction=reduction)
        if delta <= 0:
            raise ValueError(f"HuberLoss: delta must be > 0, got {delta}")
        self.delta = delta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.huber_loss(input, target, self.reduction, self.delta)


class BCELoss(_WeightedLoss):
    """Binary cross-entropy of probabilities in [0, 1] (e.g. after ``Sigmoid``); ``weight``
    rescales each element's loss.

    >>> import shendu as sd
    >>> BCELoss()(sd.tensor([0.5, 0.5]), sd.tensor([1.0, 0.0]))
    tensor(0.6931)
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy(input, target, self.weight, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Sigmoid + binary cross-entropy on raw scores, computed stably.

    Args:
        weight: rescales each element's loss (broadcast to the input).
        pos_weight: weight of the positive term per class (> 1 raises recall).

    >>> import shendu as sd
    >>> BCEWithLogitsLoss()(sd.tensor([0.0]), sd.tensor([1.0]))
    tensor(0.6931)
    """

    def __init__(self, weight: Tensor | None = None, size_average: bool | None = None,
                 reduce: bool | None = None, reduction: str = "mean",
                 pos_weight: Tensor | None = None) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _as_tensor(weight))
        self.register_buffer("pos_weight", _as_tensor(pos_weight))

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(input, target, self.weight, self.reduction,
                                                  self.pos_weight)


class HingeEmbeddingLoss(_Loss):
    """``x`` where target is 1, ``max(0, margin - x)`` where it is -1 (x: a distance).

    >>> import shendu as sd
    >>> HingeEmbeddingLoss(reduction="none")(sd.tensor([0.3, 0.3]), sd.tensor([1.0, -1.0]))
    tensor([0.3000, 0.7000])
    """

    def __init__(self, margin: float = 1.0, size_average: bool | None = None,
                 reduce: bool | None = None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.hinge_embedding_loss(input, target, self.margin, self.reduction)


class MultiMarginLoss(_WeightedLoss):
    """Multi-class hinge (SVM) loss ``sum_{j != y} max(0, margin - x_y + x_j)^p / C``.

    >>> import shendu as sd
    >>> MultiMarginLoss()(sd.tensor([[0.1, 0.2, 0.4, 0.8]]), sd.tensor([3]))
    tensor(0.3250)
    """

    def __init__(self, p: int = 1, margin: float = 1.0, weight: Tensor | None = None,
                 size_average: bool | None = None, reduce: bool | None = None,
                 reduction: str = "mean") -> None:
        if p not in (1, 2):
            raise ValueError(f"MultiMarginLoss: only p == 1 and p == 2 are supported, got {p}")
        super().__init__(weight, size_average, reduce, reduction)
        self.p, self.margin = p, margin

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.multi_margin_loss(input, target, self.p, self.margin, self.weight,
                                   self.reduction)


class SoftMarginLoss(_Loss):
    """Two-class logistic loss ``log(1 + exp(-y x))`` for targets y in {1, -1}.

    >>> import shendu as sd
    >>> SoftMarginLoss()(sd.tensor([0.0]), sd.tensor([1.0]))
    tensor(0.6931)
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.soft_margin_loss(input, target, self.reduction)


class MarginRankingLoss(_Loss):
    """``max(0, -y (x1 - x2) + margin)``: x1 should rank above x2 where y = 1, below where
    y = -1.

    >>> import shendu as sd
    >>> x1, x2 = sd.tensor([2.0, 2.0]), sd.tensor([1.0, 1.0])
    >>> MarginRankingLoss(reduction="none")(x1, x2, sd.tensor([1.0, -1.0]))
    tensor([0., 1.])
    """

    def __init__(self, margin: float = 0.0, size_average: bool | None = None,
                 reduce: bool | None = None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def forward(self, input1: Tensor, input2: Tensor, target: Tensor) -> Tensor:
        return F.margin_ranking_loss(input1, input2, target, self.margin, self.reduction)


class KLDivLoss(_Loss):
    """Kullback-Leibler divergence ``target * (log target - input)`` with ``input`` given as
    log-probabilities (and ``target`` too when ``log_target=True``). ``reduction='batchmean'``
    divides the sum by the batch size: the true KL divergence per sample.

    >>> import shendu as sd
    >>> p = sd.tensor([[0.5, 0.5]])
    >>> KLDivLoss(reduction="batchmean")(p.log(), p)
    tensor(0.)
    """

    _reductions = _REDUCTIONS + ("batchmean",)

    def __init__(self, size_average: bool | None = None, reduce: bool | None = None,
                 reduction: str = "mean", log_target: bool = False) -> None:
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.kl_div(input, target, self.reduction, self.log_target)


class CosineEmbeddingLoss(_Loss):
    """``1 - cos(x1, x2)`` for similar pairs (y = 1), ``max(0, cos(x1, x2) - margin)`` for
    dissimilar ones (y = -1).

    >>> import shendu as sd
    >>> a, b = sd.tensor([[1.0, 0.0]]), sd.tensor([[0.0, 1.0]])
    >>> CosineEmbeddingLoss()(a, b, sd.tensor([1.0]))
    tensor(1.)
    """

    def __init__(self, margin: float = 0.0, size_average: bool | None = None,
                 reduce: bool | None = None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def forward(self, input1: Tensor, input2: Tensor, target: Tensor) -> Tensor:
        return F.cosine_embedding_loss(input1, input2, target, self.margin, self.reduction)


class TripletMarginLoss(_Loss):
    """Triplet loss ``max(d(a, p) - d(a, n) + margin, 0)`` (FaceNet's face-verification loss).

    Args:
        margin: required gap between the positive and negative distances.
        p: norm degree of the pairwise distance.
        eps: added to differences for a finite gradient at distance 0.
        swap: use ``min(d(a, n), d(p, n))`` as the negative distance.

    >>> import shendu as sd
    >>> a, pos, neg = sd.zeros(1, 2), sd.zeros(1, 2), sd.ones(1, 2) * 3
    >>> TripletMarginLoss(margin=1.0)(a, pos, neg)
    tensor(0.)
    """

    def __init__(self, margin: float = 1.0, p: float = 2.0, eps: float = 1e-6,
                 swap: bool = False, size_average: bool | None = None,
                 reduce: bool | None = None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        if margin <= 0:
            raise ValueError(f"TripletMarginLoss: margin must be > 0, got {margin}")
        self.margin, self.p, self.eps, self.swap = margin, p, eps, swap

    def forward(self, anchor: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
        return F.triplet_margin_loss(anchor, positive, negative, self.margin, self.p,
                                     self.eps, self.swap, self.reduction)


class GaussianNLLLoss(_Loss):
    """Negative log-likelihood of ``target`` under N(input, var):
    ``0.5 (log var + (input - target)^2 / var)`` (+ ``0.5 log 2 pi`` with ``full``), with
    ``var`` clamped below at ``eps``.

    >>> import shendu as sd
    >>> GaussianNLLLoss()(sd.tensor([1.0]), sd.tensor([3.0]), sd.tensor([4.0]))
    tensor(1.1931)
    """

    def __init__(self, *, full: bool = False, eps: float = 1e-6,
                 reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)
        self.full, self.eps = full, eps

    def forward(self, input: Tensor, target: Tensor, var: Tensor) -> Tensor:
        return F.gaussian_nll_loss(input, target, var, self.full, self.eps, self.reduction)
