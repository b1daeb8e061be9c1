"""ReduceSum, ReduceMean, ReduceMax (and Min, Prod, ArgMax, ArgMin).

The axes moved from an attribute to an optional input (ReduceSum at opset 13, the others
at 18); with no axes every axis is reduced unless ``noop_with_empty_axes`` is set.
"""
from __future__ import annotations

import numpy as np

from ... import ops as O
from ._registry import arr, axes_arg, const, is_float, norm_axis, register

_OPS = {"ReduceSum": (O.sum, np.sum, 13), "ReduceMean": (O.mean, np.mean, 18),
        "ReduceMax": (O.amax, np.max, 18), "ReduceMin": (O.amin, np.min, 18),
        "ReduceProd": (O.prod, np.prod, 18)}


def _reduction(op_type):
    sd_fn, np_fn, axes_input_since = _OPS[op_type]

    def convert(node, x, axes=None):
        if node.opset < axes_input_since:
            axes = None
        ax = axes_arg(node, axes)
        keep = bool(node.get("keepdims", 1))
        if not ax:
            if node.get("noop_with_empty_axes", 0):
                return x
            ax = list(range(x.ndim))
        ax = tuple(sorted(norm_axis(a, x.ndim) for a in ax))
        empty = any(x.shape[a] == 0 for a in ax)
        if is_float(x) and not empty and x.ndim:
            if sd_fn is O.prod:  # (prod takes one dim at a time)
                for a in reversed(ax):
                    x = O.prod(x, dim=a, keepdim=keep)
                return x
            return sd_fn(x, dim=ax, keepdim=keep)
        a = arr(x)
        if empty and np_fn in (np.max, np.min):
            # ONNX: an empty max is the type's lowest value (-inf), an empty min its highest
            lo, hi = _limits(a.dtype)
            kw = {"initial": lo if np_fn is np.max else hi}
        else:
            kw = {}
        return const(np.asarray(np_fn(a, axis=ax, keepdims=keep, **kw)).astype(a.dtype))
    return convert


def _limits(dtype):
    if dtype.kind == "f":
        return -np.inf, np.inf
    if dtype.kind == "b":
        return False, True
    info = np.iinfo(dtype)
    return info.min, info.max


for _name in _OPS:
    register(_name)(_reduction(_name))


def _arg(np_fn):
    def convert(node, x):
        axis = norm_axis(node.get("axis", 0), x.ndim)
        a = arr(x)
        if node.get("select_last_index", 0):
            a = np.flip(a, axis)
            idx = a.shape[axis] - 1 - np_fn(a, axis=axis)
        else:
            idx = np_fn(a, axis=axis)
        if node.get("keepdims", 1):
            idx = np.expand_dims(idx, axis)
        return const(idx.astype(np.int64))
    return convert


register("ArgMax")(_arg(np.argmax))
register("ArgMin")(_arg(np.argmin))
