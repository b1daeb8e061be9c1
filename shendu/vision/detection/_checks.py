"""Input checks shared by the detectors: clear messages naming the image and the value."""
from __future__ import annotations

import numpy as np

import shendu as sd
from shendu.tensor import Tensor


def as_batch(op: str, images) -> Tensor:
    """A ``(N, C, H, W)`` batch from a batch tensor or a list of same-sized images."""
    if isinstance(images, Tensor):
        if images.ndim != 4:
            raise ValueError(f"{op}: images must be (N, C, H, W) or a list of (C, H, W), got "
                             f"shape {tuple(images.shape)}")
        return images
    shapes = [tuple(i.shape) for i in images]
    if not shapes or len(set(shapes)) != 1 or len(shapes[0]) != 3:
        raise ValueError(f"{op}: images must be (C, H, W) tensors of one size, got {shapes}")
    return sd.stack(list(images))


def check_targets(op: str, num_images: int, targets, num_classes: int) -> list:
    """Validate training targets; returns ``(boxes, labels)`` NumPy pairs per image."""
    if targets is None:
        raise ValueError(f"{op}: targets are needed in training mode (call .eval() to detect)")
    if len(targets) != num_images:
        raise ValueError(f"{op}: {num_images} images but {len(targets)} targets")
    out = []
    for i, t in enumerate(targets):
        if "boxes" not in t or "labels" not in t:
            raise ValueError(f"{op}: target of image {i} needs 'boxes' and 'labels', has "
                             f"{sorted(t)}")
        b = np.asarray(t["boxes"].detach() if isinstance(t["boxes"], Tensor) else t["boxes"],
                       np.float64).reshape(-1, 4) if np.size(t["boxes"]) else np.zeros((0, 4))
        lab = np.asarray(t["labels"].detach() if isinstance(t["labels"], Tensor)
                         else t["labels"]).reshape(-1).astype(np.int64)
        if len(b) != len(lab):
            raise ValueError(f"{op}: image {i} has {len(b)} boxes but {len(lab)} labels")
        if not np.isfinite(b).all():
            raise ValueError(f"{op}: image {i} has a non-finite box coordinate in box "
                             f"{int(np.argwhere(~np.isfinite(b))[0, 0])}")
        bad = np.flatnonzero((b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1]))
        if bad.size:
            raise ValueError(f"{op}: image {i}, box {bad[0]} {b[bad[0]].tolist()} has x2 <= x1 "
                             f"or y2 <= y1 (boxes are (x1, y1, x2, y2))")
        bad = np.flatnonzero((lab < 1) | (lab >= num_classes))
        if bad.size:
            raise ValueError(f"{op}: image {i} has label {lab[bad[0]]}, outside the classes "
                             f"1..{num_classes - 1} (0 is the background)")
        out.append((b, lab))
    return out
