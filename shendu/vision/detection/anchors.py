"""Anchor boxes at several sizes and aspect ratios per feature level (torchvision's
``AnchorGenerator``).

For each level, every cell of the feature map gets one anchor per (aspect ratio, size)
pair, centred on the cell's top-left corner in image coordinates (the cell index times the
stride ``image_size // feature_size``). An anchor of size ``s`` and ratio ``r = h / w`` has
``w = s / sqrt(r)``, ``h = s * sqrt(r)`` (area ``s^2``); base anchors are rounded to whole
pixels (half to even, as ``torch.round``). Anchors are ordered by position (row-major), then
aspect ratio, then size.

>>> import shendu as sd
>>> from shendu.vision.detection import AnchorGenerator
>>> gen = AnchorGenerator(sizes=((4,),), aspect_ratios=((1.0,),))
>>> gen(sd.zeros(1, 3, 8, 8), [sd.zeros(1, 2, 2, 2)])[0]
tensor([[-2., -2.,  2.,  2.],
        [ 2., -2.,  6.,  2.],
        [-2.,  2.,  2.,  6.],
        [ 2.,  2.,  6.,  6.]])
"""
from __future__ import annotations

import numpy as np

import shendu as sd
from shendu.nn.module import Module
from shendu.tensor import Tensor


def base_anchors(sizes, aspect_ratios) -> np.ndarray:
    """``(len(ratios) * len(sizes), 4)`` anchors centred on the origin, ratio-major."""
    scales = np.asarray(sizes, np.float64)
    h_ratios = np.sqrt(np.asarray(aspect_ratios, np.float64))
    ws = (scales[None, :] / h_ratios[:, None]).reshape(-1)
    hs = (scales[None, :] * h_ratios[:, None]).reshape(-1)
    return np.round(np.stack([-ws, -hs, ws, hs], 1) / 2)


class AnchorGenerator(Module):
    """Anchors for every position of every feature map.

    Args:
        sizes: one tuple of sizes (anchor side for ratio 1, in image pixels) per level.
        aspect_ratios: one tuple of ratios ``h / w`` per level (or one tuple for all).
        offset: where in its cell an anchor is centred, in strides: 0 the cell's top-left
            corner (torchvision's ``AnchorGenerator``), 0.5 its centre (SSD's default boxes;
            with a coarse grid it keeps the anchors of the border cells inside the image).

    ``forward(images, feature_maps)`` returns one ``(sum over levels of H*W*A, 4)`` xyxy
    tensor per image, ``images`` being an ``(N, C, H, W)`` batch.
    """

    def __init__(self, sizes=((128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),),
                 offset: float = 0.0):
        super().__init__()
        if not 0 <= offset < 1:
            raise ValueError(f"AnchorGenerator: offset must lie in [0, 1) (a fraction of the "
                             f"stride), got {offset}")
        self.offset = float(offset)
        if not isinstance(sizes[0], (list, tuple)):
            sizes = tuple((s,) for s in sizes)  # torchvision: one size per level
        if not isinstance(aspect_ratios[0], (list, tuple)):
            aspect_ratios = (aspect_ratios,) * len(sizes)
        if len(sizes) != len(aspect_ratios):
            raise ValueError(f"AnchorGenerator: {len(sizes)} levels of sizes but "
                             f"{len(aspect_ratios)} of aspect ratios")
        for level, ratios in enumerate(aspect_ratios):
            if any(r <= 0 for r in ratios):
                raise ValueError(f"AnchorGenerator: aspect ratios must be positive, level "
                                 f"{level} has {tuple(ratios)}")
        self.sizes = tuple(tuple(s) for s in sizes)
        self.aspect_ratios = tuple(tuple(a) for a in aspect_ratios)
        self.cell_anchors = [base_anchors(s, a) for s, a in zip(self.sizes, self.aspect_ratios)]

    def num_anchors_per_location(self) -> list[int]:
        """Anchors per feature-map cell, one count per level."""
        return [len(s) * len(a) for s, a in zip(self.sizes, self.aspect_ratios)]

    def grid_anchors(self, grid_sizes, strides) -> list[np.ndarray]:
        """Per level, the base anchors shifted to every cell: ``(H * W * A, 4)``."""
        out = []
        for (gh, gw), (sh, sw), base in zip(grid_sizes, strides, self.cell_anchors):
            sy, sx = np.meshgrid((np.arange(gh) + self.offset) * sh,
                                 (np.arange(gw) + self.offset) * sw, indexing="ij")
            shifts = np.stack([sx, sy, sx, sy], -1).reshape(-1, 1, 4)
            out.append((shifts + base[None]).reshape(-1, 4))
        return out

    def forward(self, images, feature_maps) -> list[Tensor]:
        tensors = getattr(images, "tensors", images)  # an ImageList or a batch
        if len(feature_maps) != len(self.cell_anchors):
            raise ValueError(f"AnchorGenerator: {len(feature_maps)} feature maps but anchors "
                             f"for {len(self.cell_anchors)} levels (sizes={self.sizes})")
        image_size = tuple(tensors.shape[-2:])
        grids = [tuple(f.shape[-2:]) for f in feature_maps]
        strides = [(image_size[0] // g[0], image_size[1] // g[1]) for g in grids]
        dtype = feature_maps[0].dtype
        anchors = np.concatenate(self.grid_anchors(grids, strides), 0)
        return [sd.tensor(anchors, dtype=dtype) for _ in range(tensors.shape[0])]

    def extra_repr(self) -> str:
        extra = f", offset={self.offset}" if self.offset else ""
        return f"sizes={self.sizes}, aspect_ratios={self.aspect_ratios}{extra}"
