"""Loss functions with PyTorch's signatures; ``reduction`` is 'mean' (default), 'sum' or 'none'."""
from __future__ import annotations

import math

from ...autograd.grad_mode import is_grad_enabled
from ...autograd.tracing import leaf
from ...backend import get_array_module
from ...errors import DeviceError, ShapeError
from ...ops import elementwise as E
from ...ops import nn_ops
from ...tensor import Tensor, _asarray
from .activation import log_softmax

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss: Tensor, reduction: str, op: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _same_device(op, input, *others):
    """CuPy refuses to mix devices with an error naming neither: say it here first."""
    for t in others:
        if t is not None and t._data.__class__ is not input._data.__class__:
            raise DeviceError(f"{op}: expected all tensors on the same device, got "
                              f"{input.device} and {t.device}")


def _same_shape(op, input, target):
    if not isinstance(target, Tensor):
        target = Tensor._wrap(_asarray(target)).to(input.device)
    _same_device(op, input, target)
    if input.shape != target.shape:
        raise ShapeError(f"{op}: input shape {input.shape} and target shape {target.shape} "
                         "must be equal")
    if target.dtype != input.dtype and input.is_floating_point():
        target = target.type(input.dtype)
    return target


def _classes_last(input: Tensor, target, op):
    """(N, C, d1, ...) scores -> (M, C) rows, with targets -> (M,) or (M, C)."""
    if input.ndim == 1:
        input = input.unsqueeze(0)
        target = target.reshape(1, *target.shape[0:]) if target.ndim == 1 and \
            target.is_floating_point() else target.reshape(1)
    probs = target.is_floating_point()
    if probs:
        if target.shape != input.shape:
            raise ValueError(f"{op}: probability targets must have the input's shape "
                             f"{input.shape}, got {target.shape}")
    elif target.shape != input.shape[:1] + input.shape[2:]:
        raise ValueError(f"{op}: class-index target must have shape "
                         f"{input.shape[:1] + input.shape[2:]} for input of shape {input.shape}, "
                         f"got {target.shape}")
    c = input.shape[1]
    if input.ndim > 2:
        input = input.movedim(1, -1)
        if probs:
            target = target.movedim(1, -1)
    return input.reshape(-1, c), (target.reshape(-1, c) if probs else target.reshape(-1)), probs


def _coef(op, x2, t2, probs, weight, ignore_index, reduction, label_smoothing):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], got {label_smoothing}")
    if not probs and t2.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold class indices (int64) or probabilities "
                        f"(float), got {t2.dtype}")
    _same_device(op, x2, t2, weight)
    c = x2.shape[1]
    w = None
    if weight is not None:
        if weight.shape != (c,):
            raise ValueError(f"{op}: weight must have shape ({c},), got {weight.shape}")
        w = weight._data
    xp = get_array_module(x2._data)
    return nn_ops.class_coefficients(xp, t2._data, c, x2._data.dtype, w, ignore_index,
                                     reduction, label_smoothing, probs)


def _nan_if_nothing_counted(loss, counted, reduction):
    """PyTorch's 'mean' over zero total target weight (every target ignored, or an empty
    batch) is 0/0 = nan, while the gradient stays 0 so such a batch changes nothing."""
    return loss if counted or reduction != "mean" else loss + float("nan")


def _unflatten(loss, input, reduction):
    if reduction != "none":
        return loss
    return loss.reshape(input.shape[:1] + input.shape[2:]) if input.ndim > 1 else loss.reshape(())


@leaf("cross_entropy")
def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                  ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy on raw scores (logits) of shape (N, C) or (N, C, d1, ...).

    Args:
        input: scores (N, C), (C,) or (N, C, d1, ...).
        target: class indices (N, d1, ...) of any integer dtype (int64 as PyTorch, and
            also int32, int16, uint8, ... — PyTorch refuses those, shendu reads the same
            classes from them), or class probabilities (a float tensor shaped like
            ``input``). Probability targets are differentiable: with
            ``requires_grad`` the target gets the gradient ``-log_softmax(input)``
            (times the class weights and the reduction's scale), as in PyTorch.
        weight: per-class weights (C,). For index targets the 'mean' divides by the sum of
            the targets' weights, so all-zero weights (or every target ignored) give
            ``nan`` as in PyTorch, with a zero gradient; probability targets divide by N.
        ignore_index: a class index whose targets count nothing (index targets only).
        reduction: 'mean', 'sum' or 'none'.
        label_smoothing: mixes the target with the uniform distribution, in [0, 1].

    >>> import shendu as sd
    >>> logits = sd.tensor([[1000.0, -1000.0]])
    >>> sd.nn.functional.cross_entropy(logits, sd.tensor([1]))
    tensor(2000.)
    >>> soft = sd.tensor([[0.25, 0.75]], requires_grad=True)
    >>> sd.nn.functional.cross_entropy(sd.zeros(1, 2), soft).backward()
    >>> soft.grad
    tensor([[0.6931, 0.6931]])
    """
    x2, t2, probs = _classes_last(input, target, "cross_entropy")
    if probs and _needs_grad(t2, weight):
        return _unflatten(_soft_cross_entropy(x2, t2, weight, reduction, label_smoothing),
                          input, reduction)
    coef, counted = _coef("cross_entropy", x2, t2, probs, weight, ignore_index, reduction,
                          label_smoothing)
    loss = nn_ops.CrossEntropy.apply(x2, coef=coef, reduction=reduction)
    return _unflatten(_nan_if_nothing_counted(loss, counted, reduction), input, reduction)


def _needs_grad(*ts):
    return is_grad_enabled() and any(isinstance(t, Tensor) and t.requires_grad for t in ts)


def _soft_cross_entropy(x2, t2, weight, reduction, label_smoothing):
    """Cross-entropy with probability targets written from differentiable ops, for a
    target (or weight) that needs a gradient; the fused node treats them as constants."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be one of {_REDUCTIONS}, "
                         f"got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], "
                         f"got {label_smoothing}")
    c = x2.shape[1]
    a = t2.type(x2.dtype)
    if label_smoothing:
        a = a * (1 - label_smoothing) + label_smoothing / c
    if weight is not None:
        if weight.shape != (c,):
            raise ValueError(f"cross_entropy: weight must have shape ({c},), "
                             f"got {weight.shape}")
        a = a * weight
    per_row = -(a * log_softmax(x2, dim=1)).sum(dim=1)
    if reduction == "mean":  # PyTorch divides probability targets by N, not by weights
        return per_row.sum() / x2.shape[0]
    return per_row.sum() if reduction == "sum" else per_row


@leaf("nll_loss")
def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None,
             ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of class indices, given log-probabilities (N, C, ...)."""
    x2, t2, probs = _classes_last(input, target, "nll_loss")
    if probs:
        raise TypeError("nll_loss: target must hold class indices (int64)")
    coef, counted = _coef("nll_loss", x2, t2, False, weight, ignore_index, reduction, 0.0)
    loss = nn_ops.NLL.apply(x2, coef=coef, reduction=reduction)
    return _unflatten(_nan_if_nothing_counted(loss, counted, reduction), input, reduction)


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Squared error ``(input - target)^2``."""
    target = _same_shape("mse_loss", input, target)
    return _reduce((input - target) ** 2, reduction, "mse_loss")


def l1_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Absolute error ``|input - target|``."""
    target = _same_shape("l1_loss", input, target)
    return _reduce(E.abs(input - target), reduction, "l1_loss")


def smooth_l1_loss(input: Tensor, target: Tensor, reduction: str = "mean",
                   beta: float = 1.0) -> Tensor:
    """Quadratic below ``beta``, linear above (PyTorch's definition)."""
    target = _same_shape("smooth_l1_loss", input, target)
    d = E.abs(input - target)
    if beta == 0:
        return _reduce(d, reduction, "smooth_l1_loss")
    loss = E.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)
    return _reduce(loss, reduction, "smooth_l1_loss")


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean",
               delta: float = 1.0) -> Tensor:
    target = _same_shape("huber_loss", input, target)
    d = E.abs(input - target)
    loss = E.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta))
    return _reduce(loss, reduction, "huber_loss")


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                         reduction: str = "mean") -> Tensor:
    """Cross-entropy of probabilities in [0, 1] (logs clamped at -100, as PyTorch)."""
    target = _same_shape("binary_cross_entropy", input, target)
    a = input._data
    if a.size and (a.min() < 0 or a.max() > 1):
        raise ValueError("binary_cross_entropy: input must hold probabilities in [0, 1]; "
                         "for raw scores use binary_cross_entropy_with_logits")
    loss = nn_ops.BinaryCrossEntropy.apply(input, target)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor,
                                     weight: Tensor | None = None, reduction: str = "mean",
                                     pos_weight: Tensor | None = None) -> Tensor:
    """Sigmoid + binary cross-entropy in one stable step (finite for logits of +-1000)."""
    target = _same_shape("binary_cross_entropy_with_logits", input, target)
    args = (input, target) if pos_weight is None else (input, target, pos_weight)
    loss = nn_ops.BCEWithLogits.apply(*args)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


def hinge_embedding_loss(input: Tensor, target: Tensor, margin: float = 1.0,
                         reduction: str = "mean") -> Tensor:
    """``x`` where target is 1, ``max(0, margin - x)`` where it is -1 (other target values
    get both terms, as in PyTorch)."""
    target = _same_shape("hinge_embedding_loss", input, target)
    pos = E.where(target != -1, input, 0.0)
    neg = E.where(target != 1, E.relu(margin - input), 0.0)
    return _reduce(pos + neg, reduction, "hinge_embedding_loss")


@leaf("multi_margin_loss")
def multi_margin_loss(input: Tensor, target: Tensor, p: int = 1, margin: float = 1.0,
                      weight: Tensor | None = None, reduction: str = "mean") -> Tensor:
    """Multi-class hinge (SVM) loss: ``sum_{j != y} max(0, margin - x_y + x_j)^p / C``."""
    if p not in (1, 2):
        raise ValueError(f"multi_margin_loss: p must be 1 or 2, got {p}")
    _same_device("multi_margin_loss", input, target, weight)
    x = input if input.ndim == 2 else input.unsqueeze(0)
    t = target.reshape(-1)
    n, c = x.shape
    if t.shape != (n,):
        raise ValueError(f"multi_margin_loss: target must have shape ({n},), got {target.shape}")
    correct = x.gather(1, t.reshape(n, 1))
    viol = E.relu(margin - correct + x)
    if p == 2:
        viol = viol * viol
    if weight is not None:
        viol = viol * weight[t].reshape(n, 1)
    xp = get_array_module(x._data)
    others = Tensor._wrap(xp.arange(c)[None, :] != t._data[:, None])
    loss = (viol * others.type(x.dtype)).sum(dim=1) / c
    return _reduce(loss if input.ndim == 2 else loss.reshape(()), reduction,
                   "multi_margin_loss")


def soft_margin_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    target = _same_shape("soft_margin_loss", input, target)
    return _reduce(E.softplus(-target * input), reduction, "soft_margin_loss")


def margin_ranking_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0,
                        reduction: str = "mean") -> Tensor:
    return _reduce(E.relu(-target * (input1 - input2) + margin), reduction,
                   "margin_ranking_loss")


@leaf("kl_div")
def kl_div(input: Tensor, target: Tensor, reduction: str = "mean",
           log_target: bool = False) -> Tensor:
    """KL divergence with ``input`` as log-probabilities (PyTorch's convention)."""
    if log_target:
        loss = E.exp(target) * (target - input)
    else:
        t = target._data
        xp = get_array_module(t)
        logt = xp.log(xp.where(t > 0, t, 1)).astype(t.dtype)  # 0 log 0 = 0
        loss = target * (Tensor._wrap(logt) - input)
    if reduction == "batchmean":
        return loss.sum() / input.shape[0]
    return _reduce(loss, reduction, "kl_div")


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """``x1 . x2 / (max(|x1|, eps) max(|x2|, eps))`` along ``dim``.

    Each norm is floored on its own (as PyTorch does), so two tiny parallel vectors still
    have similarity 1 instead of being squashed towards 0 by a floored product.
    """
    n1 = x1.norm(dim=dim).clamp(min=eps)
    n2 = x2.norm(dim=dim).clamp(min=eps)
    return (x1 * x2).sum(dim=dim) / (n1 * n2)


def pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6,
                      keepdim: bool = False) -> Tensor:
    return (x1 - x2 + eps).norm(p=p, dim=-1, keepdim=keepdim)


def cosine_embedding_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0,
                          reduction: str = "mean") -> Tensor:
    """``1 - cos`` for similar pairs (target 1), ``max(0, cos - margin)`` for dissimilar (-1)."""
    # PyTorch's formula: 1e-12 added to each squared norm keeps zero vectors finite.
    sq1 = (input1 * input1).sum(dim=-1) + 1e-12
    sq2 = (input2 * input2).sum(dim=-1) + 1e-12
    cos = (input1 * input2).sum(dim=-1) / (sq1 * sq2).sqrt()
    loss = (E.where(target == 1, 1 - cos, 0.0)
            + E.where(target == -1, E.relu(cos - margin), 0.0))
    return _reduce(loss, reduction, "cosine_embedding_loss")


def triplet_margin_loss(anchor: Tensor, positive: Tensor, negative: Tensor, margin: float = 1.0,
                        p: float = 2.0, eps: float = 1e-6, swap: bool = False,
                        reduction: str = "mean") -> Tensor:
    """``max(d(a, p) - d(a, n) + margin, 0)``: the face-verification triplet loss."""
    d_ap = pairwise_distance(anchor, positive, p, eps)
    d_an = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_an = E.minimum(d_an, pairwise_distance(positive, negative, p, eps))
    return _reduce(E.relu(d_ap - d_an + margin), reduction, "triplet_margin_loss")


def gaussian_nll_loss(input: Tensor, target: Tensor, var, full: bool = False,
                      eps: float = 1e-6, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of ``target`` under N(``input``, ``var``):
    ``0.5 * (log(var) + (input - target)^2 / var)`` (+ ``0.5 log(2 pi)`` when ``full``).

    ``var`` may be a number, shaped like ``input``, shaped like ``input`` without its last
    dimension (one variance per sample, e.g. (N,) for input (N, D)), or ``input``'s shape
    with exactly one dimension of size 1. Variances below ``eps`` are raised to ``eps`` for
    the value only; the gradient still flows to ``var`` unchanged, as in PyTorch.

    >>> import shendu as sd
    >>> F = sd.nn.functional
    >>> F.gaussian_nll_loss(sd.zeros(2, 3), sd.ones(2, 3), sd.ones(2), reduction='sum')
    tensor(3.)
    """
    op = "gaussian_nll_loss"
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    xp = get_array_module(input._data)
    if not isinstance(var, Tensor):
        if float(var) < 0:
            raise ValueError(f"{op}: var must be non-negative, got {var}")
        var = Tensor._wrap(xp.full(input.shape, var, dtype=input.dtype))
    elif var.numel() and bool((var._data < 0).any()):
        raise ValueError(f"{op}: var has negative entries")
    if var.shape != input.shape:
        if var.shape == input.shape[:-1]:  # one variance per sample: broadcast over the last
            var = var.unsqueeze(-1)
        elif not (var.ndim == input.ndim and sum(
                v for i, v in zip(input.shape, var.shape) if i != v) == 1):
            raise ValueError(f"{op}: var of shape {var.shape} does not fit input of shape "
                             f"{input.shape} (expected {input.shape}, {input.shape[:-1]}, or "
                             "the input's shape with one dimension of size 1)")
    # clamp the value, not the gradient: var + (clamped - var) with the difference constant
    raised = xp.maximum(var._data, eps).astype(var._data.dtype, copy=False) - var._data
    v = var + Tensor._wrap(raised)
    loss = 0.5 * (v.log() + (input - target) ** 2 / v)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction, op)
