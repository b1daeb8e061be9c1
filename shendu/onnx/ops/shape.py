"""Tensor manipulation: Flatten Reshape Transpose Concat Slice Gather Squeeze Unsqueeze
Expand Pad Identity Constant Shape Size ConstantOfShape Split Tile Range."""
from __future__ import annotations

import math

import numpy as np

from ... import ops as O
from ...ops.movement import Pad
from ._registry import arr, axes_arg, const, ints, is_float, norm_axis, register


@register("Identity")
def identity(node, x):
    return x


@register("Flatten")
def flatten(node, x):
    axis = norm_axis(node.get("axis", 1), x.ndim)
    return O.reshape(x, (math.prod(x.shape[:axis]), math.prod(x.shape[axis:])))


@register("Reshape")
def reshape(node, x, shape=None):
    target = ints(shape) if shape is not None else list(node.get("shape"))
    if not node.get("allowzero", 0):  # 0 copies the input's size at that position
        target = [x.shape[i] if s == 0 else s for i, s in enumerate(target)]
    return O.reshape(x, tuple(target))


@register("Transpose")
def transpose(node, x):
    perm = node.get("perm") or list(range(x.ndim))[::-1]
    return O.permute(x, *perm)


@register("Concat")
def concat(node, *xs):
    xs = [x for x in xs if x is not None]
    axis = norm_axis(node.get("axis"), xs[0].ndim)
    if is_float(*xs):
        return O.cat(xs, dim=axis)
    return const(np.concatenate([arr(x) for x in xs], axis=axis))


@register("Slice")
def slice_(node, x, starts=None, ends=None, axes=None, steps=None):
    if node.opset < 10:
        starts, ends = node.get("starts"), node.get("ends")
        axes = node.get("axes")
    else:
        starts, ends = ints(starts), ints(ends)
        axes = None if axes is None else ints(axes)
        steps = None if steps is None else ints(steps)
    axes = list(range(len(starts))) if axes is None else [norm_axis(a, x.ndim) for a in axes]
    steps = steps or [1] * len(starts)
    index = [slice(None)] * x.ndim
    for a, s, e, st in zip(axes, starts, ends, steps):
        # Python's slice clamps out-of-range starts and ends as ONNX does (INT_MAX too).
        n = x.shape[a]
        index[a] = slice(max(min(s, n), -n - 1), max(min(e, n), -n - 1), st)
    return x[tuple(index)]


@register("Gather")
def gather(node, x, indices):
    axis = norm_axis(node.get("axis", 0), x.ndim)
    idx = arr(indices).astype(np.int64)
    idx = np.where(idx < 0, idx + x.shape[axis], idx)
    index = (slice(None),) * axis + (idx,)
    if is_float(x):
        return x[index]
    return const(arr(x)[index])


@register("Squeeze")
def squeeze(node, x, axes=None):
    ax = axes_arg(node, axes)
    if ax is None:
        ax = [i for i, s in enumerate(x.shape) if s == 1]
    ax = {norm_axis(a, x.ndim) for a in ax}
    return O.reshape(x, tuple(s for i, s in enumerate(x.shape) if i not in ax))


@register("Unsqueeze")
def unsqueeze(node, x, axes=None):
    ax = axes_arg(node, axes)
    rank = x.ndim + len(ax)
    ax = sorted(norm_axis(a, rank) for a in ax)
    shape = list(x.shape)
    for a in ax:
        shape.insert(a, 1)
    return O.reshape(x, tuple(shape))


@register("Expand")
def expand(node, x, shape):
    target = np.broadcast_shapes(tuple(x.shape), tuple(ints(shape)))
    if is_float(x):
        return O.broadcast_to(x, target)
    return const(np.broadcast_to(arr(x), target).copy())


@register("Tile")
def tile(node, x, repeats):
    return O.tile(x, tuple(ints(repeats)))


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}


@register("Pad")
def pad(node, x, pads=None, value=None, axes=None):
    if node.opset < 11:
        pads, value = list(node.get("pads")), node.get("value", 0.0)
    else:
        pads = ints(pads)
        value = 0 if value is None else arr(value).item()
    mode = node.get("mode", "constant")
    if mode not in _PAD_MODES:
        raise node.error(f"pad mode {mode!r} is not one of {sorted(_PAD_MODES)}")
    axes = list(range(x.ndim)) if axes is None else [norm_axis(a, x.ndim) for a in ints(axes)]
    k = len(axes)
    width = [(0, 0)] * x.ndim
    for i, a in enumerate(axes):  # ONNX lists all begins, then all ends
        width[a] = (pads[i], pads[i + k])
    if any(lo < 0 or hi < 0 for lo, hi in width):  # negative pads crop
        x = x[tuple(slice(-lo if lo < 0 else None, hi if hi < 0 else None)
                    for lo, hi in width)]
        width = [(max(lo, 0), max(hi, 0)) for lo, hi in width]
    if not is_float(x):
        a = arr(x)
        kw = {"constant_values": value} if mode == "constant" else {}
        return const(np.pad(a, width, mode=_PAD_MODES[mode], **kw).astype(a.dtype))
    return Pad.apply(x, width=tuple(width), mode=_PAD_MODES[mode], value=value)


@register("Constant")
def constant(node):
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in node.attrs:
            v = node.attrs[key]
            dtype = np.float32 if "float" in key else np.int64 if "int" in key else None
            return const(np.asarray(v, dtype=dtype))
    raise node.error(f"only tensor, float and int constants are supported, got "
                     f"{sorted(node.attrs)}")


@register("Shape")
def shape(node, x):
    dims = list(x.shape)
    start, end = node.get("start", 0), node.get("end", len(dims))
    return const(np.array(dims[start:end], dtype=np.int64))


@register("Size")
def size(node, x):
    return const(np.array(math.prod(x.shape), dtype=np.int64))


@register("ConstantOfShape")
def constant_of_shape(node, shape):
    value = node.get("value")
    value = np.zeros(1, np.float32) if value is None else value
    return const(np.full(tuple(ints(shape)), value.reshape(-1)[0], dtype=value.dtype))


@register("Range")
def range_(node, start, limit, delta):
    s, lim, d = arr(start), arr(limit), arr(delta)
    n = max(int(np.ceil((lim - s) / d)), 0)
    return const((s + np.arange(n) * d).astype(s.dtype))


@register("Split")
def split(node, x, split=None):
    axis = norm_axis(node.get("axis", 0), x.ndim)
    sizes = ints(split) if split is not None else node.get("split")
    if sizes is None:
        n = node.get("num_outputs", node.n_outputs)
        step = -(-x.shape[axis] // n)
        sizes = [min(step, x.shape[axis] - i * step) for i in range(n)]
    return tuple(O.split(x, list(sizes), dim=axis))
