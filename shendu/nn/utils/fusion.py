"""``fuse``: the explicit step that runs Linear/Conv2d + ReLU pairs as single ops."""
from __future__ import annotations

import copy
from collections import OrderedDict

from ..containers import Sequential
from ..layers.activation import ReLU
from ..layers.conv import Conv2d
from ..layers.fused import FusedConv2dReLU, FusedLinearReLU
from ..layers.linear import Linear
from ..module import Module

__all__ = ["fuse"]

_PAIRS = {Linear: FusedLinearReLU, Conv2d: FusedConv2dReLU}


def _hooked(m: Module) -> bool:
    d = m.__dict__
    return bool(d["_forward_pre_hooks"] or d["_forward_hooks"] or d["_backward_hooks"])


def _fused_sequential(seq: Sequential) -> Sequential:
    items = list(seq._modules.items())
    out: OrderedDict = OrderedDict()
    i = 0
    while i < len(items):
        name, m = items[i]
        nxt = items[i + 1][1] if i + 1 < len(items) else None
        fused = _PAIRS.get(type(m))
        # exactly a Linear or Conv2d (a subclass may change forward), then exactly a ReLU,
        # no hooks on either (a hook must see each module's own call)
        if fused is not None and type(nxt) is ReLU and not (_hooked(m) or _hooked(nxt)):
            out[name] = fused.from_modules(m, nxt)
            i += 2
        else:
            out[name] = fuse(m)
            i += 1
    new = Sequential(out)
    new.train(seq.training)
    return new


def fuse(model: Module) -> Module:
    """A model that runs each ``Linear``/``Conv2d`` followed by a ``ReLU`` inside a
    ``Sequential`` as one op (``FusedLinearReLU``/``FusedConv2dReLU``), which saves a pass
    over the activations forward and backward.

    The fused model shares its parameters with ``model`` (which is left as it was): train
    either, the other follows. A fused layer keeps the name of the layer it replaces and the
    ReLU's name goes, so state dicts load either way. Subclasses of Linear/Conv2d and
    modules with hooks are left alone; ``print`` shows what was fused. A module whose
    ``forward`` picks layers of a ``Sequential`` by position would see other layers there:
    fuse only models that call their ``Sequential`` containers whole.

    >>> import shendu as sd
    >>> from shendu import nn
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> fast = nn.utils.fuse(net)
    >>> fast
    Sequential(
      (0): FusedLinearReLU(in_features=4, out_features=8, bias=True)
      (2): Linear(in_features=8, out_features=2, bias=True)
    )
    >>> fast[0].weight is net[0].weight, list(fast.state_dict()) == list(net.state_dict())
    (True, True)
    """
    if type(model) is Sequential:
        return _fused_sequential(model)
    if not model._modules:
        return model
    children = {name: (fuse(m) if m is not None else None) for name, m in model._modules.items()}
    if all(children[name] is m for name, m in model._modules.items()):
        return model
    new = copy.copy(model)  # a shell with the same attributes, its own child table
    d = new.__dict__
    for key in ("_parameters", "_buffers"):
        d[key] = dict(d[key])
    d["_modules"] = children
    return new
