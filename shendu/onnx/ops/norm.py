"""BatchNormalization, LayerNormalization, InstanceNormalization, Dropout."""
from __future__ import annotations

import numpy as np

from ... import ops as O
from ._registry import arr, const, register


def _per_channel(t, ndim):
    return O.reshape(t, (1, -1) + (1,) * (ndim - 2))


@register("BatchNormalization")
def batch_norm(node, x, scale, bias, mean, var):
    eps = node.get("epsilon", 1e-5)
    training = bool(node.get("training_mode", 0)) if node.opset >= 14 else False
    axes = (0,) + tuple(range(2, x.ndim))
    if training:
        batch_mean = O.mean(x, dim=axes)
        batch_var = O.mean(O.square(O.sub(x, _per_channel(batch_mean, x.ndim))), dim=axes)
        use_mean, use_var = batch_mean, batch_var
    else:
        use_mean, use_var = mean, var
    inv = O.rsqrt(O.add(use_var, eps))
    y = O.mul(O.sub(x, _per_channel(use_mean, x.ndim)), _per_channel(O.mul(inv, scale), x.ndim))
    y = O.add(y, _per_channel(bias, x.ndim))
    if not training or node.n_outputs == 1:
        return y
    # ONNX's momentum weights the old running value (PyTorch's weights the new batch):
    # running = running * momentum + batch * (1 - momentum), the batch variance biased.
    m = node.get("momentum", 0.9)
    new_mean = O.add(O.mul(mean, m), O.mul(batch_mean.detach(), 1 - m))
    new_var = O.add(O.mul(var, m), O.mul(batch_var.detach(), 1 - m))
    return y, new_mean, new_var


@register("LayerNormalization")
def layer_norm(node, x, scale, bias=None):
    axis = node.get("axis", -1)
    axis = axis + x.ndim if axis < 0 else axis
    axes = tuple(range(axis, x.ndim))
    mean = O.mean(x, dim=axes, keepdim=True)
    centred = O.sub(x, mean)
    inv = O.rsqrt(O.add(O.mean(O.square(centred), dim=axes, keepdim=True),
                        node.get("epsilon", 1e-5)))
    y = O.mul(O.mul(centred, inv), scale)
    if bias is not None:
        y = O.add(y, bias)
    return (y, mean, inv)[:node.n_outputs] if node.n_outputs > 1 else y


@register("InstanceNormalization")
def instance_norm(node, x, scale, bias):
    axes = tuple(range(2, x.ndim))
    mean = O.mean(x, dim=axes, keepdim=True)
    centred = O.sub(x, mean)
    inv = O.rsqrt(O.add(O.mean(O.square(centred), dim=axes, keepdim=True),
                        node.get("epsilon", 1e-5)))
    return O.add(O.mul(O.mul(centred, inv), _per_channel(scale, x.ndim)),
                 _per_channel(bias, x.ndim))


@register("Dropout")
def dropout(node, x, ratio=None, training_mode=None):
    """Inference: the identity. Training (opset 12+'s training_mode input) with a ratio
    above 0 draws a mask from shendu's generator, which no other runtime reproduces."""
    if node.opset >= 12:
        p = 0.5 if ratio is None else float(arr(ratio))
        training = training_mode is not None and bool(arr(training_mode))
    else:
        p = node.get("ratio", 0.5)
        training = node.opset < 7 and not node.get("is_test", 0)
    if training and p > 0:
        from ...creation import rand

        keep = O.ge(rand(*x.shape, dtype=x.dtype), p)
        y = O.mul(O.mul(x, keep.to(x.dtype)), 1.0 / (1.0 - p)) if p < 1 else O.mul(x, 0.0)
        mask = keep
    else:
        y, mask = x, const(np.ones(x.shape, dtype=bool))
    return (y, mask) if node.n_outputs > 1 else y
