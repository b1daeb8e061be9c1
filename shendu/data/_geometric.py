"""Geometric image transforms: flips, crops, rotations. Vectorised over the batch."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._transform_base import ImageTransform, as_batch, from_batch, pair, rewrap, unwrap

__all__ = ["RandomHorizontalFlip", "RandomVerticalFlip", "RandomCrop", "CenterCrop",
           "RandomRotation", "rotate", "hflip", "vflip", "center_crop"]

_PAD_MODES = {"constant": "constant", "edge": "edge", "reflect": "reflect",
              "symmetric": "symmetric"}


def _check_p(name: str, p: float) -> float:
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{name}: p must be a probability in [0, 1], got {p}")
    return float(p)


def hflip(x):
    """Mirror images left to right (last axis); works on one image or a batch."""
    arr, was_tensor = unwrap(x, "hflip")
    return rewrap(np.ascontiguousarray(arr[..., ::-1]), was_tensor)


def vflip(x):
    """Mirror images top to bottom (second-to-last axis)."""
    arr, was_tensor = unwrap(x, "vflip")
    return rewrap(np.ascontiguousarray(arr[..., ::-1, :]), was_tensor)


class RandomHorizontalFlip(ImageTransform):
    """Mirror each image left to right with probability ``p``.

    >>> import numpy as np
    >>> RandomHorizontalFlip(p=1.0)(np.array([[[1, 2, 3]]]))
    array([[[3, 2, 1]]])
    """

    random = True
    _axis = -1

    def __init__(self, p: float = 0.5, generator=None):
        super().__init__(generator)
        self.p = _check_p(type(self).__name__, p)

    def apply_batch(self, x, rng):
        flip = rng.random(len(x)) < self.p
        out = x.copy()
        index = (flip, Ellipsis, slice(None, None, -1)) + (slice(None),) * (-1 - self._axis)
        out[flip] = x[index]
        return out


class RandomVerticalFlip(RandomHorizontalFlip):
    """Mirror each image top to bottom with probability ``p``.

    >>> import numpy as np
    >>> RandomVerticalFlip(p=1.0)(np.array([[1], [2]]))
    array([[2],
           [1]])
    """

    _axis = -2


def _padding(padding) -> tuple[int, int, int, int]:
    """PyTorch's padding forms as (left, top, right, bottom)."""
    if padding is None:
        return (0, 0, 0, 0)
    if isinstance(padding, (int, np.integer)):
        return (int(padding),) * 4
    padding = tuple(int(p) for p in padding)
    if len(padding) == 2:
        return padding * 2
    if len(padding) == 4:
        return padding
    raise ValueError(f"RandomCrop: padding must be an int, (left/right, top/bottom) or "
                     f"(left, top, right, bottom), got {padding}")


def _pad(x: np.ndarray, ltrb: Sequence[int], fill, mode: str) -> np.ndarray:
    left, top, right, bottom = ltrb
    if not any(ltrb):
        return x
    widths = ((0, 0), (0, 0), (top, bottom), (left, right))
    if mode == "constant":
        return np.pad(x, widths, mode="constant", constant_values=fill)
    return np.pad(x, widths, mode=_PAD_MODES[mode])


class RandomCrop(ImageTransform):
    """Cut a random ``size`` window from each image, after optional padding.

    Args:
        size: output ``(height, width)``, or one int for a square.
        padding: pixels added first: an int, (left/right, top/bottom) or
            (left, top, right, bottom); the usual CIFAR recipe is ``RandomCrop(32, 4)``.
        pad_if_needed: pad images smaller than ``size`` up to it.
        fill: value of constant padding.
        padding_mode: ``'constant'``, ``'edge'``, ``'reflect'`` or ``'symmetric'``.

    >>> import numpy as np
    >>> x = np.arange(16).reshape(1, 4, 4)
    >>> bool((RandomCrop(4)(x) == x).all())
    True
    """

    random = True

    def __init__(self, size, padding=None, pad_if_needed: bool = False, fill=0,
                 padding_mode: str = "constant", generator=None):
        super().__init__(generator)
        self.size = pair(size, "RandomCrop", "size")
        self.padding = _padding(padding)
        self.pad_if_needed = pad_if_needed
        self.fill = fill
        if padding_mode not in _PAD_MODES:
            raise ValueError(f"RandomCrop: padding_mode must be one of {sorted(_PAD_MODES)}, "
                             f"got {padding_mode!r}")
        self.padding_mode = padding_mode

    def apply_batch(self, x, rng):
        h, w = self.size
        x = _pad(x, self.padding, self.fill, self.padding_mode)
        if self.pad_if_needed and (x.shape[2] < h or x.shape[3] < w):
            dh, dw = max(0, h - x.shape[2]), max(0, w - x.shape[3])
            x = _pad(x, (dw, dh, dw, dh), self.fill, self.padding_mode)
        n, _, ph, pw = x.shape
        if h > ph or w > pw:
            raise ValueError(f"RandomCrop: crop size {(h, w)} is larger than the (padded) "
                             f"image {(ph, pw)}; use padding= or pad_if_needed=True")
        top = rng.integers(0, ph - h + 1, size=n)
        left = rng.integers(0, pw - w + 1, size=n)
        windows = sliding_window_view(x, (h, w), axis=(2, 3))  # (N, C, ph-h+1, pw-w+1, h, w)
        return windows[np.arange(n), :, top, left]  # one gather: (N, C, h, w)


def center_crop(x, size):
    """The central ``size`` window of an image or batch (PyTorch's rounding)."""
    arr, was_tensor = unwrap(x, "center_crop")
    h, w = pair(size, "center_crop", "size")
    x4, added = as_batch(arr, "center_crop")
    H, W = x4.shape[2:]
    if h > H or w > W:
        raise ValueError(f"center_crop: crop size {(h, w)} is larger than the image {(H, W)}")
    top, left = int(round((H - h) / 2)), int(round((W - w) / 2))
    out = np.ascontiguousarray(x4[:, :, top:top + h, left:left + w])
    return rewrap(from_batch(out, added), was_tensor)


class CenterCrop(ImageTransform):
    """Cut the central ``size`` window from each image.

    >>> import numpy as np
    >>> CenterCrop(2)(np.arange(16).reshape(4, 4))
    array([[ 5,  6],
           [ 9, 10]])
    """

    def __init__(self, size):
        super().__init__()
        self.size = pair(size, "CenterCrop", "size")

    def apply_batch(self, x, rng):
        return center_crop(x, self.size)


def _trig(degrees: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # cos(90 degrees) is 6e-17, not 0: snap near-zero values so right-angle
    # rotations map pixel centres exactly onto pixel centres.
    # (At those angles the other value is exactly +-1 already.)
    rad = np.deg2rad(degrees)
    cos, sin = (np.where(np.abs(v) < 1e-12, 0.0, v) for v in (np.cos(rad), np.sin(rad)))
    return cos[:, None].astype(np.float32), sin[:, None].astype(np.float32)


class _PixelReader:
    """Reads pixels of a batch at integer coordinates, with ``fill`` outside the image.

    The batch gets a one-pixel border of ``fill``; coordinates are clipped into that
    border, so every out-of-image read lands on a fill pixel without any masking, and a
    whole batch is read with one flat ``take``.
    """

    def __init__(self, x4: np.ndarray, fill, dtype):
        N, C, H, W = x4.shape
        padded = np.pad(x4.astype(dtype, copy=False), ((0, 0), (0, 0), (1, 1), (1, 1)),
                        constant_values=fill)
        self.flat = padded.reshape(-1)
        self.H, self.W, self.Wp = H, W, W + 2
        plane = (H + 2) * (W + 2)
        self.sample_base = (np.arange(N) * (C * plane))[:, None]  # (N, 1)
        self.channel_offset = (np.arange(C) * plane)[None, :, None]  # (1, C, 1)

    def __call__(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """ys, xs: integer (N, P) -> (N, C, P)."""
        pix = (self.sample_base + (np.clip(ys, -1, self.H) + 1) * self.Wp
               + np.clip(xs, -1, self.W) + 1)
        return np.take(self.flat, pix[:, None, :] + self.channel_offset)


def rotate(x, angle, interpolation: str = "nearest", center=None, fill=0):
    """Rotate images counter-clockwise by ``angle`` degrees about their centre.

    Args:
        x: image ``(H, W)``/``(C, H, W)`` or batch ``(N, C, H, W)``.
        angle: degrees, one number or one per image.
        interpolation: ``'nearest'`` or ``'bilinear'``.
        center: ``(x, y)`` pixel to turn about; the image centre when None.
        fill: value for pixels that come from outside the image.

    >>> import numpy as np
    >>> img = np.arange(9).reshape(3, 3)
    >>> bool((rotate(img, 90) == np.rot90(img)).all())
    True
    """
    arr, was_tensor = unwrap(x, "rotate")
    if interpolation not in ("nearest", "bilinear"):
        raise ValueError(f"rotate: interpolation must be 'nearest' or 'bilinear', "
                         f"got {interpolation!r}")
    x4, added = as_batch(arr, "rotate")
    N, C, H, W = x4.shape
    cos, sin = _trig(np.array(np.broadcast_to(np.asarray(angle, np.float64), (N,))))
    cx, cy = ((W - 1) / 2, (H - 1) / 2) if center is None else map(float, center)
    rows, cols = np.divmod(np.arange(H * W, dtype=np.float32), np.float32(W))
    dy, dx = rows - np.float32(cy), cols - np.float32(cx)
    # For each output pixel, where it comes from: the inverse rotation of its position.
    src_x = cos * dx - sin * dy + np.float32(cx)  # (N, H*W), float32 is plenty for pixels
    src_y = sin * dx + cos * dy + np.float32(cy)
    if interpolation == "nearest":
        read = _PixelReader(x4, fill, x4.dtype)
        out = read(np.floor(src_y + 0.5).astype(np.intp), np.floor(src_x + 0.5).astype(np.intp))
    else:
        work = np.float64 if x4.dtype == np.float64 else np.float32
        read = _PixelReader(x4, fill, work)
        x0, y0 = np.floor(src_x), np.floor(src_y)
        wx, wy = (src_x - x0).astype(work)[:, None, :], (src_y - y0).astype(work)[:, None, :]
        x0, y0 = x0.astype(np.intp), y0.astype(np.intp)
        v00, v01 = read(y0, x0), read(y0, x0 + 1)
        v10, v11 = read(y0 + 1, x0), read(y0 + 1, x0 + 1)
        top = v00 + wx * (v01 - v00)
        bottom = v10 + wx * (v11 - v10)
        out = top + wy * (bottom - top)
        if x4.dtype.kind in "iu":  # integer images stay integer, rounded to nearest
            info = np.iinfo(x4.dtype)
            out = np.rint(out).clip(info.min, info.max)
        elif x4.dtype.kind == "b":
            out = out > 0.5
        out = out.astype(x4.dtype, copy=False)
    return rewrap(from_batch(out.reshape(N, C, H, W), added), was_tensor)


class RandomRotation(ImageTransform):
    """Rotate each image by a random angle drawn uniformly from ``degrees``.

    Args:
        degrees: d for the range (-d, d), or (min, max).
        interpolation: ``'nearest'`` or ``'bilinear'``.
        center: ``(x, y)`` to turn about; the image centre when None.
        fill: value for pixels that come from outside the image.

    >>> import numpy as np
    >>> x = np.arange(16.0).reshape(1, 4, 4)
    >>> bool((RandomRotation((0, 0))(x) == x).all())
    True
    """

    random = True

    def __init__(self, degrees, interpolation: str = "nearest", expand: bool = False,
                 center=None, fill=0, generator=None):
        super().__init__(generator)
        if isinstance(degrees, (int, float, np.number)):
            if degrees < 0:
                raise ValueError(f"RandomRotation: degrees must be non-negative, got {degrees}")
            degrees = (-float(degrees), float(degrees))
        degrees = tuple(float(d) for d in degrees)
        if len(degrees) != 2 or degrees[0] > degrees[1]:
            raise ValueError(f"RandomRotation: degrees must be a number or (min, max), "
                             f"got {degrees}")
        if expand:
            raise NotImplementedError("RandomRotation: expand=True is not supported; "
                                      "the output keeps the input's size")
        if interpolation not in ("nearest", "bilinear"):
            raise ValueError(f"RandomRotation: interpolation must be 'nearest' or 'bilinear', "
                             f"got {interpolation!r}")
        self.degrees = degrees
        self.interpolation = interpolation
        self.center = center
        self.fill = fill

    def apply_batch(self, x, rng):
        angles = rng.uniform(self.degrees[0], self.degrees[1], size=len(x))
        return rotate(x, angles, self.interpolation, self.center, self.fill)
