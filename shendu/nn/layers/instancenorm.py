"""Instance normalisation: ``InstanceNorm1d`` (N, C, L) and ``InstanceNorm2d`` (N, C, H, W),
each sample's channels normalised over their own spatial positions (style transfer, GANs).

As in PyTorch the defaults are ``affine=False`` and ``track_running_stats=False``; with
tracking on, the buffers and state-dict keys are batch norm's.
"""
from __future__ import annotations

import warnings

from ...tensor import Tensor
from .. import functional as F
from .norm import _BatchNorm

__all__ = ["InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d"]


class _InstanceNorm(_BatchNorm):
    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = False, track_running_stats: bool = False, device=None,
                 dtype=None, *, bias: bool = True) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device,
                         dtype, bias=bias)

    def forward(self, input: Tensor) -> Tensor:
        nd = self._dims[0]
        if input.ndim not in (nd - 1, nd):
            raise ValueError(f"{type(self).__name__}: expected {nd}-D {self._shape_text} or "
                             f"{nd - 1}-D unbatched input, got shape {input.shape}")
        unbatched = input.ndim == nd - 1
        x = input.unsqueeze(0) if unbatched else input
        c = x.shape[1]
        if c != self.num_features:
            if self.affine or self.track_running_stats:
                raise ValueError(f"{type(self).__name__}({self.num_features}): expected "
                                 f"input with {self.num_features} channels, got shape "
                                 f"{input.shape}")
            # PyTorch only warns here: without parameters num_features is not used.
            warnings.warn(f"{type(self).__name__}: input's channel count {c} does not match "
                          f"num_features={self.num_features} (unused since affine=False)",
                          stacklevel=2)
        use_input_stats = self.training or not self.track_running_stats
        out = F.instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                              use_input_stats, self.momentum if self.momentum is not None
                              else 0.0, self.eps)
        return out.squeeze(0) if unbatched else out


class InstanceNorm1d(_InstanceNorm):
    """Normalise each (sample, channel) of (N, C, L) (or unbatched (C, L)) over L.

    Args:
        num_features: number of channels C.
        eps: added to the variance for stability.
        momentum: weight of the new statistics in the running ones (None: no update).
        affine: learn a per-channel scale (ones) and shift (zeros); default False.
        track_running_stats: keep running statistics and use them in eval mode; default
            False (eval mode then uses each instance's own statistics too).
        bias: learn the shift (only with affine).

    >>> import shendu as sd
    >>> m = sd.nn.InstanceNorm1d(2)
    >>> m
    InstanceNorm1d(2, eps=1e-05, momentum=0.1, affine=False, bias=False, track_running_stats=False)
    >>> m(sd.tensor([[[1.0, 3.0], [0.0, 4.0]]]))
    tensor([[[-1.0000,  1.0000],
             [-1.0000,  1.0000]]])
    """

    _dims, _shape_text = (3,), "(N, C, L)"


class InstanceNorm2d(_InstanceNorm):
    """Normalise each (sample, channel) of (N, C, H, W) (or unbatched (C, H, W)) over H, W;
    arguments as ``InstanceNorm1d``.

    >>> import shendu as sd
    >>> y = sd.nn.InstanceNorm2d(3, affine=True)(sd.randn(2, 3, 4, 4))
    >>> bool(y.mean(dim=(2, 3)).abs().max() < 1e-5)
    True
    """

    _dims, _shape_text = (4,), "(N, C, H, W)"


class InstanceNorm3d(_InstanceNorm):
    """Instance normalisation of (N, C, D, H, W) volumes; arguments as ``InstanceNorm1d``."""

    _dims, _shape_text = (5,), "(N, C, D, H, W)"
