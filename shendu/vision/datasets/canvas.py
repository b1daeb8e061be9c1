"""A detection and segmentation set made of real images: Fashion-MNIST items and
handwritten digits pasted on blank canvases at several scales, with overlaps and clutter,
with exact boxes, labels and per-pixel masks.

No public detection set is available offline, so this one is generated, but from real
pictures: each object is a real 28x28 image resized to a random side, and the clutter is
unlabelled fragments cut from other images. Everything is a pure function of
``(seed, split, index)``, so samples are reproducible and can be drawn in any order.

>>> from shendu.vision.datasets import CanvasDetection
>>> ds = CanvasDetection("train", num_images=2, sources=("digits",), canvas_size=64)
>>> image, target = ds[0]
>>> image.shape, sorted(target)
((1, 64, 64), ['area', 'boxes', 'image_id', 'iscrowd', 'labels', 'masks'])
"""
from __future__ import annotations

import zlib

import numpy as np

import shendu as sd

__all__ = ["CanvasDetection", "CanvasSegmentation", "detection_collate"]

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]
DIGIT_CLASSES = [f"digit {i}" for i in range(10)]
_SPLITS = ("train", "val", "test")
_VAL_FRACTION = 0.1  # of each source's own training images, kept apart for validation
_INK = 0.2  # a pixel belongs to an object where its intensity exceeds this (of 1)


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a square float image to ``size x size`` (pixel centres aligned)."""
    n = img.shape[0]
    pos = (np.arange(size) + 0.5) * n / size - 0.5
    pos = pos.clip(0, n - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    f = (pos - lo).astype(np.float32)
    rows = img[lo] * (1 - f)[:, None] + img[hi] * f[:, None]
    return rows[:, lo] * (1 - f)[None] + rows[:, hi] * f[None]


def _load_source(name: str, train: bool, root=None):
    if name == "digits":
        from shendu.data.datasets import load_digits

        images, labels = load_digits("train" if train else "test")
        return images, labels
    if name == "fashion-mnist":
        from shendu.data.datasets import FashionMNIST

        ds = FashionMNIST(root=root, train=train)
        return np.asarray(ds.data).reshape(-1, 28, 28), np.asarray(ds.targets)
    raise ValueError(f"CanvasDetection: unknown source {name!r}; choose from "
                     f"'fashion-mnist', 'digits'")


class CanvasDetection:
    """Canvases with objects for detection (and masks for segmentation).

    Args:
        split: ``'train'`` and ``'val'`` draw from the sources' training images (disjoint
            parts), ``'test'`` from their test images.
        num_images: canvases in the split.
        canvas_size: side of the square canvas in pixels.
        sources: which image sets supply objects: ``'fashion-mnist'`` (labels 1-10) and/or
            ``'digits'`` (the next 10 labels); label 0 is the background.
        objects: ``(min, max)`` objects per canvas.
        scale: ``(min, max)`` object side in pixels (default: 5/32 to 7/16 of the canvas).
        max_overlap: the largest IoU allowed between two objects' boxes.
        clutter: unlabelled fragments (up to a third of a source image) scattered first.
        seed: base seed; each sample's generator is seeded from ``(seed, split, index)``.
        root: folder with the Fashion-MNIST files (default: where ``FashionMNIST`` looks).
        transform: applied to ``(image, target)``.

    A sample is ``(image, target)``: a float32 ``(1, H, W)`` tensor in [0, 1] and a dict
    with ``boxes`` ``(n, 4)`` float32 xyxy (tight around each object's ink), ``labels``
    ``(n,)`` int64, ``masks`` ``(n, H, W)`` uint8 (each object's visible pixels: where
    objects overlap, the canvas shows the brighter ink, and that object owns the pixel),
    ``image_id``, ``area`` and ``iscrowd`` (COCO's fields).
    """

    def __init__(self, split: str = "train", num_images: int = 1000, canvas_size: int = 128,
                 sources=("fashion-mnist", "digits"), objects=(1, 4), scale=None,
                 max_overlap: float = 0.3, clutter: int = 3, seed: int = 0, root=None,
                 transform=None):
        if split not in _SPLITS:
            raise ValueError(f"CanvasDetection: split must be one of {_SPLITS}, got {split!r}")
        if not 1 <= objects[0] <= objects[1]:
            raise ValueError(f"CanvasDetection: objects must be (min, max) with 1 <= min <= "
                             f"max, got {objects}")
        if scale is None:  # 20 to 56 pixels on a 128 canvas
            scale = (max(4, round(canvas_size * 5 / 32)), round(canvas_size * 7 / 16))
        if not 4 <= scale[0] <= scale[1] <= canvas_size:
            raise ValueError(f"CanvasDetection: scale {scale} must lie in [4, canvas_size="
                             f"{canvas_size}]")
        self.split, self.num_images, self.canvas_size = split, num_images, canvas_size
        self.objects, self.scale, self.max_overlap = tuple(objects), tuple(scale), max_overlap
        self.clutter, self.seed, self.transform = clutter, seed, transform
        self.sources = tuple(sources)
        self.classes = ["background"]
        self._pools = []
        for name in self.sources:
            images, labels = _load_source(name, split != "test", root)
            if split != "test":  # the last part of the training images is the val pool
                cut = int(len(images) * (1 - _VAL_FRACTION))
                images, labels = (images[:cut], labels[:cut]) if split == "train" else \
                    (images[cut:], labels[cut:])
            self._pools.append((images, labels, len(self.classes)))
            self.classes += FASHION_CLASSES if name == "fashion-mnist" else DIGIT_CLASSES

    @property
    def num_classes(self) -> int:
        """Classes including the background."""
        return len(self.classes)

    def __len__(self) -> int:
        return self.num_images

    def _rng(self, index: int) -> np.random.Generator:
        key = zlib.crc32(f"{self.seed}/{self.split}/{index}".encode())
        return np.random.default_rng(key)

    def _pick(self, rng):
        images, labels, offset = self._pools[rng.integers(len(self._pools))]
        i = rng.integers(len(images))
        return images[i].astype(np.float32) / 255, int(labels[i]) + offset

    def generate(self, index: int) -> tuple[np.ndarray, dict]:
        """The canvas ``(H, W)`` float32 and its annotations as NumPy arrays."""
        if not 0 <= index < self.num_images:
            raise IndexError(f"CanvasDetection: index {index} out of range for "
                             f"{self.num_images} images")
        rng, size = self._rng(index), self.canvas_size
        canvas = np.zeros((size, size), np.float32)
        for _ in range(rng.integers(0, self.clutter + 1)):  # unlabelled fragments
            img, _ = self._pick(rng)
            side = rng.integers(4, 10)
            y, x = rng.integers(0, 28 - side, 2)
            frag = _resize(img[y:y + side, x:x + side], int(side * rng.uniform(1, 2)))
            fy, fx = rng.integers(0, size - len(frag) + 1, 2)
            view = canvas[fy:fy + len(frag), fx:fx + len(frag)]
            np.maximum(view, frag * 0.6, out=view)
        owner = np.full((size, size), -1, np.int64)
        brightest = np.zeros((size, size), np.float32)  # of the objects, clutter left out
        boxes, labels = [], []
        for _ in range(rng.integers(self.objects[0], self.objects[1] + 1)):
            for _attempt in range(20):
                img, label = self._pick(rng)
                side = int(rng.integers(self.scale[0], self.scale[1] + 1))
                obj = _resize(img, side)
                ink = obj > _INK
                if not ink.any():
                    continue
                y, x = (int(v) for v in rng.integers(0, size - side + 1, 2))
                ys, xs = np.nonzero(ink)
                box = np.array([x + xs.min(), y + ys.min(), x + xs.max() + 1,
                                y + ys.max() + 1], np.float32)
                if boxes and _max_iou(box, np.stack(boxes)) > self.max_overlap:
                    continue
                view = canvas[y:y + side, x:x + side]
                np.maximum(view, obj, out=view)
                # np.maximum shows the brighter ink where objects overlap, so that object
                # owns the pixel (the later one on a tie)
                top = brightest[y:y + side, x:x + side]
                shown = ink & (obj >= top)
                owner[y:y + side, x:x + side][shown] = len(boxes)
                np.maximum(top, obj, out=top)
                boxes.append(box)
                labels.append(label)
                break
        masks = np.stack([owner == i for i in range(len(boxes))]).astype(np.uint8) \
            if boxes else np.zeros((0, size, size), np.uint8)
        boxes = np.stack(boxes) if boxes else np.zeros((0, 4), np.float32)
        target = {"boxes": boxes, "labels": np.asarray(labels, np.int64), "masks": masks,
                  "image_id": index, "area": (boxes[:, 2] - boxes[:, 0]) *
                  (boxes[:, 3] - boxes[:, 1]), "iscrowd": np.zeros(len(boxes), np.int64)}
        return canvas, target

    def semantic_mask(self, target: dict) -> np.ndarray:
        """``(H, W)`` int64 class per pixel (0 background) from a target's masks."""
        out = np.zeros(target["masks"].shape[1:], np.int64)
        for m, label in zip(np.asarray(target["masks"]), np.asarray(target["labels"])):
            out[m.astype(bool)] = label
        return out

    def __getitem__(self, index: int):
        canvas, target = self.generate(int(index))
        image = sd.tensor(canvas[None])
        target = {k: (v if k == "image_id" else sd.tensor(v)) for k, v in target.items()}
        if self.transform is not None:
            return self.transform(image, target)
        return image, target

    def __repr__(self) -> str:
        return (f"CanvasDetection(split={self.split!r}, num_images={self.num_images}, "
                f"canvas_size={self.canvas_size}, sources={self.sources})")


class CanvasSegmentation(CanvasDetection):
    """The same canvases for semantic segmentation: samples are ``(image, mask)`` with
    ``mask`` an ``(H, W)`` int64 tensor of classes (0 the background).

    >>> ds = CanvasSegmentation("val", num_images=1, sources=("digits",), canvas_size=48)
    >>> image, mask = ds[0]
    >>> mask.shape, mask.dtype
    ((48, 48), shendu.int64)
    """

    def __getitem__(self, index: int):
        canvas, target = self.generate(int(index))
        image, mask = sd.tensor(canvas[None]), sd.tensor(self.semantic_mask(target))
        if self.transform is not None:
            return self.transform(image, mask)
        return image, mask

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All images ``(N, 1, H, W)`` float32 and masks ``(N, H, W)`` int64."""
        pairs = [self.generate(i) for i in range(len(self))]
        return (np.stack([c[None] for c, _ in pairs]),
                np.stack([self.semantic_mask(t) for _, t in pairs]))


def _max_iou(box, boxes):
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod((rb - lt).clip(0), 1)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return float((inter / (area(box) + area(boxes) - inter)).max())


def detection_collate(batch):
    """Collate ``(image, target)`` samples into a stacked image batch (all images the same
    size) and a list of target dicts, the form the detectors take.

    >>> ds = CanvasDetection("train", num_images=3, sources=("digits",), canvas_size=32,
    ...                      scale=(12, 20))
    >>> images, targets = detection_collate([ds[0], ds[1], ds[2]])
    >>> images.shape, len(targets)
    ((3, 1, 32, 32), 3)
    """
    images, targets = zip(*batch)
    shapes = {tuple(i.shape) for i in images}
    if len(shapes) != 1:
        raise ValueError(f"detection_collate: images of different shapes {sorted(shapes)}; "
                         f"resize them first")
    return sd.stack(list(images)), list(targets)
