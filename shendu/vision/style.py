"""Neural style transfer (Gatys, Ecker & Bethge 2016): optimise an image so that its deep
features match a content image and the correlations of its features (Gram matrices)
match a style image, with a total-variation penalty for smoothness.

Features come from VGG-16 when a weights file is given (torchvision's ``vgg16`` state
dict, as ``.safetensors`` or anything ``shendu.load`` reads). Without one, a randomly
initialised single-layer multi-scale network is used: Ustyuzhaninov et al. (2017) showed
that random filters of several sizes capture texture surprisingly well; it transfers
colours and textures, not the learnt motifs VGG would.

>>> import shendu as sd
>>> gram_matrix(sd.ones(1, 2, 2, 2)).tolist()
[[[0.5, 0.5], [0.5, 0.5]]]
>>> float(total_variation_loss(sd.ones(1, 3, 4, 4)))
0.0
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from ..autograd.grad_mode import no_grad
from ..creation import as_tensor, tensor
from ..nn import functional as F
from ..nn.containers import Sequential
from ..nn.layers.activation import ReLU
from ..nn.layers.conv import Conv2d
from ..nn.layers.pool import MaxPool2d
from ..nn.module import Module
from ..nn.parameter import Parameter
from ..tensor import Tensor

__all__ = ["gram_matrix", "content_loss", "style_loss", "total_variation_loss",
           "VGGFeatures", "RandomMultiScaleFeatures", "load_image", "style_transfer",
           "StyleTransferLoss",
           "SAMPLE_IMAGES"]

SAMPLE_IMAGES = ("china.jpg", "flower.jpg")  # scikit-learn's two sample photos

# ---------------------------------------------------------------------------- losses


def gram_matrix(features: Tensor) -> Tensor:
    """Channel correlations ``G[n, c, d] = sum_hw F[n,c,hw] F[n,d,hw] / (C H W)``.

    >>> import shendu as sd
    >>> gram_matrix(sd.randn(2, 3, 4, 5)).shape
    (2, 3, 3)
    """
    if features.ndim != 4:
        raise ValueError(f"gram_matrix: expected feature maps (N, C, H, W), got shape "
                         f"{tuple(features.shape)}")
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def content_loss(features: Tensor, target: Tensor) -> Tensor:
    """Mean squared difference between feature maps and the content image's.

    >>> import shendu as sd
    >>> content_loss(sd.ones(1, 1, 2, 2), sd.zeros(1, 1, 2, 2))
    tensor(1.)
    """
    return F.mse_loss(features, target.detach())


def style_loss(features: Tensor, target_gram: Tensor) -> Tensor:
    """Mean squared difference between the Gram matrix of ``features`` and the style
    image's Gram matrix ``target_gram``.

    >>> import shendu as sd
    >>> f = sd.randn(1, 3, 4, 4)
    >>> float(style_loss(f, gram_matrix(f)))
    0.0
    """
    return F.mse_loss(gram_matrix(features), target_gram.detach())


def total_variation_loss(image: Tensor, p: int = 2) -> Tensor:
    """Mean ``|difference|^p`` between vertically plus horizontally neighbouring pixels
    (``p=2``: smooth and differentiable everywhere; ``p=1``: the classic anisotropic TV).

    >>> import shendu as sd
    >>> total_variation_loss(sd.tensor([[[[0.0, 1.0], [0.0, 1.0]]]]))
    tensor(1.)
    """
    if image.ndim != 4:
        raise ValueError(f"total_variation_loss: expected images (N, C, H, W), got shape "
                         f"{tuple(image.shape)}")
    if p not in (1, 2):
        raise ValueError(f"total_variation_loss: p must be 1 or 2, got {p!r}")
    dy = image[:, :, 1:, :] - image[:, :, :-1, :]
    dx = image[:, :, :, 1:] - image[:, :, :, :-1]
    if p == 1:
        return dy.abs().mean() + dx.abs().mean()
    return (dy * dy).mean() + (dx * dx).mean()


# ---------------------------------------------------------------------------- features
_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
# torchvision's index of each ReLU in vgg16().features (conv, relu, ..., pool counted)
VGG_LAYERS = {"relu1_1": 1, "relu1_2": 3, "relu2_1": 6, "relu2_2": 8, "relu3_1": 11,
              "relu3_2": 13, "relu3_3": 15, "relu4_1": 18, "relu4_2": 20, "relu4_3": 22,
              "relu5_1": 25}
_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)


class VGGFeatures(Module):
    """VGG-16's convolutional layers (torchvision's ``features`` indices, so its state
    dict loads), returning the activations named in ``layers`` for images in [0, 1].

    Args:
        weights: a file holding a torchvision ``vgg16`` state dict (``features.*`` keys
            are used, the rest ignored), or None for random weights.
        layers: names from ``VGG_LAYERS`` (``relu1_1`` ... ``relu5_1``); the network is
            cut after the deepest one.
    """

    def __init__(self, weights: str | os.PathLike | None = None,
                 layers: Sequence[str] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1",
                                          "relu4_2", "relu5_1")):
        super().__init__()
        unknown = [n for n in layers if n not in VGG_LAYERS]
        if unknown:
            raise ValueError(f"VGGFeatures: unknown layers {unknown}; choose from "
                             f"{list(VGG_LAYERS)}")
        self.layers = list(layers)
        last = max(VGG_LAYERS[n] for n in layers)
        mods: list[Module] = []
        c = 3
        for v in _VGG16:
            if v == "M":
                mods.append(MaxPool2d(2, 2))
            else:
                mods += [Conv2d(c, v, 3, padding=1), ReLU()]
                c = v
        self.features = Sequential(*mods[:last + 1])
        if weights is not None:
            self.load_vgg(weights)
        self.requires_grad_(False)
        self.eval()

    def load_vgg(self, path: str | os.PathLike) -> None:
        """Load ``features.*`` weights from a torchvision VGG-16 state dict file."""
        state = _read_state(path)
        mine = self.state_dict()
        picked = {k: v for k, v in state.items() if k in mine}
        missing = sorted(set(mine) - set(picked))
        if missing:
            raise ValueError(f"VGGFeatures: {os.fspath(path)} lacks {len(missing)} VGG-16 "
                             f"feature weights (first: {missing[:3]}); expected "
                             f"torchvision's vgg16 keys such as 'features.0.weight'")
        self.load_state_dict(picked)

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        x = (image - as_tensor(_IMAGENET_MEAN)) / as_tensor(_IMAGENET_STD)
        want = {VGG_LAYERS[n]: n for n in self.layers}
        out = {}
        for i, m in enumerate(self.features):
            x = m(x)
            if i in want:
                out[want[i]] = x
        return out


class RandomMultiScaleFeatures(Module):
    """One layer of random convolution filters of several sizes, each followed by ReLU,
    applied to the image and to 2x and 4x average-pooled copies of it (after
    Ustyuzhaninov, Brendel, Gatys & Bethge 2017; the pyramid replaces their largest
    filters, which cost too much on a CPU).

    Args:
        sizes: filter sizes (odd).
        scales: pooling factors of the image pyramid (1 is the image itself).
        channels: filters per size and scale.
        seed: the filters are drawn from this seed (same seed, same network).

    Layers are named ``s<scale>k<size>``. Filters are zero-mean (they respond to
    structure, not brightness) with unit norm.
    """

    def __init__(self, sizes: Sequence[int] = (3, 5), scales: Sequence[int] = (1, 2, 4),
                 channels: int = 32, seed: int = 0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.sizes, self.scales = list(sizes), list(scales)
        self.convs = Sequential()
        self.layers = []
        for scale in self.scales:
            for k in self.sizes:
                if k % 2 != 1:
                    raise ValueError(f"RandomMultiScaleFeatures: sizes must be odd, got {k}")
                conv = Conv2d(3, channels, k, padding=k // 2, bias=False)
                w = rng.uniform(-1, 1, (channels, 3, k, k)).astype(np.float32)
                w -= w.mean(axis=(1, 2, 3), keepdims=True)
                w /= np.sqrt((w ** 2).sum(axis=(1, 2, 3), keepdims=True))
                conv.weight = Parameter(tensor(w))
                self.convs.append(conv)
                self.layers.append(f"s{scale}k{k}")
        self.requires_grad_(False)
        self.eval()

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        x = image - 0.5
        out, i = {}, 0
        for scale in self.scales:
            xs = x if scale == 1 else F.avg_pool2d(x, scale)
            for _ in self.sizes:
                out[self.layers[i]] = F.relu(self.convs[i](xs))
                i += 1
        return out


def _read_state(path) -> dict:
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        from ..serialization import load_safetensors
        return dict(load_safetensors(path))
    from ..serialization import load
    state = load(path)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"],
                                                                         dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"VGGFeatures: {path} does not hold a state dict")
    return state


# ---------------------------------------------------------------------------- images
def load_image(source, size: int | None = None) -> Tensor:
    """An RGB image as a ``(1, 3, H, W)`` float tensor in [0, 1].

    Args:
        source: a file path, one of scikit-learn's samples (``'china.jpg'``,
            ``'flower.jpg'``) when no such file exists, or an ``(H, W, 3)`` array.
        size: resize (keeping the aspect ratio) so the longer side has this many pixels.

    >>> load_image("flower.jpg", size=64).shape
    (1, 3, 43, 64)
    """
    from PIL import Image

    if isinstance(source, np.ndarray):
        img = Image.fromarray(source.astype(np.uint8))
    elif os.path.exists(os.fspath(source)):
        img = Image.open(os.fspath(source))
    elif os.path.basename(os.fspath(source)) in SAMPLE_IMAGES:
        from sklearn.datasets import load_sample_image
        img = Image.fromarray(load_sample_image(os.path.basename(os.fspath(source))))
    else:
        raise FileNotFoundError(f"load_image: no image file {os.fspath(source)!r} (the "
                                f"built-in samples are {', '.join(SAMPLE_IMAGES)})")
    img = img.convert("RGB")
    if size is not None:
        scale = size / max(img.size)
        img = img.resize((max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale))),
                         Image.BICUBIC)
    arr = np.asarray(img, dtype=np.float32).transpose(2, 0, 1)[None] / 255
    return as_tensor(np.ascontiguousarray(arr))


# ---------------------------------------------------------------------------- transfer
class StyleTransferLoss(Module):
    """The objective of style transfer for one content/style pair:
    ``content_weight * content + style_weight * style + tv_weight * tv``, each content
    and style term divided by its target's mean square (so the weights mean the same for
    any network) and averaged over its layers. ``parts`` holds the latest three terms.

    Args: see :func:`style_transfer`.
    """

    def __init__(self, extractor: Module, content: Tensor, style: Tensor,
                 content_layers: Sequence[str] | None = None,
                 style_layers: Sequence[str] | None = None, content_weight: float = 1.0,
                 style_weight: float = 10.0, tv_weight: float = 1.0):
        super().__init__()
        for name, img in (("content", content), ("style", style)):
            if img.ndim != 4 or img.shape[:2] != (1, 3):
                raise ValueError(f"style_transfer: {name} must be one RGB image "
                                 f"(1, 3, H, W), got shape {tuple(img.shape)}")
        self.net = extractor
        is_vgg = isinstance(extractor, VGGFeatures)
        layers = list(getattr(extractor, "layers", []))
        content_layers = list(content_layers or (["relu4_2"] if is_vgg else layers[:1]))
        style_layers = list(style_layers or ([n for n in layers if n != "relu4_2"]
                                             if is_vgg else layers))
        with no_grad():
            self.c_targets = {n: f for n, f in extractor(content).items()
                              if n in content_layers}
            self.s_targets = {n: gram_matrix(f) for n, f in extractor(style).items()
                              if n in style_layers}
        missing = [n for n in content_layers if n not in self.c_targets] + \
            [n for n in style_layers if n not in self.s_targets]
        if missing:
            raise ValueError(f"style_transfer: the extractor has no layers {missing} "
                             f"(it gives {layers})")
        self.c_scale = {n: 1.0 / max(float((f * f).mean()), 1e-12)
                        for n, f in self.c_targets.items()}
        self.s_scale = {n: 1.0 / max(float((g * g).mean()), 1e-12)
                        for n, g in self.s_targets.items()}
        self.weights = (content_weight, style_weight, tv_weight)
        self.parts: dict[str, float] = {}

    def forward(self, image: Tensor) -> Tensor:
        feats = self.net(image)
        lc = sum(content_loss(feats[n], t) * self.c_scale[n] for n, t in self.c_targets.items())
        ls = sum(style_loss(feats[n], g) * self.s_scale[n] for n, g in self.s_targets.items())
        lt = total_variation_loss(image)
        wc, ws, wt = self.weights
        loss = (wc / len(self.c_targets)) * lc + (ws / len(self.s_targets)) * ls + wt * lt
        self.parts = {"content": float(lc), "style": float(ls), "tv": float(lt),
                      "total": float(loss)}
        return loss


def style_transfer(content: Tensor, style: Tensor, extractor: Module | None = None, *,
                   content_layers: Sequence[str] | None = None,
                   style_layers: Sequence[str] | None = None, steps: int = 100,
                   optimizer: str = "lbfgs", lr: float | None = None,
                   content_weight: float = 1.0, style_weight: float = 10.0,
                   tv_weight: float = 1.0, init: str = "content", seed: int = 0,
                   log: Callable[[str], None] | None = None) -> Tensor:
    """Optimise an image with ``content``'s layout and ``style``'s textures.

    Args:
        content, style: ``(1, 3, H, W)`` images in [0, 1] (sizes may differ).
        extractor: a module mapping images to ``{layer: maps}``; default
            ``RandomMultiScaleFeatures()``.
        content_layers, style_layers: which of its layers to use; defaults: for
            ``VGGFeatures`` ``relu4_2`` and ``relu1_1``...``relu5_1`` (Gatys et al.), for
            others the first layer for content and every layer for style.
        steps: Adam steps, or L-BFGS iterations (one ``step`` with ``max_iter=steps``;
            the line search may evaluate the loss a few more times).
        optimizer: ``'lbfgs'`` (``sd.optim.LBFGS`` with a strong-Wolfe line search) or
            ``'adam'``.
        lr: step size (default 1 for L-BFGS, 0.02 for Adam).
        content_weight, style_weight, tv_weight: weights of the three terms (see
            :class:`StyleTransferLoss`).
        init: start from ``'content'`` or ``'noise'``.
        seed: for the noise start.
        log: called with a progress line now and then.

    Returns the ``(1, 3, H, W)`` result in [0, 1].
    """
    from ..optim import LBFGS, Adam

    if optimizer not in ("lbfgs", "adam"):
        raise ValueError(f"style_transfer: optimizer must be 'lbfgs' or 'adam', got "
                         f"{optimizer!r}")
    net = extractor if extractor is not None else RandomMultiScaleFeatures()
    objective = StyleTransferLoss(net, content, style, content_layers, style_layers,
                                  content_weight, style_weight, tv_weight)
    if init == "content":
        start = content.detach().numpy().copy()
    elif init == "noise":
        start = np.random.default_rng(seed).uniform(0, 1, content.shape).astype(np.float32)
    else:
        raise ValueError(f"style_transfer: init must be 'content' or 'noise', got {init!r}")
    image = Parameter(as_tensor(start))
    opt = (LBFGS([image], lr=lr or 1.0, max_iter=steps, max_eval=2 * steps,
                 history_size=20, line_search_fn="strong_wolfe")
           if optimizer == "lbfgs" else Adam([image], lr=lr or 0.02))
    evals = [0]
    every = max(1, steps // 10)

    def closure():
        opt.zero_grad()
        loss = objective(image)
        loss.backward()
        evals[0] += 1
        if log is not None and evals[0] % every == 0:
            p = objective.parts
            log(f"evaluation {evals[0]}: loss {p['total']:.4f} (content {p['content']:.4f}, "
                f"style {p['style']:.4f}, tv {p['tv']:.5f})")
        return loss

    if optimizer == "lbfgs":  # one call runs all iterations; clamping between them would
        opt.step(closure)     # break the curvature pairs, so clamp once at the end
    else:
        for _ in range(steps):
            opt.step(closure)
            with no_grad():
                image.clamp_(0.0, 1.0)
    with no_grad():
        image.clamp_(0.0, 1.0)
    return image.detach()
