"""The converter table and the helpers every converter uses."""
from __future__ import annotations

import numpy as np

from ...tensor import Tensor

CONVERTERS: dict = {}


def register(*op_types):
    """Record ``fn`` as the converter of each ONNX op type in ``op_types``."""
    def wrap(fn):
        for op in op_types:
            CONVERTERS[op] = fn
        return fn
    return wrap


class Node:
    """What a converter knows about the node it runs: op type, attributes, opset."""

    __slots__ = ("op_type", "name", "attrs", "opset", "n_outputs")

    def __init__(self, op_type, name, attrs, opset, n_outputs):
        self.op_type, self.name, self.attrs = op_type, name, attrs
        self.opset, self.n_outputs = opset, n_outputs

    def get(self, key, default=None):
        return self.attrs.get(key, default)

    def error(self, message) -> ValueError:
        return ValueError(f"ONNX {self.op_type} (node {self.name!r}, opset {self.opset}): "
                          f"{message}")


def arr(t) -> np.ndarray:
    """The NumPy array behind a Tensor (values used as shapes, axes, indices)."""
    return np.asarray(t._data) if isinstance(t, Tensor) else np.asarray(t)


def const(a) -> Tensor:
    """A constant Tensor (no gradient) holding ``a`` as it is, dtype included."""
    return Tensor._wrap(np.asarray(a))


def is_float(*ts) -> bool:
    return all(t is None or arr_dtype(t).kind == "f" for t in ts)


def arr_dtype(t) -> np.dtype:
    return np.dtype(t._data.dtype) if isinstance(t, Tensor) else np.asarray(t).dtype


def ints(t) -> list:
    """A 1-D integer input (axes, shape, pads) as a list of Python ints."""
    return [int(v) for v in arr(t).reshape(-1)]


def axes_arg(node, inputs_axes, attr="axes"):
    """Reduction/squeeze axes: an attribute before the op moved them to an input."""
    if inputs_axes is not None:
        return ints(inputs_axes)
    a = node.get(attr)
    return None if a is None else [int(v) for v in a]


def norm_axis(axis, ndim) -> int:
    return axis + ndim if axis < 0 else axis
