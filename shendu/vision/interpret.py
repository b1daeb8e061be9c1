"""Seeing inside a convolutional network: first-layer filters and feature maps as image
grids, activation statistics per layer, and Grad-CAM heat maps (Selvaraju et al. 2017).

>>> import shendu as sd
>>> from shendu.vision.models import LeNet5
>>> net = LeNet5().eval()
>>> x = sd.randn(2, 1, 28, 28)
>>> filter_grid(net.features[0]).shape          # six 5x5 filters in a row
(3, 7, 37)
>>> feature_maps(net, x[:1], "features.1").shape
(6, 28, 28)
>>> sorted(activation_stats(net, x)["features.1"])
['dead', 'max', 'mean', 'min', 'std', 'zeros']
>>> GradCAM(net, "features.3")(x).shape
(2, 28, 28)
"""
from __future__ import annotations

import numpy as np

from ..autograd import grad as _grad
from ..autograd.grad_mode import no_grad
from ..creation import from_numpy
from ..nn import functional as F
from ..nn.module import Module
from ..tensor import Tensor
from ._grid import make_grid

__all__ = ["filter_grid", "feature_maps", "activation_stats", "GradCAM", "overlay_heatmap"]


def _module(model: Module, layer: str | Module) -> Module:
    return model.get_submodule(layer) if isinstance(layer, str) else layer


def filter_grid(conv: Module, nrow: int = 8, padding: int = 1) -> Tensor:
    """The filters of a convolution as one image: each ``(in_channels, k, k)`` filter a
    tile, scaled on its own to [0, 1] (RGB filters in colour when ``in_channels == 3``;
    otherwise each input channel's slice is a grey tile).

    >>> import shendu as sd
    >>> filter_grid(sd.nn.Conv2d(3, 4, 3), nrow=2).shape
    (3, 9, 9)
    """
    w = conv.weight.detach().cpu().numpy()
    if w.ndim != 4:
        raise ValueError(f"filter_grid: expected a 2-d convolution weight (out, in, kH, kW), "
                         f"got shape {w.shape}")
    tiles = w if w.shape[1] == 3 else w.reshape(-1, 1, *w.shape[2:])
    return make_grid(tiles, nrow=nrow if w.shape[1] == 3 else max(nrow, w.shape[1]),
                     padding=padding, normalize=True, scale_each=True, pad_value=1.0)


def _capture(model: Module, x: Tensor, layers: dict[str, Module]) -> dict[str, Tensor]:
    seen: dict[str, Tensor] = {}
    handles = [m.register_forward_hook(
        lambda mod, args, out, name=name: seen.__setitem__(name, out))
        for name, m in layers.items()]
    try:
        with no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return seen


def feature_maps(model: Module, x: Tensor, layer: str | Module) -> Tensor:
    """The ``(C, H, W)`` output of ``layer`` for one input image ``x`` (``(1, C, H, W)``).

    Show them with ``make_grid(maps.unsqueeze(1), normalize=True, scale_each=True)``.
    """
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"feature_maps: expected one image (1, C, H, W), got shape "
                         f"{tuple(x.shape)}")
    out = _capture(model, x, {"layer": _module(model, layer)})["layer"]
    if out.ndim != 4:
        raise ValueError(f"feature_maps: the layer's output has shape {tuple(out.shape)}, "
                         f"not (1, C, H, W) maps")
    return out[0]


def activation_stats(model: Module, x: Tensor,
                     layers: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Per-layer output statistics for a batch: mean, std, min, max, the fraction of
    exact zeros, and ``dead``: the fraction of units (channels for maps) that are zero
    for every input of the batch (dead ReLUs).

    Args:
        model: the network (run once on ``x`` without gradients; its mode is kept).
        x: a representative batch.
        layers: dotted module names; default every leaf module.
    """
    if layers is None:
        layers = [n for n, m in model.named_modules() if n and not any(True for _ in
                                                                       m.children())]
    outs = _capture(model, x, {n: model.get_submodule(n) for n in layers})
    stats = {}
    for name in layers:
        if name not in outs or not isinstance(outs[name], Tensor):
            continue
        a = outs[name].detach().cpu().numpy().astype(np.float64)
        units = a.reshape(a.shape[0], a.shape[1], -1) if a.ndim > 2 else a[:, :, None]
        stats[name] = {"mean": float(a.mean()), "std": float(a.std()), "min": float(a.min()),
                       "max": float(a.max()), "zeros": float((a == 0).mean()),
                       "dead": float((units == 0).all(axis=(0, 2)).mean())}
    return stats


class GradCAM:
    """Grad-CAM: where in the image a convolutional layer saw evidence for a class.

    The heat map is ``relu(sum_k w_k A_k)``, ``A_k`` the layer's maps and ``w_k`` the
    spatial mean of the gradient of the class score with respect to ``A_k``; it is
    upsampled (bilinear) to the input size and scaled to [0, 1] per image.

    Args:
        model: a classifier returning logits.
        layer: the convolutional layer (dotted name or module), usually the last one.
    """

    def __init__(self, model: Module, layer: str | Module):
        self.model, self.layer = model, _module(model, layer)

    def __call__(self, x: Tensor, target=None) -> Tensor:
        """Heat maps ``(N, H, W)`` for ``target`` classes (default: the predicted ones)."""
        if x.ndim != 4:
            raise ValueError(f"GradCAM: expected images (N, C, H, W), got shape "
                             f"{tuple(x.shape)}")
        seen = {}
        handle = self.layer.register_forward_hook(
            lambda mod, args, out: seen.__setitem__("a", out))
        was = self.model.training
        self.model.eval()
        try:
            logits = self.model(x)
        finally:
            handle.remove()
            self.model.train(was)
        acts = seen["a"]
        if target is None:
            target = logits.detach().argmax(1).numpy()
        target = np.broadcast_to(np.asarray(target, dtype=np.int64), (x.shape[0],))
        score = logits[np.arange(x.shape[0]), target].sum()
        (g,) = _grad(score, [acts])
        weights = g.mean(dim=(2, 3), keepdim=True)
        cam = F.relu((weights * acts).sum(dim=1, keepdim=True)).detach()
        cam = F.interpolate(cam, size=tuple(x.shape[2:]), mode="bilinear",
                            align_corners=False)[:, 0].numpy()
        lo = cam.min(axis=(1, 2), keepdims=True)
        hi = cam.max(axis=(1, 2), keepdims=True)
        return from_numpy(((cam - lo) / np.maximum(hi - lo, 1e-12)).astype(np.float32))


def overlay_heatmap(image, heat, alpha: float = 0.5) -> Tensor:
    """Blend a grey or RGB image ``(C, H, W)`` in [0, 1] with a heat map ``(H, W)`` in
    [0, 1] drawn in a blue-to-red colour ramp; returns ``(3, H, W)``.

    >>> import shendu as sd
    >>> overlay_heatmap(sd.zeros(1, 4, 4), sd.ones(4, 4)).shape
    (3, 4, 4)
    """
    img = np.asarray(image.detach().cpu().numpy() if isinstance(image, Tensor) else image,
                     dtype=np.float32)
    h = np.asarray(heat.detach().cpu().numpy() if isinstance(heat, Tensor) else heat,
                   dtype=np.float32)
    if img.ndim != 3 or img.shape[1:] != h.shape:
        raise ValueError(f"overlay_heatmap: expected an image (C, H, W) and a heat map "
                         f"(H, W) of the same size, got {img.shape} and {h.shape}")
    if img.shape[0] == 1:
        img = np.repeat(img, 3, 0)
    # a simple "jet"-like ramp: blue (cold) -> green -> red (hot)
    ramp = np.stack([np.clip(1.5 - abs(4 * h - 3), 0, 1), np.clip(1.5 - abs(4 * h - 2), 0, 1),
                     np.clip(1.5 - abs(4 * h - 1), 0, 1)])
    return from_numpy(((1 - alpha) * img + alpha * ramp).astype(np.float32))
