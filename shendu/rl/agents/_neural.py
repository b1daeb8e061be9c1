"""Pieces the neural agents share: MLPs and NumPy -> tensor at the boundary."""
from __future__ import annotations

import numpy as np

from ... import from_numpy, nn


def mlp(sizes, activation=nn.ReLU, out_activation=None) -> nn.Sequential:
    """``Linear -> act -> ... -> Linear`` through ``sizes`` (first is input, last is output)."""
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(activation())
    if out_activation is not None:
        layers.append(out_activation())
    return nn.Sequential(*layers)


def tensor(x, dtype=np.float32):
    return from_numpy(np.ascontiguousarray(x, dtype=dtype))
