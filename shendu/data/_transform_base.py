"""The ``Transform`` base class and the helpers every transform shares.

A transform takes a NumPy array or a shendu ``Tensor`` and returns the same kind. Image
transforms accept one image, ``(H, W)`` or ``(C, H, W)``, or a batch ``(N, C, H, W)``;
random ones draw independently for every image of a batch, in one vectorised draw.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..tensor import Tensor
from ._rng import data_rng

__all__ = ["Transform", "ImageTransform", "Compose", "Lambda"]


def unwrap(x, name: str) -> tuple[np.ndarray, bool]:
    """The NumPy array behind ``x`` and whether ``x`` was a tensor."""
    if isinstance(x, Tensor):
        return np.asarray(x), True  # copies only from a GPU
    if isinstance(x, np.ndarray):
        return x, False
    try:
        return np.asarray(x), False
    except Exception as exc:
        raise TypeError(f"{name}: expected a NumPy array or a Tensor, got "
                        f"{type(x).__name__}") from exc


def rewrap(arr: np.ndarray, was_tensor: bool):
    return Tensor._wrap(arr) if was_tensor else arr


def as_batch(x: np.ndarray, name: str) -> tuple[np.ndarray, int]:
    """View ``x`` as an ``(N, C, H, W)`` batch; also return how many axes were added."""
    if x.ndim == 4:
        return x, 0
    if x.ndim == 3:
        return x[None], 1
    if x.ndim == 2:
        return x[None, None], 2
    raise ValueError(f"{name}: expected an image (H, W) or (C, H, W), or a batch "
                     f"(N, C, H, W); got shape {x.shape}")


def from_batch(x4: np.ndarray, added: int) -> np.ndarray:
    return x4[(0,) * added] if added else x4


def pair(value, name: str, what: str) -> tuple[int, int]:
    """``n`` or ``(h, w)`` as a pair of positive ints."""
    if isinstance(value, (int, np.integer)):
        value = (int(value), int(value))
    value = tuple(int(v) for v in value)
    if len(value) != 2 or min(value) <= 0:
        raise ValueError(f"{name}: {what} must be a positive int or (height, width), "
                         f"got {value}")
    return value


class Transform:
    """Base class: override ``apply(array, generator)``; call with an array or tensor.

    Set ``batched = False`` on a transform that only understands single samples (the
    built-in datasets then apply it one sample at a time).
    """

    batched = True

    def __call__(self, x, generator=None):
        arr, was_tensor = unwrap(x, type(self).__name__)
        return rewrap(self.apply(arr, generator), was_tensor)

    def apply(self, x: np.ndarray, generator=None) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must define apply()")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items()
                         if not k.startswith("_") and k != "generator")
        return f"{type(self).__name__}({args})"


class ImageTransform(Transform):
    """A transform written once, for a batch ``(N, C, H, W)``: override
    ``apply_batch(x4, rng)``. Single images are treated as a batch of one."""

    random = False  # set by random transforms: they get a generator in apply_batch

    def __init__(self, generator=None):
        self.generator = generator

    def apply(self, x: np.ndarray, generator=None) -> np.ndarray:
        x4, added = as_batch(x, type(self).__name__)
        rng = data_rng(generator or self.generator) if self.random else None
        return from_batch(self.apply_batch(x4, rng), added)

    def apply_batch(self, x: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must define apply_batch()")


class Compose(Transform):
    """Apply transforms one after another.

    >>> import numpy as np
    >>> from shendu.data.transforms import RandomHorizontalFlip
    >>> flip_twice = Compose([RandomHorizontalFlip(p=1.0), RandomHorizontalFlip(p=1.0)])
    >>> x = np.arange(6).reshape(1, 2, 3)
    >>> bool((flip_twice(x) == x).all())
    True
    """

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    @property
    def batched(self) -> bool:
        return all(getattr(t, "batched", False) for t in self.transforms)

    def __call__(self, x, generator=None):
        for t in self.transforms:
            x = t(x, generator) if isinstance(t, Transform) else t(x)
        return x

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose([{inner}\n])"


class Lambda(Transform):
    """Wrap a function as a transform; say ``batched=True`` if it handles whole batches.

    >>> Lambda(lambda x: x * 2, batched=True)(3)
    6
    """

    def __init__(self, fn: Callable, batched: bool = False):
        if not callable(fn):
            raise TypeError(f"Lambda: expected a callable, got {type(fn).__name__}")
        self.fn = fn
        self.batched = batched

    def __call__(self, x, generator=None):
        return self.fn(x)
