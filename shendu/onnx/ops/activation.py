"""Activations: Relu ... Gelu, Softmax and LogSoftmax (with the pre-13 2-D coercion)."""
from __future__ import annotations

import math

from ... import ops as O
from ...nn import functional as F
from ._registry import norm_axis, register


@register("Relu")
def relu(node, x):
    return F.relu(x)


@register("LeakyRelu")
def leaky_relu(node, x):
    return F.leaky_relu(x, node.get("alpha", 0.01))


@register("Sigmoid")
def sigmoid(node, x):
    return O.sigmoid(x)


@register("Tanh")
def tanh(node, x):
    return O.tanh(x)


@register("Elu")
def elu(node, x):
    return F.elu(x, node.get("alpha", 1.0))


@register("Selu")
def selu(node, x):
    # ONNX's defaults are float32 roundings of SELU's constants; tests override them.
    alpha = node.get("alpha", 1.67326319217681884765625)
    gamma = node.get("gamma", 1.05070102214813232421875)
    return O.mul(F.elu(x, alpha), gamma)


@register("Softplus")
def softplus(node, x):
    return F.softplus(x)


@register("Softsign")
def softsign(node, x):
    return F.softsign(x)


@register("HardSigmoid")
def hard_sigmoid(node, x):
    return O.clamp(O.add(O.mul(x, node.get("alpha", 0.2)), node.get("beta", 0.5)), 0.0, 1.0)


@register("Gelu")
def gelu(node, x):
    return F.gelu(x, approximate=node.get("approximate", "none"))


def _softmax(fn):
    def convert(node, x):
        if node.opset >= 13:
            return fn(x, dim=node.get("axis", -1))
        # Before opset 13 the input is coerced to 2-D at `axis` and normalised per row.
        axis = norm_axis(node.get("axis", 1), x.ndim)
        rows = math.prod(x.shape[:axis])
        return fn(O.reshape(x, (rows, -1)), dim=1).reshape(x.shape)
    return convert


register("Softmax")(_softmax(F.softmax))
register("LogSoftmax")(_softmax(F.log_softmax))
