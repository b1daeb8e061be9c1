"""Data transforms that work on a single image or on a whole batch at once.

Images are ``(C, H, W)`` (or ``(H, W)``) and batches ``(N, C, H, W)``; every transform
takes a NumPy array or a ``Tensor`` and returns the same kind (``ToTensor`` always returns
a ``Tensor``). Random transforms draw each image's parameters independently, from the
``generator`` given to the call or the constructor, else from the stream the
``DataLoader`` set up for the batch, else from shendu's global generator.

Input statistics: compute them on the training split only and reuse them on dev/test::

    norm = Normalize.fit(train_images)      # per-channel mean/std of (N, C, H, W) data
    scaler = Standardize().fit(train_x)     # per-feature mean/std of (N, D) data
    dev_x = scaler(dev_x)                   # same numbers applied to other splits

>>> import numpy as np
>>> augment = Compose([RandomCrop(4, padding=1), RandomHorizontalFlip()])
>>> augment(np.zeros((8, 3, 4, 4), np.float32), generator=np.random.default_rng(0)).shape
(8, 3, 4, 4)
"""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor
from ._geometric import (
    CenterCrop,
    RandomCrop,
    RandomHorizontalFlip,
    RandomRotation,
    RandomVerticalFlip,
    center_crop,
    hflip,
    rotate,
    vflip,
)
from ._transform_base import Compose, ImageTransform, Lambda, Transform
from .tta import five_crop, multi_crop, ten_crop, tta_predict

__all__ = ["Transform", "ImageTransform", "Compose", "Lambda", "ToTensor", "Normalize",
           "Standardize", "ColorJitter", "RandomHorizontalFlip", "RandomVerticalFlip",
           "RandomCrop", "CenterCrop", "RandomRotation", "rotate", "hflip", "vflip",
           "center_crop", "five_crop", "ten_crop", "multi_crop", "tta_predict"]

_CHANNELS = (1, 3, 4)


class ToTensor(Transform):
    """uint8 images to a float32 ``Tensor`` in [0, 1], channels first.

    Accepts ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)`` images and ``(N, H, W, C)`` or
    ``(N, C, H, W)`` batches. ``layout='auto'`` reads a last axis of 1, 3 or 4 as channels
    unless the leading (channel-first) axis looks more like channels (also 1, 3 or 4, and
    not larger); say ``'HWC'`` or ``'CHW'`` to be explicit. Only
    uint8 is scaled by 1/255; other dtypes are just cast (as in PyTorch).

    >>> import numpy as np
    >>> ToTensor()(np.full((2, 2, 3), 255, np.uint8)).shape
    (3, 2, 2)
    """

    def __init__(self, layout: str = "auto"):
        if layout not in ("auto", "HWC", "CHW"):
            raise ValueError(f"ToTensor: layout must be 'auto', 'HWC' or 'CHW', got {layout!r}")
        self.layout = layout

    def __call__(self, x, generator=None) -> Tensor:
        return Tensor._wrap(self.apply(np.asarray(x)))

    def apply(self, x: np.ndarray, generator=None) -> np.ndarray:
        if x.ndim == 2:
            x = x[None]
        elif x.ndim not in (3, 4):
            raise ValueError(f"ToTensor: expected (H, W), (H, W, C), (C, H, W) or a batch "
                             f"of those, got shape {x.shape}")
        channel_axis = x.ndim - 3
        last, first = x.shape[-1], x.shape[channel_axis]
        hwc = self.layout == "HWC" or (self.layout == "auto" and last in _CHANNELS
                                       and (first not in _CHANNELS or last < first))
        if hwc:
            x = np.moveaxis(x, -1, channel_axis)
        if x.dtype == np.uint8:
            out = np.multiply(x, np.float32(1 / 255), dtype=np.float32)
        else:
            out = x.astype(np.float32)
        return np.ascontiguousarray(out)


def _float(x: np.ndarray) -> np.ndarray:
    return x if x.dtype.kind == "f" else x.astype(np.float32)


class Normalize(ImageTransform):
    """``(x - mean) / std`` per channel (axis -3 of ``(C, H, W)`` or ``(N, C, H, W)``).

    Integer input is cast to float32 first (not scaled). ``Normalize.fit(train_images)``
    computes the statistics from training data so the same ones serve dev and test.

    >>> import numpy as np
    >>> Normalize([0.5], [0.25])(np.ones((1, 1, 2), np.float32))
    array([[[2., 2.]]], dtype=float32)
    """

    def __init__(self, mean, std, inplace: bool = False):
        super().__init__()
        self.mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        self.std = np.asarray(std, dtype=np.float64).reshape(-1)
        if self.mean.size == 0 or self.std.size == 0:
            raise ValueError("Normalize: mean and std must be non-empty")
        if np.any(self.std == 0):
            raise ValueError(f"Normalize: std must be non-zero, got {self.std.tolist()} "
                             "(a constant channel?)")
        self.inplace = inplace

    @classmethod
    def fit(cls, images, scale: float = 1.0, chunk: int = 4096) -> Normalize:
        """Per-channel mean and (population) std of ``images * scale``.

        Args:
            images: training images ``(N, C, H, W)``, or ``(N, H, W)`` for one channel.
            scale: e.g. ``1/255`` to get statistics of uint8 data as ``ToTensor`` sees it.
            chunk: images per pass, bounding the float64 working memory.

        >>> import numpy as np
        >>> Normalize.fit(np.array([[[[0.0]]], [[[2.0]]]])).std
        array([1.])
        """
        x = np.asarray(images)
        if x.ndim == 3:
            x = x[:, None]
        if x.ndim != 4 or len(x) == 0:
            raise ValueError(f"Normalize.fit: expected training images (N, C, H, W) or "
                             f"(N, H, W), got shape {x.shape}; for (N, D) features use "
                             "Standardize().fit(x)")
        count = x.shape[0] * x.shape[2] * x.shape[3]
        total = sum(x[i:i + chunk].sum(axis=(0, 2, 3), dtype=np.float64)
                    for i in range(0, len(x), chunk))
        mean = total / count
        sq = sum(((x[i:i + chunk] - mean[:, None, None]) ** 2).sum(axis=(0, 2, 3))
                 for i in range(0, len(x), chunk))
        return cls(mean * scale, np.sqrt(sq / count) * scale)

    def apply_batch(self, x, rng):
        c = x.shape[1]
        if self.mean.size not in (1, c) or self.std.size not in (1, c):
            raise ValueError(f"Normalize: mean/std have {self.mean.size}/{self.std.size} "
                             f"values but the input has {c} channels (shape {x.shape})")
        x = _float(x)
        mean = self.mean.astype(x.dtype)[:, None, None]
        std = self.std.astype(x.dtype)[:, None, None]
        if self.inplace and x.flags.writeable:
            x -= mean
            x /= std
            return x
        return (x - mean) / std


class Standardize(Transform):
    """Zero mean, unit variance per feature, with statistics fitted on training data.

    Args:
        mean, std: known statistics; or leave them None and call ``fit``.
        axis: the axes averaged over in ``fit`` (0: one statistic per feature).
        eps: a std at or below this counts as zero: such (constant) features are only
            centred, not divided.

    >>> import numpy as np
    >>> train = np.array([[1.0, 10.0], [3.0, 30.0]])
    >>> s = Standardize().fit(train)
    >>> s(train)
    array([[-1., -1.],
           [ 1.,  1.]])
    >>> s.inverse(s(train))
    array([[ 1., 10.],
           [ 3., 30.]])
    """

    def __init__(self, mean=None, std=None, axis=0, eps: float = 1e-8):
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.std = None if std is None else np.asarray(std, dtype=np.float64)
        self.axis = axis
        self.eps = float(eps)

    def fit(self, x) -> Standardize:
        """Compute ``mean``/``std`` over ``axis`` of the training data; returns self."""
        x = np.asarray(x)
        if x.ndim == 0 or x.shape[0] == 0:
            raise ValueError(f"Standardize.fit: expected a non-empty (N, ...) array, got shape "
                             f"{x.shape}")
        self.mean = x.mean(axis=self.axis, dtype=np.float64, keepdims=True)[0]
        self.std = x.std(axis=self.axis, dtype=np.float64, keepdims=True)[0]
        return self

    def _stats(self, dtype):
        if self.mean is None or self.std is None:
            raise RuntimeError("Standardize: call fit(train_data) first (or pass mean and std)")
        dtype = dtype if dtype.kind == "f" else np.float32
        return self.mean.astype(dtype), np.where(self.std > self.eps, self.std, 1.0).astype(dtype)

    def apply(self, x: np.ndarray, generator=None) -> np.ndarray:
        mean, std = self._stats(x.dtype)
        return (_float(x) - mean) / std

    def inverse(self, x):
        """Undo the standardization (e.g. to report predictions in original units)."""
        arr = np.asarray(x)
        mean, std = self._stats(arr.dtype)
        out = _float(arr) * std + mean
        return Tensor._wrap(out) if isinstance(x, Tensor) else out

    def state_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std}

    def load_state_dict(self, state: dict) -> None:
        self.mean = np.asarray(state["mean"], dtype=np.float64)
        self.std = np.asarray(state["std"], dtype=np.float64)


def _factor_range(name: str, value, center: float = 1.0) -> tuple[float, float]:
    if isinstance(value, (int, float, np.number)):
        if value < 0:
            raise ValueError(f"ColorJitter: {name} must be non-negative, got {value}")
        return (max(0.0, center - value), center + value)
    lo, hi = (float(v) for v in value)
    if not 0 <= lo <= hi:
        raise ValueError(f"ColorJitter: {name} range must satisfy 0 <= min <= max, "
                         f"got {(lo, hi)}")
    return (lo, hi)


class ColorJitter(ImageTransform):
    """Random brightness, contrast and saturation changes, per image.

    Each strength ``s`` draws a factor uniformly from [max(0, 1 - s), 1 + s] (or give the
    range). Brightness scales the image, contrast blends it with its mean grey level,
    saturation with its greyscale version (3-channel images only); applied in that order.
    Float images are taken to be in [0, 1] and clipped to it; uint8 to [0, 255].

    >>> import numpy as np
    >>> x = np.full((1, 3, 2, 2), 0.5, np.float32)
    >>> float(ColorJitter(brightness=(2, 2))(x).max())
    1.0
    """

    random = True

    def __init__(self, brightness=0, contrast=0, saturation=0, generator=None):
        super().__init__(generator)
        self.brightness = _factor_range("brightness", brightness)
        self.contrast = _factor_range("contrast", contrast)
        self.saturation = _factor_range("saturation", saturation)

    def apply_batch(self, x, rng):
        if x.dtype.kind not in "fu":
            raise TypeError(f"ColorJitter: expected float images in [0, 1] or uint8, got "
                            f"dtype {x.dtype}")
        top = 255.0 if x.dtype == np.uint8 else 1.0
        n, c = x.shape[:2]
        out = x.astype(np.float32)
        factors = [rng.uniform(lo, hi, size=(n, 1, 1, 1)).astype(np.float32)
                   for lo, hi in (self.brightness, self.contrast, self.saturation)]
        out = np.clip(out * factors[0], 0, top)
        grey = _grey(out)
        mean = grey.mean(axis=(1, 2, 3), keepdims=True)
        out = np.clip(mean + (out - mean) * factors[1], 0, top)
        if c == 3:
            grey = _grey(out)
            out = np.clip(grey + (out - grey) * factors[2], 0, top)
        return np.rint(out).astype(np.uint8) if x.dtype == np.uint8 else out.astype(x.dtype)


def _grey(x: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma of (N, 3, H, W) images; the image itself when it has one channel."""
    if x.shape[1] != 3:
        return x.mean(axis=1, keepdims=True)
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]

