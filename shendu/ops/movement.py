"""Shape, indexing and data-movement primitives (gathering and scattering along a
dimension, selection by index or mask, one-hot and sorting are in ``selection.py``).

Views (reshape, permute, expand, basic indexing) share the version counter of their
input, as they share its memory: an in-place write through one is seen by both.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd.function import Function
from ..autograd.tracing import leaf
from ..backend import to_device as _move
from ..dtypes import as_dtype
from ..errors import ShapeError
from ..tensor import Tensor
from ._util import as_tensor_like, is_channel_major, norm_axes, norm_dim, pick, xp_of

__all__ = ["broadcast_tensors", "broadcast_to", "cat", "chunk", "clone", "concat", "concatenate",
           "contiguous", "expand", "expand_as", "expand_dims", "flatten", "flip", "fliplr",
           "flipud", "hstack", "masked_select", "moveaxis", "movedim", "narrow",
           "pad", "permute", "repeat", "repeat_interleave", "reshape", "reshape_as", "roll",
           "select", "split", "squeeze", "stack", "swapaxes", "swapdims", "t", "tensor_split",
           "tile", "transpose", "tril", "triu", "unbind", "unflatten", "unsqueeze", "view",
           "view_as", "vstack"]


def _view_of(out: Tensor, base: Tensor) -> Tensor:
    out._version = base._version
    return out


# ---------------------------------------------------------------------- primitives
class Reshape(Function):
    linear_backward = True

    @staticmethod
    def forward(ctx, a, shape):
        ctx.in_shape, ctx.out_shape = a.shape, shape
        return a.reshape(shape)

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.in_shape)

    @staticmethod
    def jvp(ctx, da):
        return da.reshape(ctx.out_shape)


class Permute(Function):
    linear_backward = True

    @staticmethod
    def forward(ctx, a, dims):
        ctx.dims = dims
        return a.transpose(dims)

    @staticmethod
    def backward(ctx, g):
        return g.transpose(np.argsort(ctx.dims))

    @staticmethod
    def jvp(ctx, da):
        return da.transpose(ctx.dims)


class Expand(Function):
    linear_backward = True

    @staticmethod
    def forward(ctx, a, shape):
        ctx.in_shape, ctx.out_shape = a.shape, shape
        return xp_of(a).broadcast_to(a, shape)

    @staticmethod
    def backward(ctx, g):
        from ._util import unbroadcast

        return unbroadcast(g, ctx.in_shape)

    @staticmethod
    def jvp(ctx, da):
        return xp_of(da).broadcast_to(da, ctx.out_shape)


class Tile(Function):
    linear_backward = True

    @staticmethod
    def forward(ctx, a, reps):
        ctx.in_shape, ctx.reps = a.shape, reps
        return xp_of(a).tile(a, reps)

    @staticmethod
    def backward(ctx, g):
        interleaved = []
        for r, s in zip(ctx.reps, ctx.in_shape):
            interleaved += [r, s]
        return g.reshape(interleaved).sum(axis=tuple(range(0, 2 * len(ctx.reps), 2)))

    @staticmethod
    def jvp(ctx, da):
        return xp_of(da).tile(da, ctx.reps)


class Split(Function):
    """Consecutive pieces of ``a`` along ``axis`` with the given ``sizes``, as views: one
    node with an output per piece, whose backward writes the pieces' gradients side by
    side into one array (a node per piece would each fill an input-sized array with
    zeros, to be summed)."""

    @staticmethod
    def _slices(ctx):
        pre, start = (slice(None),) * ctx.axis, 0
        for s in ctx.sizes:
            yield pre + (slice(start, start + s),)
            start += s

    @staticmethod
    def forward(ctx, a, axis, sizes):
        ctx.in_shape, ctx.axis, ctx.sizes = a.shape, axis, sizes
        return tuple(a[idx] for idx in Split._slices(ctx))

    @staticmethod
    def backward(ctx, *grads):
        g0 = next(g for g in grads if g is not None)
        gx = xp_of(g0).empty(ctx.in_shape, g0.dtype)
        for g, idx in zip(grads, Split._slices(ctx)):
            gx[idx] = 0 if g is None else g
        return gx

    @staticmethod
    def backward_graph(ctx, *grads):
        from ..tensor import Tensor as _T

        like = next(g for g in grads if g is not None)
        parts = [g if g is not None else _T._wrap(xp_of(like._data).zeros(
            ctx.in_shape[:ctx.axis] + (s,) + ctx.in_shape[ctx.axis + 1:], like.dtype))
            for g, s in zip(grads, ctx.sizes)]
        return cat(parts, ctx.axis)

    @staticmethod
    def jvp(ctx, da):
        return tuple(da[idx] for idx in Split._slices(ctx))


class GetItem(Function):
    linear_backward = True

    @staticmethod
    def forward(ctx, a, index, advanced):
        ctx.in_shape, ctx.index, ctx.advanced = a.shape, index, advanced
        return a[index]

    @staticmethod
    def backward(ctx, g):
        xp = xp_of(g)
        gx = xp.zeros(ctx.in_shape, g.dtype)
        if ctx.advanced:
            xp.add.at(gx, ctx.index, g)  # repeated indices accumulate
        else:
            gx[ctx.index] = g
        return gx

    @staticmethod
    def jvp(ctx, da):
        return da[ctx.index]


class Cat(Function):
    linear_backward = True

    @staticmethod
    def forward(ctx, *arrays, axis):
        ctx.axis = axis
        ctx.shapes = [a.shape for a in arrays]
        ctx.bounds = np.cumsum([a.shape[axis] for a in arrays])[:-1].tolist()
        return xp_of(arrays[0]).concatenate(arrays, axis=axis)

    @staticmethod
    def backward(ctx, g):
        return tuple(xp_of(g).split(g, ctx.bounds, axis=ctx.axis))

    @staticmethod
    def jvp(ctx, *tangents):
        ref = next(t for t in tangents if t is not None)
        xp = xp_of(ref)
        parts = [t if t is not None else xp.zeros(s, ref.dtype)
                 for t, s in zip(tangents, ctx.shapes)]
        return xp.concatenate(parts, axis=ctx.axis)


class Stack(Function):
    linear_backward = True

    @staticmethod
    def forward(ctx, *arrays, axis):
        ctx.axis, ctx.shape = axis, arrays[0].shape
        return xp_of(arrays[0]).stack(arrays, axis=axis)

    @staticmethod
    def backward(ctx, g):
        gm = xp_of(g).moveaxis(g, ctx.axis, 0)
        return tuple(gm[i] for i in range(gm.shape[0]))

    @staticmethod
    def jvp(ctx, *tangents):
        ref = next(t for t in tangents if t is not None)
        xp = xp_of(ref)
        return xp.stack([t if t is not None else xp.zeros(ctx.shape, ref.dtype)
                         for t in tangents], axis=ctx.axis)


class Pad(Function):
    linear_backward = True

    @staticmethod
    def forward(ctx, a, width, mode, value):
        xp = xp_of(a)
        ctx.width, ctx.mode, ctx.in_shape = width, mode, a.shape
        if mode == "constant":
            return xp.pad(a, width, mode="constant", constant_values=value)
        return xp.pad(a, width, mode=mode)

    @staticmethod
    def backward(ctx, g):
        xp = xp_of(g)
        if ctx.mode == "constant":
            return g[tuple(slice(lo, g.shape[i] - hi) for i, (lo, hi) in enumerate(ctx.width))]
        # Pad an array of source positions the same way; each output element then says
        # which input element it copies, and the gradient is a scatter-add.
        n = math.prod(ctx.in_shape)
        src = xp.pad(xp.arange(n).reshape(ctx.in_shape), ctx.width, mode=ctx.mode)
        gx = xp.bincount(src.ravel(), weights=g.ravel(), minlength=n)
        return gx.reshape(ctx.in_shape).astype(g.dtype)

    @staticmethod
    def jvp(ctx, da):
        xp = xp_of(da)
        if ctx.mode == "constant":
            return xp.pad(da, ctx.width, mode="constant", constant_values=0)
        return xp.pad(da, ctx.width, mode=ctx.mode)


class Flip(Function):
    linear_backward = True

    @staticmethod
    def forward(ctx, a, axes):
        ctx.axes = axes
        return xp_of(a).flip(a, axes)

    @staticmethod
    def backward(ctx, g):
        return xp_of(g).flip(g, ctx.axes)

    jvp = backward


class Roll(Function):
    linear_backward = True

    @staticmethod
    def forward(ctx, a, shifts, axes):
        ctx.shifts, ctx.axes = shifts, axes
        return xp_of(a).roll(a, shifts, axes)

    @staticmethod
    def backward(ctx, g):
        neg = tuple(-s for s in ctx.shifts) if isinstance(ctx.shifts, tuple) else -ctx.shifts
        return xp_of(g).roll(g, neg, ctx.axes)

    @staticmethod
    def jvp(ctx, da):
        return xp_of(da).roll(da, ctx.shifts, ctx.axes)


class Tri(Function):
    """``tril``/``triu`` over the last two dimensions."""

    linear_backward = True

    @staticmethod
    def forward(ctx, a, k, upper):
        ctx.k, ctx.upper = k, upper
        xp = xp_of(a)
        return (xp.triu if upper else xp.tril)(a, k)

    @staticmethod
    def backward(ctx, g):
        xp = xp_of(g)
        return (xp.triu if ctx.upper else xp.tril)(g, ctx.k)

    jvp = backward


class Cast(Function):
    linear_backward = True

    @staticmethod
    def forward(ctx, a, dtype):
        ctx.in_dtype, ctx.out_dtype = a.dtype, dtype
        return a.astype(dtype)

    @staticmethod
    def backward(ctx, g):
        return g.astype(ctx.in_dtype)

    @staticmethod
    def jvp(ctx, da):
        return da.astype(ctx.out_dtype)


class ToDevice(Function):
    linear_backward = True

    @staticmethod
    def forward(ctx, a, device):
        from ..backend import device_of

        ctx.src, ctx.dst = device_of(a), device
        return _move(a, device)

    @staticmethod
    def backward(ctx, g):
        return _move(g, ctx.src)

    @staticmethod
    def jvp(ctx, da):
        return _move(da, ctx.dst)


class Copy(Function):
    """``clone()`` and ``contiguous()``: a fresh copy whose gradient is the identity."""

    linear_backward = True

    @staticmethod
    def forward(ctx, a):
        return xp_of(a).array(a, copy=True, order="C")

    @staticmethod
    def backward(ctx, g):
        return g

    @staticmethod
    def jvp(ctx, da):
        return da


# ---------------------------------------------------------------------- public functions
def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    if len(shape) == 1 and isinstance(shape[0], Tensor):
        return tuple(shape[0].tolist())
    return tuple(int(s) for s in shape)


def _infer_shape(op, shape, in_shape, size):
    if shape.count(-1) > 1:
        raise ShapeError(f"{op}: only one dimension can be -1, got {shape}")
    known = math.prod(s for s in shape if s != -1)
    if -1 in shape:
        if known == 0 or size % known:
            raise ShapeError(f"{op}: cannot reshape a tensor of shape {in_shape} "
                             f"({size} elements) into {shape}")
        shape = tuple(size // known if s == -1 else s for s in shape)
    elif known != size:
        raise ShapeError(f"{op}: cannot reshape a tensor of shape {in_shape} ({size} elements) "
                         f"into {shape} ({known} elements)")
    return shape


def reshape(input, *shape, _op="reshape"):
    """The same elements in a new shape (one dimension may be -1)."""
    shape = _infer_shape(_op, _shape_arg(shape), input.shape, input._data.size)
    if shape == input._data.shape:
        return input
    return _view_of(Reshape.apply(input, shape=shape), input)


def view(input, *shape):
    """The same memory seen with a new shape (``view(n, -1)``) or dtype (``view(sd.int32)``).

    As in PyTorch, a shape view never copies: where the strides do not allow it, ``view``
    raises and ``reshape`` is the op to use. One exception keeps PyTorch code working:
    shendu stores convolution outputs channel-major, (N, C, H, W) laid out as
    (C, N, H, W), where PyTorch's are contiguous, so ``x.view(n, -1)`` after a conv cannot
    be a view. There it returns a copy that is read-only: reading works as in PyTorch, and
    an in-place write through it raises instead of silently missing the original.

    >>> import shendu as sd
    >>> x = sd.zeros(2, 3)
    >>> x.view(6)[0] = 1.0
    >>> x[0, 0]
    tensor(1.)
    >>> sd.tensor([1.0]).view(sd.int32)
    tensor([1065353216], dtype=shendu.int32)
    """
    if len(shape) == 1 and not isinstance(shape[0], (tuple, list, int, np.integer, Tensor)):
        return view_dtype(input, shape[0])
    shape = _infer_shape("view", _shape_arg(shape), input.shape, input._data.size)
    if shape == input._data.shape:
        return input
    arr = input._data
    out = Reshape.apply(input, shape=shape)
    if arr.size == 0 or xp_of(arr).may_share_memory(out._data, arr):
        return _view_of(out, input)
    if is_channel_major(arr):
        out._data.flags.writeable = False  # a copy: writes through it must not go missing
        return out
    raise ShapeError(
        f"view: the tensor of shape {input.shape} with strides {_elem_strides(arr)} cannot be "
        f"viewed as {shape} without copying (at least one dimension spans across two "
        "contiguous subspaces); use .reshape(...) instead, or .contiguous().view(...)")


def _elem_strides(arr):
    return tuple(st // arr.itemsize for st in arr.strides)


def view_dtype(input, dtype):
    """``x.view(dtype)``: the same bytes read as another dtype (not differentiable).

    The same element size keeps the shape; a different one scales the last dimension,
    which must then be contiguous, as in PyTorch.
    """
    dt = as_dtype(dtype)
    arr = input._data
    old = arr.dtype
    if dt == old:
        return input
    name_old, name_new = f"shendu.{old}", f"shendu.{dt}"
    if dt.itemsize != old.itemsize:
        if arr.ndim == 0:
            raise ShapeError(f"view: a 0-dimensional tensor cannot be viewed as {name_new} "
                             f"from {name_old}: the element sizes differ ({old.itemsize} and "
                             f"{dt.itemsize} bytes), so the last dimension would change")
        strides = _elem_strides(arr)
        if strides[-1] != 1:
            raise ShapeError(f"view: the last dimension must be contiguous (stride 1) to view "
                             f"{name_old} as {name_new}, but the tensor of shape "
                             f"{input.shape} has strides {strides}")
        if dt.itemsize > old.itemsize:
            ratio = dt.itemsize // old.itemsize
            if arr.shape[-1] % ratio:
                raise ShapeError(f"view: the last dimension ({arr.shape[-1]}) must be "
                                 f"divisible by {ratio} to view {name_old} as {name_new}, "
                                 f"got shape {input.shape}")
            if any(s % ratio for s in strides[:-1]):
                raise ShapeError(f"view: every stride but the last must be divisible by "
                                 f"{ratio} to view {name_old} as {name_new}, got strides "
                                 f"{strides}")
            # PyTorch counts the offset into the storage; the address's alignment is the
            # same test on memory that starts aligned (as NumPy's and CuPy's does)
            ptr = arr.ctypes.data if xp_of(arr) is np else arr.data.ptr
            if ptr % dt.itemsize:
                raise ShapeError(f"view: cannot view {name_old} as {name_new}: the storage "
                                 f"offset must be divisible by {ratio}, and this tensor starts "
                                 f"{ptr % dt.itemsize // old.itemsize} element(s) past a "
                                 f"{name_new} boundary")
    t = Tensor._wrap(arr.view(dt))
    t._version = input._version  # the same memory
    return t


def view_as(input, other):
    return view(input, other.shape)


def reshape_as(input, other):
    return reshape(input, other.shape)


def flatten(input, start_dim=0, end_dim=-1):
    if input.ndim == 0:
        return reshape(input, 1)
    s = norm_dim(start_dim, input.ndim, "flatten")
    e = norm_dim(end_dim, input.ndim, "flatten")
    if s > e:
        raise ShapeError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    shape = input.shape[:s] + (math.prod(input.shape[s:e + 1]),) + input.shape[e + 1:]
    return reshape(input, shape)


def unflatten(input, dim, sizes):
    d = norm_dim(dim, input.ndim, "unflatten")
    sizes = _infer_shape("unflatten", tuple(sizes), input.shape[d:d + 1], input.shape[d])
    return reshape(input, input.shape[:d] + sizes + input.shape[d + 1:])


def squeeze(input, dim=None, *, axis=None):
    d = pick("squeeze", dim, axis)
    if d is None:
        shape = tuple(s for s in input.shape if s != 1)
    else:
        axes = norm_axes(d, input.ndim, "squeeze")
        shape = tuple(s for i, s in enumerate(input.shape) if not (i in axes and s == 1))
    return reshape(input, shape)


def unsqueeze(input, dim):
    d = int(dim)
    if not -input.ndim - 1 <= d <= input.ndim:
        raise IndexError(f"unsqueeze: dim {d} out of range for a tensor with {input.ndim} "
                         f"dimensions (expected -{input.ndim + 1} to {input.ndim})")
    d %= input.ndim + 1
    return reshape(input, input.shape[:d] + (1,) + input.shape[d:])


expand_dims = unsqueeze


def permute(input, *dims):
    dims = _shape_arg(dims)
    if sorted(d % max(input.ndim, 1) for d in dims) != list(range(input.ndim)):
        raise ShapeError(f"permute: dims {dims} are not a permutation of the {input.ndim} "
                         f"dimensions of a tensor of shape {input.shape}")
    dims = tuple(d % input.ndim for d in dims)
    if dims == tuple(range(input.ndim)):
        return input
    return _view_of(Permute.apply(input, dims=dims), input)


def transpose(input, dim0=None, dim1=None):
    """Swap two dimensions (``x.transpose()`` with no argument reverses them, as NumPy)."""
    if dim0 is None and dim1 is None:
        return permute(input, *range(input.ndim - 1, -1, -1))
    d0, d1 = norm_dim(dim0, input.ndim, "transpose"), norm_dim(dim1, input.ndim, "transpose")
    dims = list(range(input.ndim))
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return permute(input, *dims)


swapaxes = swapdims = transpose


def t(input):
    if input.ndim > 2:
        raise ShapeError(f"t: expects a tensor with at most 2 dimensions, got {input.shape}")
    return transpose(input)


def movedim(input, source, destination):
    src = norm_axes(source, input.ndim, "movedim") if isinstance(source, int) else \
        tuple(s % input.ndim for s in source)
    dst = (destination % input.ndim,) if isinstance(destination, int) else \
        tuple(d % input.ndim for d in destination)
    src = (source % input.ndim,) if isinstance(source, int) else src
    order = [d for d in range(input.ndim) if d not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return permute(input, *order)


moveaxis = movedim


def expand(input, *sizes):
    sizes = _shape_arg(sizes)
    if len(sizes) < input.ndim:
        raise ShapeError(f"expand: target {sizes} has fewer dimensions than the tensor "
                         f"{input.shape}")
    lead = len(sizes) - input.ndim
    shape = []
    for i, s in enumerate(sizes):
        cur = input.shape[i - lead] if i >= lead else 1
        if s == -1:
            if i < lead:
                raise ValueError(f"expand: -1 is not allowed for new leading dims ({sizes})")
            s = cur
        if cur != 1 and cur != s:
            raise ShapeError(f"expand: the tensor of shape {input.shape} cannot be expanded "
                             f"to {sizes} (dimension {i}: {cur} is not 1 and != {s})")
        shape.append(s)
    shape = tuple(shape)
    if shape == input.shape:
        return input
    return _view_of(Expand.apply(input, shape=shape), input)


def expand_as(input, other):
    return expand(input, other.shape)


def broadcast_to(input, shape):
    return expand(input, tuple(shape))


def broadcast_tensors(*tensors):
    shape = np.broadcast_shapes(*[t.shape for t in tensors])
    return tuple(expand(t, shape) for t in tensors)


def repeat(input, *sizes):
    """Tile the tensor ``sizes[i]`` times along each dimension (PyTorch's ``repeat``)."""
    sizes = _shape_arg(sizes)
    if len(sizes) < input.ndim:
        raise ShapeError(f"repeat: got {len(sizes)} repeat counts for a tensor with "
                         f"{input.ndim} dimensions")
    x = reshape(input, (1,) * (len(sizes) - input.ndim) + input.shape)
    return Tile.apply(x, reps=sizes)


def tile(input, *dims):
    """Repeat the tensor ``dims[i]`` times along each dimension; unlike ``repeat``, fewer
    counts than dimensions are allowed and count for the last ones (PyTorch's ``tile``).

    >>> import shendu as sd
    >>> sd.tile(sd.tensor([[1, 2]]), (2,)).tolist()
    [[1, 2, 1, 2]]
    """
    sizes = _shape_arg(dims)
    return repeat(input, (1,) * (input.ndim - len(sizes)) + tuple(sizes))


def repeat_interleave(input, repeats, dim=None):
    from .selection import index_select  # selection builds on this module

    if dim is None:
        input, dim = flatten(input), 0
    d = norm_dim(dim, input.ndim, "repeat_interleave")
    if isinstance(repeats, Tensor):  # counts are index metadata: computed on the host
        repeats = _move(repeats._data, "cpu")
    idx = np.repeat(np.arange(input.shape[d]), repeats)
    return index_select(input, d, Tensor._wrap(idx))


def _convert_index(index, like):
    """Index with tensors and lists replaced by arrays on ``like``'s device; says whether
    it is 'advanced' (integer arrays, which may select an element twice)."""
    xp = xp_of(like)
    if not isinstance(index, tuple):
        index = (index,)
    out, advanced = [], False
    for i in index:
        if isinstance(i, Tensor):
            i = i._data
        if isinstance(i, (list, np.ndarray)) or (xp is not np and hasattr(i, "__array__")
                                                  and not isinstance(i, np.generic)):
            i = xp.asarray(i)
        if hasattr(i, "dtype") and getattr(i, "ndim", 0) >= 0 and not isinstance(i, np.generic):
            if i.dtype.kind == "b":
                pass  # masks never select an element twice
            elif i.dtype.kind in "iu":
                advanced = True
            else:
                raise IndexError(f"index: tensors used as indices must be integer or bool, "
                                 f"got {i.dtype}")
        out.append(i)
    return tuple(out) if len(out) != 1 else out[0], advanced


def getitem(input, index):
    idx, advanced = _convert_index(index, input._data)
    try:
        out = GetItem.apply(input, index=idx, advanced=advanced)
    except IndexError as exc:
        raise IndexError(f"index: {exc} (tensor of shape {input.shape})") from None
    basic = not advanced and not any(getattr(i, "dtype", None) is not None and
                                     not isinstance(i, np.generic)
                                     for i in (idx if isinstance(idx, tuple) else (idx,)))
    return _view_of(out, input) if basic else out


def narrow(input, dim, start, length):
    """``length`` elements along ``dim`` from ``start`` (negative counts from the end); a
    range past the end is an error, as in PyTorch, not a shorter slice.

    >>> import shendu as sd
    >>> sd.narrow(sd.arange(6), 0, -3, 2).tolist()
    [3, 4]
    """
    d = norm_dim(dim, input.ndim, "narrow")
    n = input.shape[d]
    s = int(start) + (n if int(start) < 0 else 0)
    if not 0 <= s <= n or length < 0 or s + length > n:
        raise IndexError(f"narrow: start {start} and length {length} do not fit dim {d} of "
                         f"size {n} (shape {input.shape})")
    return getitem(input, (slice(None),) * d + (slice(s, s + length),))


def select(input, dim, index):
    d = norm_dim(dim, input.ndim, "select")
    return getitem(input, (slice(None),) * d + (index,))


def masked_select(input, mask):
    m = mask._data if isinstance(mask, Tensor) else xp_of(input._data).asarray(mask)
    x = expand(input, np.broadcast_shapes(input.shape, m.shape))
    return getitem(x, xp_of(m).broadcast_to(m, x.shape))


def cat(tensors, dim=0, *, axis=None):
    """Join tensors along an existing dimension."""
    tensors = [t for t in tensors]
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    d = pick("cat", dim if dim != 0 or axis is None else None, axis, 0)
    ref = tensors[0]
    d = norm_dim(d, ref.ndim, "cat")
    for i, t in enumerate(tensors):
        if t.ndim != ref.ndim or any(a != b for j, (a, b) in enumerate(zip(t.shape, ref.shape))
                                     if j != d):
            raise ShapeError(f"cat: tensor {i} has shape {t.shape} but tensor 0 has shape "
                             f"{ref.shape}; all dimensions except {d} must match")
    tensors = _same_dtype("cat", tensors)
    return Cat.apply(*tensors, axis=d)


concatenate = concat = cat


def stack(tensors, dim=0, *, axis=None):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors")
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise ShapeError(f"stack: tensor {i} has shape {t.shape} but tensor 0 has shape "
                             f"{tensors[0].shape}; stacked tensors must have equal shapes")
    d = pick("stack", dim if dim != 0 or axis is None else None, axis, 0)
    nd = tensors[0].ndim + 1
    if not -nd <= d < nd:
        raise IndexError(f"stack: dim {d} out of range for {nd}-dimensional result")
    return Stack.apply(*_same_dtype("stack", tensors), axis=d % nd)


def hstack(tensors):
    return cat(tensors, 1 if tensors[0].ndim > 1 else 0)


def vstack(tensors):
    return cat([t if t.ndim > 1 else unsqueeze(t, 0) for t in tensors], 0)


def _same_dtype(op, tensors):
    """One dtype for all, promoted as PyTorch does: floats win over integers and bools
    without widening (float32 with int64 gives float32; NumPy would give float64)."""
    tensors = [as_tensor_like(t) for t in tensors]
    kinds = [t._data.dtype for t in tensors]
    floats = [d for d in kinds if d.kind == "f"]
    dt = np.result_type(*(floats or kinds))
    return [t if t.dtype == dt else t.type(dt) for t in tensors]


def split(input, split_size_or_sections, dim=0):
    """Split into pieces of ``split_size`` (or of the given list of sizes)."""
    d = norm_dim(dim, input.ndim, "split")
    n = input.shape[d]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        if step <= 0:
            raise ValueError(f"split: split_size must be positive, got {step}")
        sizes = [min(step, n - i) for i in range(0, n, step)] or [0]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise ShapeError(f"split: sizes {sizes} sum to {sum(sizes)} but dimension {d} has "
                             f"size {n} (shape {input.shape})")
    return tuple(_view_of(t, input) for t in Split.apply(input, axis=d, sizes=tuple(sizes)))


def chunk(input, chunks, dim=0):
    d = norm_dim(dim, input.ndim, "chunk")
    size = max(1, math.ceil(input.shape[d] / chunks))
    return split(input, size, d)


def tensor_split(input, indices_or_sections, dim=0):
    """Split into ``n`` nearly equal parts (the first ``size % n`` one longer), or at the
    given indices (PyTorch's ``tensor_split``; NumPy's ``array_split``).

    >>> import shendu as sd
    >>> [t.tolist() for t in sd.tensor_split(sd.arange(7), [1, 5])]
    [[0], [1, 2, 3, 4], [5, 6]]
    """
    d = norm_dim(dim, input.ndim, "tensor_split")
    n = input.shape[d]
    sections = indices_or_sections
    if isinstance(sections, Tensor):
        sections = sections.tolist()
    if isinstance(sections, (list, tuple)):
        pre = (slice(None),) * d
        bounds = [0] + [min(max(int(i) + (n if int(i) < 0 else 0), 0), n)
                        for i in sections] + [n]
        return tuple(getitem(input, pre + (slice(a, max(a, b)),))
                     for a, b in zip(bounds[:-1], bounds[1:]))
    sections = int(sections)
    if sections < 1:
        raise ValueError(f"tensor_split: the number of sections must be at least 1, "
                         f"got {sections}")
    q, r = divmod(n, sections)
    return split(input, [q + 1] * r + [q] * (sections - r), d)


def unbind(input, dim=0):
    d = norm_dim(dim, input.ndim, "unbind")
    pre = (slice(None),) * d
    return tuple(getitem(input, pre + (i,)) for i in range(input.shape[d]))


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge",
              "circular": "wrap"}


def pad(input, pad, mode="constant", value=0.0):
    """Pad the last ``len(pad) // 2`` dimensions; ``pad`` lists (before, after) pairs
    starting from the last dimension, as in PyTorch."""
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: expected an even number of pad values covering at most "
                         f"{input.ndim} dimensions, got {tuple(pad)}")
    if mode not in _PAD_MODES:
        raise ValueError(f"pad: mode must be one of {sorted(_PAD_MODES)}, got {mode!r}")
    width = [(0, 0)] * input.ndim
    for i in range(len(pad) // 2):
        width[input.ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    if any(lo < 0 or hi < 0 for lo, hi in width):
        return _negative_pad(input, width, mode, value)
    if mode != "constant":
        _check_wrap(input, width, mode)
    return Pad.apply(input, width=tuple(width), mode=_PAD_MODES[mode], value=value)


def _check_wrap(input, width, mode):
    """PyTorch's limits: a reflection must fit inside the dim (pad < size), a circular pad
    may wrap at most once (pad <= size), and an empty dim has no edge to replicate."""
    for d, (lo, hi) in enumerate(width):
        n = input.shape[d]
        if not lo and not hi:
            continue
        too_big = (max(lo, hi) >= n if mode == "reflect" else
                   max(lo, hi) > n if mode == "circular" else n == 0)
        if too_big:
            want = {"reflect": f"less than the dimension's size {n}",
                    "circular": f"at most the dimension's size {n} (it wraps around once)",
                    "replicate": "a non-empty dimension"}[mode]
            raise ValueError(f"pad: {mode} padding ({lo}, {hi}) of dimension {d} of input "
                             f"shape {input.shape} needs {want}")


def _negative_pad(input, width, mode, value):
    """Negative padding crops, as in PyTorch."""
    crop = tuple(slice(-lo if lo < 0 else None, hi if hi < 0 else None) for lo, hi in width)
    x = getitem(input, crop)
    flat = []
    for lo, hi in reversed(width):
        flat += [max(lo, 0), max(hi, 0)]
    return pad(x, flat, mode, value)


def flip(input, *args, dims=None, axis=None):
    """Reverse the order along ``dims``: ``flip(x, (0, 1))``, ``x.flip(0, 1)``,
    ``x.flip(dims=(0,))`` or NumPy's ``axis=``."""
    if args:
        dims = args[0] if len(args) == 1 and not isinstance(args[0], (int, np.integer)) \
            else args
    dims = pick("flip", dims, axis)
    if dims is None:
        raise TypeError("flip: expected the dims to reverse, e.g. flip(x, (0,))")
    axes = norm_axes(dims, input.ndim, "flip")
    return Flip.apply(input, axes=axes)


def fliplr(input):
    return flip(input, 1)


def flipud(input):
    return flip(input, 0)


def roll(input, shifts, dims=None):
    if dims is None:
        return reshape(Roll.apply(flatten(input), shifts=shifts, axes=0), input.shape)
    return Roll.apply(input, shifts=tuple(shifts) if isinstance(shifts, (list, tuple)) else shifts,
                      axes=tuple(dims) if isinstance(dims, (list, tuple)) else dims)


def tril(input, diagonal=0):
    return Tri.apply(input, k=diagonal, upper=False)


def triu(input, diagonal=0):
    return Tri.apply(input, k=diagonal, upper=True)


def type_(input, dtype=None):
    """Cast to ``dtype``; differentiable between floating types."""
    if dtype is None:
        return f"shendu.{input._data.dtype}"
    dt = as_dtype(dtype)
    if dt == input._data.dtype:
        return input
    if dt.kind != "f":
        return _cast_nograd(input, dt)
    return Cast.apply(input, dtype=dt)


@leaf("cast")
def _cast_nograd(input, dtype):
    return Tensor._wrap(input._data.astype(dtype))


def to_device(input, device):
    return ToDevice.apply(input, device=device)


def clone(input):
    return Copy.apply(input)


def contiguous(input):
    if input._data.flags.c_contiguous:
        return input
    return Copy.apply(input)
