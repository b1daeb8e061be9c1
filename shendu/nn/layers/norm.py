"""Normalisation layers: batch norm (1-D/2-D/3-D), layer norm, group norm, local response norm.

Batch norm keeps PyTorch's buffers (``running_mean``, ``running_var``,
``num_batches_tracked``) so checkpoints move between the two frameworks.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from ... import creation, dtypes
from ...autograd.grad_mode import no_grad
from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..module import Module
from ..parameter import Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LayerNorm", "GroupNorm",
           "LocalResponseNorm"]


def _affine_params(layer: Module, affine: bool, bias: bool, shape: tuple, device,
                   dtype) -> None:
    """Register ``weight`` and ``bias`` (None where not learned), uninitialised."""
    weight = Parameter(creation.empty(*shape, device=device, dtype=dtype)) if affine else None
    shift = Parameter(creation.empty(*shape, device=device, dtype=dtype)) \
        if affine and bias else None
    layer.register_parameter("weight", weight)
    layer.register_parameter("bias", shift)


def _reset_affine(layer: Module) -> None:
    """Scale 1 and shift 0: the layer starts as a pure normaliser."""
    if layer.weight is not None:
        init.ones_(layer.weight)
    if layer.bias is not None:
        init.zeros_(layer.bias)


class _BatchNorm(Module):
    _dims: tuple[int, ...] = ()
    _shape_text = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None,
                 dtype=None, *, bias: bool = True) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        _affine_params(self, affine, bias, (num_features,), device, dtype)
        if track_running_stats:
            self.register_buffer("running_mean",
                                 creation.zeros(num_features, device=device, dtype=dtype))
            self.register_buffer("running_var",
                                 creation.ones(num_features, device=device, dtype=dtype))
            self.register_buffer("num_batches_tracked",
                                 creation.tensor(0, dtype=dtypes.int64, device=device))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches seen."""
        if self.track_running_stats:
            with no_grad():
                self.running_mean.zero_()
                self.running_var.fill_(1)
                self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        """Reset the running statistics and set weight (scale) to 1, bias (shift) to 0."""
        self.reset_running_stats()
        _reset_affine(self)

    def forward(self, input: Tensor) -> Tensor:
        if input.ndim not in self._dims or input.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}): expected "
                             f"{self._shape_text} input with C={self.num_features}, got shape "
                             f"{input.shape}")
        factor = self._momentum_factor()
        # Batch statistics in training, and in eval too when no running ones are kept.
        use_batch = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if track else None,
                            self.running_var if track else None, self.weight, self.bias,
                            use_batch, factor, self.eps)

    def _momentum_factor(self) -> float:
        """The running statistics' update weight for this forward (counts the batch)."""
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            nbt = self.num_batches_tracked
            if nbt is not None:
                nbt._data += 1
                nbt._version[0] += 1
                if self.momentum is None:  # cumulative moving average of all batches so far
                    factor = 1.0 / float(nbt._data)
        return factor

    def _load_from_state_dict(self, state_dict: Mapping, prefix: str, missing_keys: list,
                              unexpected_keys: list, error_msgs: list, copies: list) -> None:
        super()._load_from_state_dict(state_dict, prefix, missing_keys, unexpected_keys,
                                      error_msgs, copies)
        # Checkpoints from before num_batches_tracked existed: keep the current count.
        key = prefix + "num_batches_tracked"
        if key in missing_keys:
            missing_keys.remove(key)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over (N, C) or (N, C, L) inputs, per channel C.

    Training normalises by the batch's mean and (biased) variance and updates
    ``running = (1 - momentum) * running + momentum * batch_stat`` (unbiased variance);
    ``momentum=None`` uses the cumulative average of all batches instead. Eval mode
    normalises by the running statistics. A batch of one sample cannot be normalised in
    training (its variance is 0); that raises a clear error.

    Args:
        num_features: number of channels C.
        eps: added to the variance for stability.
        momentum: weight of the new batch in the running statistics (None: cumulative).
        affine: learn a per-channel scale (weight, ones) and shift (bias, zeros).
        track_running_stats: keep running statistics (else eval uses batch statistics).
        bias: learn the shift (only with affine).

    >>> import shendu as sd
    >>> bn = sd.nn.layers.BatchNorm1d(3)
    >>> bn
    BatchNorm1d(3, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)
    >>> y = bn(sd.randn(8, 3) * 5 + 2)
    >>> bool(y.mean(0).abs().max() < 1e-5), int(bn.num_batches_tracked)
    (True, 1)
    """

    _dims, _shape_text = (2, 3), "2-D (N, C) or 3-D (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) images per channel; arguments as ``BatchNorm1d``.

    >>> import shendu as sd
    >>> bn = sd.nn.layers.BatchNorm2d(4)
    >>> bn(sd.randn(2, 4, 5, 5)).shape
    (2, 4, 5, 5)
    >>> sorted(bn.state_dict())
    ['bias', 'num_batches_tracked', 'running_mean', 'running_var', 'weight']
    """

    _dims, _shape_text = (4,), "4-D (N, C, H, W)"


class BatchNorm3d(_BatchNorm):
    """Batch normalisation of (N, C, D, H, W) volumes per channel; arguments as
    ``BatchNorm1d``."""

    _dims, _shape_text = (5,), "5-D (N, C, D, H, W)"


class LayerNorm(Module):
    """Normalise each sample over its trailing ``normalized_shape`` dims (no batch statistics,
    so it behaves the same in training and eval, and for a batch of one).

    Args:
        normalized_shape: int or shape of the trailing dims to normalise over.
        eps: added to the variance for stability.
        elementwise_affine: learn a scale (weight, ones) and shift (bias, zeros) per element.
        bias: learn the shift (only with elementwise_affine).

    >>> import shendu as sd
    >>> ln = sd.nn.layers.LayerNorm(4)
    >>> ln
    LayerNorm((4,), eps=1e-05, elementwise_affine=True, bias=True)
    >>> y = ln(sd.tensor([[1.0, 2.0, 3.0, 4.0]]))
    >>> round(float(y.mean()), 6), round(float(y.var(unbiased=False)), 3)
    (0.0, 1.0)
    """

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True, device=None,
                 dtype=None) -> None:
        super().__init__()
        shape = ((int(normalized_shape),) if isinstance(normalized_shape, int)
                 else tuple(int(s) for s in normalized_shape))
        self.normalized_shape, self.eps = shape, eps
        self.elementwise_affine = elementwise_affine
        _affine_params(self, elementwise_affine, bias, shape, device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_affine(self)

    def forward(self, input: Tensor) -> Tensor:
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")


class GroupNorm(Module):
    """Normalise (N, C, ...) over groups of ``C / num_groups`` channels per sample.

    Args:
        num_groups: number of groups (must divide num_channels); 1 is layer norm over
            (C, ...), ``num_channels`` is instance norm.
        num_channels: number of channels C.
        eps: added to the variance for stability.
        affine: learn a per-channel scale (ones) and shift (zeros).
        bias: learn the shift (only with affine).

    >>> import shendu as sd
    >>> sd.nn.layers.GroupNorm(2, 6)
    GroupNorm(2, 6, eps=1e-05, affine=True, bias=True)
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, device=None, dtype=None, *, bias: bool = True) -> None:
        super().__init__()
        if num_groups <= 0 or num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by "
                             f"num_groups ({num_groups})")
        self.num_groups, self.num_channels = num_groups, num_channels
        self.eps, self.affine = eps, affine
        _affine_params(self, affine, bias, (num_channels,), device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_affine(self)

    def forward(self, input: Tensor) -> Tensor:
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, "
                f"affine={self.affine}, bias={self.bias is not None}")


class LocalResponseNorm(Module):
    """AlexNet's local response normalisation across channels:
    ``b_c = a_c / (k + alpha / n * sum_{c' near c} a_{c'}^2) ** beta`` over ``size``
    neighbouring channels (zero-padded at the ends), as PyTorch defines it.

    >>> import shendu as sd
    >>> sd.nn.layers.LocalResponseNorm(2)(sd.ones(1, 3, 2, 2)).shape
    (1, 3, 2, 2)
    """

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75,
                 k: float = 1.0) -> None:
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, input: Tensor) -> Tensor:
        if input.ndim < 3:
            raise ValueError(f"LocalResponseNorm: expected (N, C, ...) input with at least 3 "
                             f"dims, got shape {input.shape}")
        n, c = input.shape[:2]
        # Average of squares over a channel window = a (size x 1) average pool over
        # (channels, positions) after zero-padding the channel axis.
        sq = (input * input).reshape(n, 1, c, -1)
        sq = F.pad(sq, (0, 0, self.size // 2, (self.size - 1) // 2))
        div = F.avg_pool2d(sq, (self.size, 1), stride=1).reshape(input.shape)
        return input / (div * self.alpha + self.k) ** self.beta

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
