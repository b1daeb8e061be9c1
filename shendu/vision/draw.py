"""Drawing detections and masks on images (torchvision's ``draw_bounding_boxes`` and
``draw_segmentation_masks``: same arguments, same pixels; boxes are drawn with Pillow's
``ImageDraw``, as torchvision does).

>>> import shendu as sd
>>> from shendu.vision.draw import draw_bounding_boxes
>>> img = sd.zeros(3, 6, 6, dtype=sd.uint8)
>>> out = draw_bounding_boxes(img, sd.tensor([[1., 1., 4., 4.]]), colors="red")
>>> out[0].numpy()[1]
array([  0, 255, 255, 255, 255,   0], dtype=uint8)
"""
from __future__ import annotations

import warnings

import numpy as np

import shendu as sd
from shendu.tensor import Tensor

__all__ = ["draw_bounding_boxes", "draw_segmentation_masks"]

_PALETTE = np.array([2 ** 25 - 1, 2 ** 15 - 1, 2 ** 21 - 1], np.int64)


def _pil(op):
    try:
        from PIL import Image, ImageColor, ImageDraw, ImageFont
    except ImportError as e:  # pragma: no cover - pillow comes with matplotlib
        raise ImportError(f"{op} needs Pillow (pip install pillow)") from e
    return Image, ImageColor, ImageDraw, ImageFont


def _parse_colors(op, colors, num_objects, floating=False):
    _, ImageColor, _, _ = _pil(op)
    if colors is None:  # torchvision's palette: distinct, repeatable colours
        colors = [tuple(int(v) for v in (i * _PALETTE) % 255) for i in range(num_objects)]
    elif isinstance(colors, list):
        if len(colors) < num_objects:
            raise ValueError(f"{op}: {len(colors)} colors for {num_objects} objects")
    elif isinstance(colors, tuple) and len(colors) != 3:
        raise ValueError(f"{op}: a color tuple must be (R, G, B), got {colors!r}")
    elif isinstance(colors, (tuple, str)):
        colors = [colors] * num_objects
    else:
        raise ValueError(f"{op}: colors must be a color, a list of colors or None, "
                         f"got {colors!r}")
    colors = [ImageColor.getrgb(c) if isinstance(c, str) else tuple(c) for c in colors]
    return [tuple(v / 255 for v in c) for c in colors] if floating else colors


def _image(op, image, channels):
    if not isinstance(image, Tensor):
        raise TypeError(f"{op}: image must be a Tensor, got {type(image).__name__}")
    arr = np.asarray(image.detach().cpu())
    if not (arr.dtype == np.uint8 or arr.dtype.kind == "f"):
        raise ValueError(f"{op}: the image dtype must be uint8 or float, got {image.dtype}")
    if arr.ndim != 3:
        raise ValueError(f"{op}: pass one (C, H, W) image, got shape {tuple(arr.shape)}")
    if arr.shape[0] not in channels:
        raise ValueError(f"{op}: the image must have {' or '.join(map(str, channels))} "
                         f"channels, got {arr.shape[0]}")
    return arr


def draw_bounding_boxes(image: Tensor, boxes: Tensor, labels=None, colors=None,
                        fill: bool = False, width: int = 1, font=None, font_size=None,
                        label_colors=None) -> Tensor:
    """Draw xyxy boxes (and optional text labels) on a ``(C, H, W)`` image.

    Args:
        image: uint8 in [0, 255] or float in [0, 1], 1 or 3 channels.
        boxes: ``(N, 4)`` xyxy boxes in pixels (truncated to integers).
        labels: one string per box, written at its top-left corner.
        colors: a color (name like ``"red"`` or ``(R, G, B)``) or one per box; default:
            torchvision's palette.
        fill: also fill the boxes, translucent.
        width: outline width in pixels.
        font, font_size: a TrueType font file and its size (default: Pillow's font).
        label_colors: text colors (default: the box colors).

    Returns a 3-channel image of the input's dtype.
    """
    op = "draw_bounding_boxes"
    arr = _image(op, image, (1, 3))
    b = np.asarray(boxes.detach().cpu()) if isinstance(boxes, Tensor) else np.asarray(boxes)
    if b.ndim != 2 or b.shape[-1] != 4:
        raise ValueError(f"{op}: boxes must be (N, 4) xyxy, got shape {tuple(b.shape)}")
    bad = np.flatnonzero((b[:, 0] > b[:, 2]) | (b[:, 1] > b[:, 3]))
    if bad.size:
        raise ValueError(f"{op}: box {bad[0]} {b[bad[0]].tolist()} has x2 < x1 or y2 < y1; "
                         f"boxes must be (xmin, ymin, xmax, ymax) (see ops.box_convert)")
    if len(b) == 0:
        warnings.warn(f"{op}: no boxes given, nothing drawn", stacklevel=2)
        return image
    if labels is None:
        labels = [None] * len(b)
    elif len(labels) != len(b):
        raise ValueError(f"{op}: {len(b)} boxes but {len(labels)} labels")
    Image, _, ImageDraw, ImageFont = _pil(op)
    colors = _parse_colors(op, colors, len(b))
    label_colors = _parse_colors(op, label_colors, len(b)) if label_colors else colors
    if font is None:
        txt_font = ImageFont.load_default()
    else:
        txt_font = ImageFont.truetype(font=font, size=font_size or 10)
    floating = arr.dtype.kind == "f"
    if arr.shape[0] == 1:
        arr = np.tile(arr, (3, 1, 1))
    if floating:  # torchvision's float -> uint8 scaling
        arr = (arr.astype(np.float32) * np.float32(255 + 1.0 - 1e-3)).astype(np.uint8)
    pil = Image.fromarray(np.ascontiguousarray(arr.transpose(1, 2, 0)))
    draw = ImageDraw.Draw(pil, "RGBA" if fill else None)
    for box, color, label, lcolor in zip(b.astype(np.int64).tolist(), colors, labels,
                                         label_colors):
        draw.rectangle(box, width=width, outline=color,
                       fill=color + (100,) if fill else None)
        if label is not None:
            margin = width + 1
            draw.text((box[0] + margin, box[1] + margin), label, fill=lcolor, font=txt_font)
    out = np.asarray(pil).transpose(2, 0, 1).copy()
    if floating:
        return sd.tensor(out.astype(np.float32) / 255).to(image.dtype)
    return sd.tensor(out)


def draw_segmentation_masks(image: Tensor, masks: Tensor, alpha: float = 0.8,
                            colors=None) -> Tensor:
    """Blend boolean masks onto an RGB image: ``image * (1 - alpha) + colored * alpha``,
    where ``colored`` is the image painted with each mask's color (pixels under two or more
    masks painted black).

    Args:
        image: ``(3, H, W)``, uint8 in [0, 255] or float in [0, 1].
        masks: ``(N, H, W)`` or ``(H, W)`` bool.
        alpha: mask opacity, 0 (invisible) to 1 (opaque).
        colors: a color or one per mask (default: torchvision's palette).

    >>> img = sd.zeros(3, 2, 2, dtype=sd.uint8)
    >>> draw_segmentation_masks(img, sd.tensor([[True, False], [False, False]]), 0.5,
    ...                         "white")[0]
    tensor([[127,   0],
            [  0,   0]], dtype=shendu.uint8)
    """
    op = "draw_segmentation_masks"
    arr = _image(op, image, (3,))
    m = np.asarray(masks.detach().cpu()) if isinstance(masks, Tensor) else np.asarray(masks)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3:
        raise ValueError(f"{op}: masks must be (H, W) or (N, H, W), got {tuple(m.shape)}")
    if m.dtype != np.bool_:
        raise ValueError(f"{op}: masks must be bool, got {m.dtype}")
    if m.shape[-2:] != arr.shape[-2:]:
        raise ValueError(f"{op}: masks are {m.shape[-2:]} but the image is "
                         f"{arr.shape[-2:]} (height, width)")
    if len(m) == 0:
        warnings.warn(f"{op}: no masks given, nothing drawn", stacklevel=2)
        return image
    floating = arr.dtype.kind == "f"
    colors = _parse_colors(op, colors, len(m), floating)
    painted = arr.copy()
    for mask, color in zip(m, colors):
        painted[:, mask] = np.asarray(color, arr.dtype)[:, None]
    painted[:, m.sum(0) > 1] = 0
    ft = arr.dtype.type if floating else np.float32
    out = arr.astype(ft) * ft(1 - alpha) + painted.astype(ft) * ft(alpha)
    return sd.tensor(out.astype(arr.dtype))
