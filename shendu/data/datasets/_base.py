"""``ImageArrayDataset``: labelled images held as one uint8 array, batched by fancy-index."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..collate import default_collate
from ..dataset import Dataset

__all__ = ["ImageArrayDataset"]


def _batched(fn) -> bool:
    return getattr(fn, "batched", False)


class ImageArrayDataset(Dataset):
    """Images ``(N, C, H, W)`` uint8 with integer labels; samples are ``(image, label)``.

    ``image`` is a ``(C, H, W)`` array (after ``transform``), ``label`` an int (after
    ``target_transform``). ``get_batch`` builds a whole batch with one gather and applies
    batch-capable transforms (all of ``shendu.data.transforms``) once per batch.

    Args:
        images: ``(N, C, H, W)`` array.
        targets: ``(N,)`` integer labels.
        transform: applied to each image (or to each batch of images when it is batched).
        target_transform: applied to each label.
    """

    classes: list[str] = []

    def __init__(self, images: np.ndarray, targets: np.ndarray,
                 transform: Callable | None = None, target_transform: Callable | None = None):
        images = np.asarray(images).view()  # a view, so the caller's array stays writable
        targets = np.asarray(targets).astype(np.int64, copy=False)
        name = type(self).__name__
        if images.ndim != 4 or targets.shape != (len(images),):
            raise ValueError(f"{name}: expected images (N, C, H, W) and N labels, got images "
                             f"{images.shape} and labels {targets.shape}")
        if self.classes and len(targets) and not 0 <= targets.min() <= targets.max() \
                < len(self.classes):
            raise ValueError(f"{name}: labels must lie in [0, {len(self.classes)}), found "
                             f"[{targets.min()}, {targets.max()}]")
        images.flags.writeable = False  # samples are views: keep the dataset from changing
        self._images = images
        self.targets = targets
        self.transform = transform
        self.target_transform = target_transform

    @property
    def data(self) -> np.ndarray:
        """All images, in the layout PyTorch's dataset of the same name uses."""
        return self._images

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        image, target = self._images[index], int(self.targets[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def get_batch(self, indices: np.ndarray) -> tuple:
        """Images and labels at ``indices``, transformed, as arrays (or tensors)."""
        images, targets = self._images[indices], self.targets[indices]
        t = self.transform
        if t is not None:
            images = t(images) if _batched(t) else default_collate([t(im) for im in images])
        t = self.target_transform
        if t is not None:
            targets = (t(targets) if _batched(t)
                       else default_collate([t(int(y)) for y in targets]))
        return images, targets

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(images (N, C, H, W) uint8, labels (N,) int64)``, untransformed."""
        return self._images, self.targets

    def __repr__(self) -> str:
        shape = "x".join(map(str, self._images.shape[1:]))
        extra = f", transform={self.transform!r}" if self.transform is not None else ""
        return f"{type(self).__name__}({len(self)} images of {shape}{extra})"
