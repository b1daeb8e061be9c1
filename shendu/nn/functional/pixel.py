"""Pixel shuffle: move channels into space and back (sub-pixel convolution, ESPCN)."""
from __future__ import annotations

from ...tensor import Tensor


def _factor(r, op: str) -> int:
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise ValueError(f"{op}: the factor must be a positive int, got {r!r}")
    return r


def pixel_shuffle(input: Tensor, upscale_factor: int) -> Tensor:
    """Rearrange (*, C * r^2, H, W) into (*, C, H * r, W * r): output pixel
    ``(c, h * r + i, w * r + j)`` is input channel ``c * r^2 + i * r + j`` at ``(h, w)``.

    >>> import shendu as sd
    >>> sd.nn.functional.pixel_shuffle(sd.arange(4.0).reshape(1, 4, 1, 1), 2)
    tensor([[[[0., 1.],
              [2., 3.]]]])
    """
    r = _factor(upscale_factor, "pixel_shuffle")
    if input.ndim < 3:
        raise ValueError(f"pixel_shuffle: expected an input with at least 3 dims (*, C, H, W), "
                         f"got shape {input.shape}")
    *lead, c, h, w = input.shape
    if c % (r * r):
        raise ValueError(f"pixel_shuffle: the channel dimension ({c}, input shape "
                         f"{input.shape}) must be divisible by upscale_factor**2 = {r * r}")
    k = len(lead)
    x = input.reshape(*lead, c // (r * r), r, r, h, w)
    x = x.permute(*range(k), k, k + 3, k + 1, k + 4, k + 2)  # (*, C, H, r, W, r)
    return x.reshape(*lead, c // (r * r), h * r, w * r)


def pixel_unshuffle(input: Tensor, downscale_factor: int) -> Tensor:
    """The inverse of ``pixel_shuffle``: (*, C, H * r, W * r) -> (*, C * r^2, H, W).

    >>> import shendu as sd
    >>> x = sd.arange(8.0).reshape(1, 2, 2, 2)
    >>> bool((sd.nn.functional.pixel_shuffle(
    ...     sd.nn.functional.pixel_unshuffle(x, 2), 2) == x).all())
    True
    """
    r = _factor(downscale_factor, "pixel_unshuffle")
    if input.ndim < 3:
        raise ValueError(f"pixel_unshuffle: expected an input with at least 3 dims "
                         f"(*, C, H, W), got shape {input.shape}")
    *lead, c, h, w = input.shape
    if h % r or w % r:
        raise ValueError(f"pixel_unshuffle: height and width ({h}, {w}; input shape "
                         f"{input.shape}) must both be divisible by downscale_factor = {r}")
    k = len(lead)
    x = input.reshape(*lead, c, h // r, r, w // r, r)
    x = x.permute(*range(k), k, k + 2, k + 4, k + 1, k + 3)  # (*, C, r, r, H, W)
    return x.reshape(*lead, c * r * r, h // r, w // r)
