"""The embedded digits: 5,000 MNIST digits (28x28, 500 per class) shipped with shendu.

A fixed, class-balanced split: 4,000 training images (400 per digit) and 1,000 test images
(100 per digit), each split in a fixed shuffled order. The file is
``_assets/digits.npz`` (uint8, loaded with ``allow_pickle=False``), made by
``python -m shendu.data.datasets._make_digits``; see ``_assets/LICENSE-digits.txt``.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np

from ._base import ImageArrayDataset

__all__ = ["load_digits", "Digits", "DIGITS_PATH"]

DIGITS_PATH = Path(__file__).resolve().parent / "_assets" / "digits.npz"
_SPLITS = ("train", "test", "all")


@lru_cache(maxsize=1)
def _arrays() -> dict[str, np.ndarray]:
    if not DIGITS_PATH.is_file():
        raise FileNotFoundError(f"load_digits: the embedded file {DIGITS_PATH} is missing; "
                                "reinstall shendu or run python -m "
                                "shendu.data.datasets._make_digits")
    with np.load(DIGITS_PATH, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    for a in arrays.values():
        a.flags.writeable = False
    return arrays


def _split(split: str) -> tuple[np.ndarray, np.ndarray]:
    if split not in _SPLITS:
        raise ValueError(f"load_digits: split must be one of {_SPLITS}, got {split!r}")
    a = _arrays()
    if split == "all":
        return (np.concatenate([a["train_images"], a["test_images"]]),
                np.concatenate([a["train_labels"], a["test_labels"]]))
    return a[f"{split}_images"], a[f"{split}_labels"]


def load_digits(split: str = "train", *, flatten: bool = False,
                normalize: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The embedded digits as arrays.

    Args:
        split: ``'train'`` (4,000), ``'test'`` (1,000) or ``'all'`` (5,000: train then test).
        flatten: images as ``(N, 784)`` rows instead of ``(N, 28, 28)``.
        normalize: float32 pixels in [0, 1] instead of uint8 in [0, 255].

    Returns:
        ``(images, labels)``: fresh arrays; labels are int64 in 0..9.

    >>> x, y = load_digits("train", flatten=True, normalize=True)
    >>> x.shape, x.dtype, y.shape, int(y.max())
    ((4000, 784), dtype('float32'), (4000,), 9)
    """
    images, labels = _split(split)
    images = images.reshape(len(images), -1) if flatten else images
    images = images.astype(np.float32) / np.float32(255) if normalize else images.copy()
    return images, labels.astype(np.int64)


class Digits(ImageArrayDataset):
    """The embedded digits as a dataset of ``((1, 28, 28) uint8 image, label)`` samples.

    Args:
        split: ``'train'``, ``'test'`` or ``'all'``.
        transform: applied to each image, or to whole batches when it is batch-capable
            (e.g. ``transforms.ToTensor()``).
        target_transform: applied to each label.

    >>> from shendu.data import DataLoader
    >>> from shendu.data.transforms import ToTensor
    >>> loader = DataLoader(Digits("test", transform=ToTensor()), batch_size=100)
    >>> x, y = next(iter(loader))
    >>> x.shape, x.dtype, y.shape
    ((100, 1, 28, 28), shendu.float32, (100,))
    """

    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five",
               "6 - six", "7 - seven", "8 - eight", "9 - nine"]

    def __init__(self, split: str = "train", transform: Callable | None = None,
                 target_transform: Callable | None = None):
        images, labels = _split(split)
        self.split = split
        super().__init__(images[:, None], labels, transform, target_transform)

    @property
    def data(self) -> np.ndarray:
        """``(N, 28, 28)`` uint8 (read-only)."""
        return self._images[:, 0]
