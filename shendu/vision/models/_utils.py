"""What every zoo model shares: loading ``weights=PATH``, the smallest-input check, and the
parameter / multiply-add count that the docstrings quote.

Multiply-adds are counted as torchvision counts them for its published "GFLOPS": one per
weight use in convolutions and linear layers (pooling, BN and activations are not
counted), so ``resnet18`` at 224x224 gives the familiar 1.81 G.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping

import numpy as np

__all__ = ["load_weights", "check_input_size", "count_macs", "model_stats"]


def _read_weights(path: str | os.PathLike) -> Mapping:
    """A state dict from a ``.safetensors`` file, or anything :func:`shendu.load` reads
    (shendu's own format; PyTorch ``.pth`` files where that reader is available). A
    checkpoint written by ``shendu train`` holds the weights under ``'model'``."""
    from ... import serialization

    path = os.fspath(path)
    if path.endswith(".safetensors"):
        return serialization.load_safetensors(path)
    obj = serialization.load(path, map_location="cpu")
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping) \
            and not any(hasattr(v, "shape") for v in obj.values() if v is not obj["model"]):
        obj = obj["model"]  # a training checkpoint: {'model': ..., 'optimizer': ...}
    for key in ("state_dict", "model_state_dict"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping):
        raise ValueError(f"weights: {path!r} holds a {type(obj).__name__}, not a state dict "
                         "(a mapping of parameter names to tensors)")
    return obj


def load_weights(model, weights: str | os.PathLike | Mapping | None):
    """Load ``weights`` (a path or a state dict) into ``model`` with PyTorch's strict
    semantics; ``None`` leaves the random initialisation. Returns ``model``."""
    if weights is None:
        return model
    state = weights if isinstance(weights, Mapping) else _read_weights(weights)
    model.load_state_dict(state, strict=True)
    return model


def check_input_size(model_name: str, x, min_size: int) -> None:
    """Raise a ValueError naming the smallest input when ``x`` is too small to survive the
    model's down-sampling (instead of a shape error deep inside)."""
    h, w = x.shape[-2:]
    if h < min_size or w < min_size:
        raise ValueError(f"{model_name}: input of {h}x{w} pixels is too small; this model "
                         f"needs at least {min_size}x{min_size} (input shape "
                         f"{tuple(x.shape)})")


def count_macs(model, input_size: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass of ``model`` on one input of ``input_size``
    (C, H, W), counted from the output shapes of every Conv2d and Linear."""
    from ... import creation
    from ...autograd.grad_mode import no_grad
    from ...nn.layers import Conv2d, Linear

    total = [0]

    def conv_hook(m, args, out):
        per_out = (m.in_channels // m.groups) * math.prod(m.kernel_size)
        total[0] += int(np.prod(out.shape[1:])) * per_out

    def linear_hook(m, args, out):
        total[0] += int(np.prod(out.shape[1:])) * m.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            model(creation.zeros(1, *input_size))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total[0]


def model_stats(model, input_size: tuple[int, ...]) -> dict:
    """``{'params': ..., 'macs': ...}`` of ``model`` at ``input_size`` (C, H, W)."""
    return {"params": sum(p.numel() for p in model.parameters()),
            "macs": count_macs(model, input_size)}
