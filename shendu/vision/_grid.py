"""``make_grid`` and ``save_image`` with torchvision's signatures and results.

>>> import shendu as sd
>>> make_grid(sd.zeros(5, 1, 4, 4), nrow=3, padding=1).shape
(3, 11, 16)
"""
from __future__ import annotations

import math
import os

import numpy as np

from ..creation import from_numpy
from ..tensor import Tensor

__all__ = ["make_grid", "save_image", "to_uint8_image"]


def _as_array(tensor, who: str) -> np.ndarray:
    """A NumPy copy (float; integers become float32) of a tensor, array or list of them."""
    if isinstance(tensor, (list, tuple)):
        if not tensor:
            raise ValueError(f"{who}: got an empty list of images")
        return np.stack([_as_array(t, who) for t in tensor])
    if isinstance(tensor, Tensor):
        arr = tensor.detach().cpu().numpy()
    elif isinstance(tensor, np.ndarray):
        arr = tensor
    else:
        raise TypeError(f"{who}: expected a tensor, an array or a list of them, got "
                        f"{type(tensor).__name__}")
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{who}: expected numeric images, got dtype {arr.dtype}")
    return np.array(arr, dtype=arr.dtype if arr.dtype.kind == "f" else np.float32)


def make_grid(tensor, nrow: int = 8, padding: int = 2, normalize: bool = False,
              value_range: tuple[float, float] | None = None, scale_each: bool = False,
              pad_value: float = 0.0) -> Tensor:
    """Tile a batch of images ``(B, C, H, W)`` (or a list of ``(C, H, W)``) into one image.

    Args:
        tensor: the images; one-channel images become three-channel grey.
        nrow: images per row of the grid.
        padding: pixels between images and around the border.
        normalize: shift and scale to [0, 1] using ``value_range`` or the min and max.
        value_range: ``(low, high)`` clamped to and mapped onto [0, 1] when normalizing.
        scale_each: normalize each image on its own range instead of the batch's.
        pad_value: value of the padding pixels.

    Returns a ``(C, H', W')`` tensor (the single image itself when ``B == 1``).

    >>> import shendu as sd
    >>> g = make_grid(sd.ones(2, 1, 2, 2), nrow=2, padding=1, pad_value=0.5)
    >>> g.shape, g[0, 0].tolist()
    ((3, 4, 7), [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    """
    arr = _as_array(tensor, "make_grid")
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim == 3:
        if arr.shape[0] == 1:
            arr = np.concatenate([arr] * 3, 0)
        arr = arr[None]
    if arr.ndim != 4:
        raise ValueError(f"make_grid: expected (B, C, H, W), (C, H, W) or (H, W) images, got "
                         f"shape {arr.shape}")
    if arr.shape[1] == 1:
        arr = np.concatenate([arr] * 3, 1)
    if normalize:
        if value_range is not None and not isinstance(value_range, tuple):
            raise TypeError(f"make_grid: value_range must be a tuple (low, high), got "
                            f"{value_range!r}")

        def norm(img):
            low, high = value_range if value_range is not None else (img.min(), img.max())
            np.clip(img, low, high, out=img)
            img -= low
            img /= max(float(high) - float(low), 1e-5)

        for img in (arr if scale_each else [arr]):
            norm(img)
    if arr.shape[0] == 1:
        return from_numpy(np.ascontiguousarray(arr[0]))
    n = arr.shape[0]
    xmaps = min(nrow, n)
    ymaps = math.ceil(n / xmaps)
    h, w = arr.shape[2] + padding, arr.shape[3] + padding
    grid = np.full((arr.shape[1], h * ymaps + padding, w * xmaps + padding), pad_value,
                   dtype=arr.dtype)
    for k in range(n):
        y, x = divmod(k, xmaps)
        grid[:, y * h + padding:(y + 1) * h, x * w + padding:(x + 1) * w] = arr[k]
    return from_numpy(grid)


def to_uint8_image(tensor) -> np.ndarray:
    """A ``(C, H, W)`` image in [0, 1] as an ``(H, W, C)`` uint8 array, rounded as
    torchvision's ``save_image`` does (``x * 255 + 0.5``, clamped, truncated).

    >>> import shendu as sd
    >>> to_uint8_image(sd.full((3, 1, 1), 0.5)).tolist()
    [[[128, 128, 128]]]
    """
    arr = _as_array(tensor, "to_uint8_image")
    if arr.ndim != 3:
        raise ValueError(f"to_uint8_image: expected a (C, H, W) image, got shape {arr.shape}")
    out = np.clip(arr * 255 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0)
    return out[..., 0] if out.shape[2] == 1 else out


def _pil():
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - Pillow comes with matplotlib
        raise ImportError("save_image: writing image files needs Pillow "
                          "(pip install pillow; matplotlib installs it too)") from exc
    return Image


def save_image(tensor, fp, format: str | None = None, **kwargs) -> None:
    """Write images to ``fp`` (a path or file object) as one grid picture (PNG, JPEG...).

    Args:
        tensor: what :func:`make_grid` takes (values in [0, 1] unless ``normalize=True``).
        fp: file name or binary file object.
        format: image format when it cannot be told from the file name.
        kwargs: :func:`make_grid`'s options (``nrow``, ``padding``, ``normalize`` ...).

    >>> import os, tempfile, shendu as sd
    >>> path = os.path.join(tempfile.mkdtemp(), "grid.png")
    >>> save_image(sd.rand(4, 1, 8, 8), path, nrow=2)
    >>> os.path.getsize(path) > 0
    True
    """
    grid = make_grid(tensor, **kwargs)
    image = _pil().fromarray(to_uint8_image(grid))
    if isinstance(fp, (str, os.PathLike)):
        image.save(os.fspath(fp), format=format)
    else:
        image.save(fp, format=format)
