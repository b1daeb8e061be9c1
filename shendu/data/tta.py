"""Test-time augmentation: predict on several crops/flips of each image and average.

Crops come out crop-major, ``(k, N, C, h, w)``, so averaging over axis 0 is one reduction.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..autograd import no_grad
from ..tensor import Tensor
from ._transform_base import as_batch, pair, rewrap, unwrap

__all__ = ["five_crop", "ten_crop", "multi_crop", "tta_predict"]


def _five(x4: np.ndarray, h: int, w: int, name: str) -> list[np.ndarray]:
    H, W = x4.shape[2:]
    if h > H or w > W:
        raise ValueError(f"{name}: crop size {(h, w)} is larger than the image {(H, W)}")
    top, left = int(round((H - h) / 2)), int(round((W - w) / 2))
    return [x4[:, :, :h, :w], x4[:, :, :h, W - w:], x4[:, :, H - h:, :w],
            x4[:, :, H - h:, W - w:], x4[:, :, top:top + h, left:left + w]]


def multi_crop(images, size, flip: bool = False):
    """The four corner crops and the centre crop (then the same of the mirrored images).

    Args:
        images: one image ``(C, H, W)``/``(H, W)`` or a batch ``(N, C, H, W)``.
        size: crop ``(height, width)`` or one int.
        flip: also crop the horizontally mirrored images (10 crops instead of 5).

    Returns:
        ``(k, N, C, h, w)`` for a batch, ``(k, C, h, w)`` for one image, where ``k`` is 5 or
        10, in the order top-left, top-right, bottom-left, bottom-right, centre (the order
        PyTorch's ``FiveCrop``/``TenCrop`` use).

    >>> import numpy as np
    >>> crops = multi_crop(np.arange(16).reshape(1, 4, 4), 2)
    >>> crops.shape, crops[0, 0].tolist(), crops[4, 0].tolist()
    ((5, 1, 2, 2), [[0, 1], [4, 5]], [[5, 6], [9, 10]])
    """
    arr, was_tensor = unwrap(images, "multi_crop")
    h, w = pair(size, "multi_crop", "size")
    x4, added = as_batch(arr, "multi_crop")
    crops = _five(x4, h, w, "multi_crop")
    if flip:
        crops += _five(x4[..., ::-1], h, w, "multi_crop")
    out = np.stack(crops)
    out = out[(slice(None),) + (0,) * added]  # drop the axes as_batch added
    return rewrap(out, was_tensor)


def five_crop(images, size):
    """``multi_crop(images, size)``: corners and centre."""
    return multi_crop(images, size, flip=False)


def ten_crop(images, size):
    """``multi_crop(images, size, flip=True)``: corners and centre, plain and mirrored."""
    return multi_crop(images, size, flip=True)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def tta_predict(model_fn: Callable, images, size=None, flip: bool = True,
                softmax: bool = False, batch_size: int | None = None) -> Tensor:
    """Average a model's predictions over crops and/or flips of each image.

    Args:
        model_fn: maps a float ``Tensor`` batch ``(n, C, h, w)`` to predictions ``(n, ...)``
            (a model in eval mode); it runs under ``no_grad``.
        images: preprocessed images ``(N, C, H, W)`` (array or tensor).
        size: crop size for the 5/10-crop scheme; None uses the whole image (then only
            flipping varies).
        flip: also use horizontally mirrored views.
        softmax: turn outputs (logits) into probabilities before averaging.
        batch_size: images per model call (None: all ``N`` at once, per view).

    Returns:
        The averaged predictions, a float ``Tensor`` ``(N, ...)``.

    >>> import numpy as np
    >>> model = lambda x: x.sum(axis=(1, 2, 3)).reshape(-1, 1)   # "brightness" of each view
    >>> x = np.arange(32, dtype=np.float32).reshape(2, 1, 4, 4)
    >>> tta_predict(model, x, size=2, flip=False).shape
    (2, 1)
    """
    arr, _ = unwrap(images, "tta_predict")
    if arr.ndim != 4:
        raise ValueError(f"tta_predict: expected a batch (N, C, H, W), got shape {arr.shape}")
    if size is None:
        views = [arr, arr[..., ::-1]] if flip else [arr]
    else:
        views = list(multi_crop(arr, size, flip=flip))
    n = len(arr)
    step = n if batch_size is None else int(batch_size)
    if step <= 0:
        raise ValueError(f"tta_predict: batch_size must be positive, got {batch_size}")
    total = None
    with no_grad():
        for view in views:
            parts = []
            for start in range(0, n, step):
                chunk = np.ascontiguousarray(view[start:start + step])
                parts.append(np.asarray(model_fn(Tensor._wrap(chunk)), dtype=np.float64))
            pred = np.concatenate(parts)
            if softmax:
                pred = _softmax(pred)
            total = pred if total is None else total + pred
    return Tensor._wrap((total / len(views)).astype(np.float32))
