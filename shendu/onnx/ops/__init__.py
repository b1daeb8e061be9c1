"""One small converter per ONNX op, grouped by family; importing this package fills
``CONVERTERS`` (op type -> function).

A converter is called as ``fn(node, *inputs)`` where ``node`` carries the attributes,
the opset and the number of outputs wanted, and each input is a shendu ``Tensor`` (or
``None`` for an omitted optional input, named ``''`` in the graph). It returns one
Tensor or a tuple of them. Float inputs go through shendu ops, so an imported model is
differentiable; integer, unsigned and bool inputs take NumPy's exact semantics.
"""
from . import activation, conv, linalg, math, norm, reduce, rnn, shape  # fill CONVERTERS
from ._registry import CONVERTERS, Node, register

__all__ = ["CONVERTERS", "Node", "register"]
