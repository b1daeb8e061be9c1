"""Indexed writes, diagonals, counting and grids: ``index_add``/``index_copy``/``index_fill``,
``diag``/``diagonal``, ``bincount``, ``unique``, ``unique_consecutive`` and ``meshgrid``.

The ``index_*`` functions are out of place; ``Tensor.index_add_`` and friends write the
result back into the tensor (see ``_tensor_methods``).

>>> import shendu as sd
>>> sd.index_add(sd.zeros(3), 0, sd.tensor([0, 2, 0]), sd.tensor([1.0, 2.0, 3.0]))
tensor([4., 0., 2.])
>>> sd.diag(sd.tensor([1.0, 2.0]))
tensor([[1., 0.],
        [0., 2.]])
"""
from __future__ import annotations

import numpy as np

from ..autograd.function import Function
from ..errors import ArgumentError, DTypeError, ShapeError
from ..tensor import Tensor, _asarray
from ._util import as_tensor_like, norm_dim, xp_of
from .elementwise import where
from .movement import _convert_index, expand, reshape
from .selection import _index_array

__all__ = ["bincount", "block_diag", "cartesian_prod", "diag", "diag_embed", "diagonal", "diff",
           "index_add", "index_copy", "index_fill", "index_put", "meshgrid", "rot90",
           "tril_indices", "triu_indices", "unique", "unique_consecutive"]


# ---------------------------------------------------------------------- index_add / index_copy
class IndexWrite(Function):
    """``out = input`` with slices ``index[i]`` along ``axis`` replaced by (``add=False``)
    or increased by (``add=True``) slice ``i`` of ``source`` times ``alpha``."""

    @staticmethod
    def forward(ctx, a, src, index, axis, add, alpha):
        xp = xp_of(a)
        out = a.copy()
        dst = xp.moveaxis(out, axis, 0)
        s = xp.moveaxis(src, axis, 0)
        if add:
            xp.add.at(dst, index, s if alpha == 1 else s * alpha)
        else:
            dst[index] = s
        ctx.index, ctx.axis, ctx.add, ctx.alpha = index, axis, add, alpha
        ctx.out_shape = out.shape
        return out

    @staticmethod
    def backward(ctx, g):
        xp = xp_of(g)
        ga = g
        if not ctx.add:
            ga = g.copy()
            xp.moveaxis(ga, ctx.axis, 0)[ctx.index] = 0
        gs = xp.take(g, ctx.index, axis=ctx.axis)
        return ga, (gs * ctx.alpha if ctx.add and ctx.alpha != 1 else gs)

    @staticmethod
    def jvp(ctx, da, ds):
        ref = da if da is not None else ds
        xp = xp_of(ref)
        if da is None:
            da = xp.zeros(ctx.out_shape, ref.dtype)
        out = da.copy()
        if ds is not None:
            dst = xp.moveaxis(out, ctx.axis, 0)
            s = xp.moveaxis(ds, ctx.axis, 0)
            if ctx.add:
                xp.add.at(dst, ctx.index, s * ctx.alpha)
            else:
                dst[ctx.index] = s
        elif not ctx.add:
            xp.moveaxis(out, ctx.axis, 0)[ctx.index] = 0
        return out


def _index_write(op, input, dim, index, source, add, alpha=1):
    d = norm_dim(dim, input.ndim, op)
    idx = _index_array(index, op, input)
    if idx.ndim > 1:
        raise ShapeError(f"{op}: index must be 1-D, got shape {tuple(idx.shape)}")
    idx = idx.reshape(-1)
    if not isinstance(source, Tensor):
        source = Tensor._wrap(_asarray(source))
    src_shape = tuple(source.shape) if source.ndim else (1,)
    want = tuple(input.shape[:d]) + (idx.size,) + tuple(input.shape[d + 1:]) \
        if input.ndim else (idx.size,)
    if src_shape != want:
        raise ShapeError(f"{op}: source of shape {tuple(source.shape)} does not match: "
                         f"expected {want} (input shape {tuple(input.shape)} with dimension "
                         f"{d} of size len(index) = {idx.size})")
    n = input.shape[d] if input.ndim else 1
    if idx.size and (int(idx.min()) < -n or int(idx.max()) >= n):
        raise IndexError(f"{op}: index values must be in [{-n}, {n}) for dimension {d} of "
                         f"size {n}, got [{int(idx.min())}, {int(idx.max())}]")
    if source.dtype != input.dtype:
        source = source.type(input.dtype)
    if input.ndim == 0:
        return reshape(_index_write(op, reshape(input, 1), 0, idx, reshape(source, -1), add,
                                    alpha), ())
    return IndexWrite.apply(input, source, index=idx, axis=d, add=add, alpha=alpha)


def index_add(input, dim, index, source, *, alpha=1):
    """Add ``alpha * source[i]`` to slice ``index[i]`` of ``input`` along ``dim``; repeated
    indices accumulate.

    >>> import shendu as sd
    >>> sd.index_add(sd.ones(2, 2), 1, sd.tensor([1]), sd.tensor([[5.0], [6.0]]))
    tensor([[1., 6.],
            [1., 7.]])
    """
    return _index_write("index_add", input, dim, index, source, True, alpha)


def index_copy(input, dim, index, source):
    """Copy slice ``i`` of ``source`` into slice ``index[i]`` of ``input`` along ``dim``."""
    return _index_write("index_copy", input, dim, index, source, False)


def index_fill(input, dim, index, value):
    """Fill the slices ``index`` of ``input`` along ``dim`` with ``value`` (a number or a
    0-d tensor, which receives the gradient of the filled elements)."""
    d = norm_dim(dim, input.ndim, "index_fill")
    idx = _index_array(index, "index_fill", input).reshape(-1)
    xp = xp_of(input._data)
    n = input.shape[d] if input.ndim else 1
    if idx.size and (int(idx.min()) < -n or int(idx.max()) >= n):
        raise IndexError(f"index_fill: index values must be in [{-n}, {n}) for dimension {d} "
                         f"of size {n}, got [{int(idx.min())}, {int(idx.max())}]")
    if isinstance(value, Tensor) and value.ndim != 0:
        raise ShapeError(f"index_fill: value must be a number or a 0-d tensor, got shape "
                         f"{tuple(value.shape)}")
    mask = xp.zeros(n, bool)
    mask[idx] = True
    shape = [1] * input.ndim
    if input.ndim:
        shape[d] = n
    if isinstance(value, Tensor):
        value = value.type(input.dtype)
    return where(Tensor._wrap(mask.reshape(shape)), value, input)


# ---------------------------------------------------------------------- diagonals
def _diag_index(xp, n_rows, n_cols, offset):
    """Row and column indices of diagonal ``offset`` of an (n_rows, n_cols) matrix."""
    length = max(0, min(n_rows + min(offset, 0), n_cols - max(offset, 0)))
    i = xp.arange(length)
    return i - min(offset, 0), i + max(offset, 0)


class Diagonal(Function):
    """The diagonal ``offset`` of the (dim1, dim2) planes, as a new last dimension."""

    @staticmethod
    def forward(ctx, a, offset, dim1, dim2):
        ctx.in_shape, ctx.offset, ctx.dims = a.shape, offset, (dim1, dim2)
        xp = xp_of(a)
        return xp.ascontiguousarray(xp.diagonal(a, offset, dim1, dim2))

    @staticmethod
    def backward(ctx, g):
        xp = xp_of(g)
        gx = xp.zeros(ctx.in_shape, g.dtype)
        planes = xp.moveaxis(gx, ctx.dims, (-2, -1))
        rows, cols = _diag_index(xp, planes.shape[-2], planes.shape[-1], ctx.offset)
        planes[..., rows, cols] = g
        return gx

    @staticmethod
    def jvp(ctx, da):
        return xp_of(da).ascontiguousarray(xp_of(da).diagonal(da, ctx.offset, *ctx.dims))


def diagonal(input, offset=0, dim1=0, dim2=1):
    """The diagonal ``offset`` (above the main one when positive) of the planes spanned by
    ``dim1`` and ``dim2``, as a new last dimension. Unlike PyTorch's, the result is a copy:
    writing into it does not change ``input``.

    >>> import shendu as sd
    >>> sd.diagonal(sd.arange(9.0).reshape(3, 3), 1)
    tensor([1., 5.])
    """
    if input.ndim < 2:
        raise ShapeError(f"diagonal: expected a tensor with at least 2 dimensions, got shape "
                         f"{tuple(input.shape)}")
    d1 = norm_dim(dim1, input.ndim, "diagonal")
    d2 = norm_dim(dim2, input.ndim, "diagonal")
    if d1 == d2:
        raise ArgumentError(f"diagonal: dim1 and dim2 must differ, both are {d1}")
    return Diagonal.apply(input, offset=int(offset), dim1=d1, dim2=d2)


class DiagEmbed1d(Function):
    """A vector placed on diagonal ``offset`` of a square matrix of zeros."""

    @staticmethod
    def forward(ctx, v, offset):
        xp = xp_of(v)
        n = v.shape[0] + abs(offset)
        out = xp.zeros((n, n), v.dtype)
        ctx.idx, ctx.n = _diag_index(xp, n, n, offset), n
        out[ctx.idx] = v
        return out

    @staticmethod
    def backward(ctx, g):
        return g[ctx.idx]

    @staticmethod
    def jvp(ctx, dv):
        out = xp_of(dv).zeros((ctx.n, ctx.n), dv.dtype)
        out[ctx.idx] = dv
        return out


def diag(input, diagonal=0):
    """A 1-D input becomes a square matrix with it on diagonal ``diagonal``; from a 2-D
    input, diagonal ``diagonal`` is taken out as a 1-D tensor.

    >>> import shendu as sd
    >>> sd.diag(sd.tensor([[1.0, 2.0], [3.0, 4.0]]))
    tensor([1., 4.])
    """
    if input.ndim == 1:
        return DiagEmbed1d.apply(input, offset=int(diagonal))
    if input.ndim == 2:
        return Diagonal.apply(input, offset=int(diagonal), dim1=0, dim2=1)
    raise ShapeError(f"diag: expected a 1-D or 2-D tensor, got shape {tuple(input.shape)}")


# ---------------------------------------------------------------------- counting
def bincount(input, weights=None, minlength=0):
    """How often each value 0, 1, ... occurs in a 1-D non-negative integer tensor (the sum
    of ``weights`` at those positions when given); at least ``minlength`` bins.

    >>> import shendu as sd
    >>> sd.bincount(sd.tensor([0, 2, 2, 5]))
    tensor([1, 0, 2, 0, 0, 1])
    """
    a = input._data
    if a.ndim != 1 or a.dtype.kind not in "iub":
        cls = ShapeError if a.dtype.kind in "iub" else DTypeError
        raise cls(f"bincount: expected a 1-D integer tensor, got shape "
                  f"{tuple(input.shape)} and dtype {input.dtype}")
    if a.size and int(a.min()) < 0:
        raise ArgumentError(f"bincount: values must be non-negative, got a minimum of "
                            f"{int(a.min())}")
    if minlength < 0:
        raise ArgumentError(f"bincount: minlength must be non-negative, got {minlength}")
    xp = xp_of(a)
    if weights is None:
        return Tensor._wrap(xp.bincount(a, minlength=minlength).astype(np.int64))
    w = weights._data if isinstance(weights, Tensor) else xp.asarray(weights)
    if w.shape != a.shape:
        raise ShapeError(f"bincount: weights of shape {tuple(w.shape)} must match the input "
                         f"of shape {tuple(a.shape)}")
    dtype = w.dtype if w.dtype.kind == "f" else np.float64  # as PyTorch
    return Tensor._wrap(xp.bincount(a, weights=w, minlength=minlength).astype(dtype))


def unique(input, sorted=True, return_inverse=False, return_counts=False, dim=None):
    """The distinct elements of ``input`` (or distinct slices along ``dim``), in ascending
    order; optionally the inverse indices (where each element went) and the counts.

    The result is sorted also for ``sorted=False``, as PyTorch does on the CPU. Not
    differentiable.

    >>> import shendu as sd
    >>> sd.unique(sd.tensor([3, 1, 3, 2]), return_counts=True)
    (tensor([1, 2, 3]), tensor([1, 1, 2]))
    """
    a = input._data
    xp = xp_of(a)
    if dim is None:
        res = xp.unique(a.reshape(-1), return_inverse=True, return_counts=True)
        values, inverse, counts = res
        inverse = inverse.reshape(a.shape)
    else:
        d = norm_dim(dim, a.ndim, "unique")
        moved = xp.moveaxis(a, d, 0)
        rows = moved.reshape(moved.shape[0], -1)
        values, inverse, counts = xp.unique(rows, axis=0, return_inverse=True,
                                            return_counts=True)
        values = xp.moveaxis(values.reshape((-1,) + moved.shape[1:]), 0, d)
        inverse = inverse.reshape(-1)
    out = [Tensor._wrap(xp.ascontiguousarray(values))]
    if return_inverse:
        out.append(Tensor._wrap(inverse.astype(np.int64)))
    if return_counts:
        out.append(Tensor._wrap(counts.astype(np.int64)))
    return out[0] if len(out) == 1 else tuple(out)


def unique_consecutive(input, return_inverse=False, return_counts=False, dim=None):
    """Collapse runs of equal consecutive elements (or slices along ``dim``) into one.

    >>> import shendu as sd
    >>> sd.unique_consecutive(sd.tensor([1, 1, 2, 2, 1]))
    tensor([1, 2, 1])
    """
    a = input._data
    xp = xp_of(a)
    if dim is None:
        rows, d = a.reshape(-1, 1), 0
        shape_back = None
    else:
        d = norm_dim(dim, a.ndim, "unique_consecutive")
        moved = xp.moveaxis(a, d, 0)
        rows = moved.reshape(moved.shape[0], -1)
        shape_back = moved.shape[1:]
    n = rows.shape[0]
    starts = xp.ones(n, bool)
    if n > 1:
        starts[1:] = (rows[1:] != rows[:-1]).any(axis=1)
    first = xp.nonzero(starts)[0]
    values = rows[first]
    values = values.reshape(-1) if shape_back is None else xp.moveaxis(
        values.reshape((-1,) + shape_back), 0, d)
    out = [Tensor._wrap(xp.ascontiguousarray(values))]
    if return_inverse:
        inv = xp.cumsum(starts) - 1
        out.append(Tensor._wrap((inv.reshape(a.shape) if dim is None else inv).astype(np.int64)))
    if return_counts:
        out.append(Tensor._wrap(xp.diff(xp.append(first, n)).astype(np.int64)))
    return out[0] if len(out) == 1 else tuple(out)


# ---------------------------------------------------------------------- grids
def meshgrid(*tensors, indexing="ij"):
    """Coordinate grids from 1-D tensors: with ``indexing='ij'`` output ``k`` varies along
    dimension ``k``; with ``'xy'`` the first two dimensions are swapped (as NumPy's default).
    PyTorch's default is 'ij'. Differentiable (each grid is an expanded view of its input).

    >>> import shendu as sd
    >>> xs, ys = sd.meshgrid(sd.tensor([1, 2]), sd.tensor([5, 6, 7]), indexing="ij")
    >>> xs.shape, ys.shape
    ((2, 3), (2, 3))
    """
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing not in ("ij", "xy"):
        raise ArgumentError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
    for i, t in enumerate(tensors):
        if t.ndim > 1:
            raise ShapeError(f"meshgrid: expected 0-D or 1-D tensors, tensor {i} has shape "
                             f"{tuple(t.shape)}")
    tensors = [reshape(t, -1) for t in tensors]
    sizes = [t.shape[0] for t in tensors]
    order = list(range(len(tensors)))
    if indexing == "xy" and len(tensors) >= 2:
        order[0], order[1] = 1, 0  # output dimension k holds input order[k]
    out_shape = tuple(sizes[k] for k in order)
    grids = []
    for i, t in enumerate(tensors):
        shape = [1] * len(tensors)
        shape[order.index(i)] = sizes[i]
        grids.append(expand(reshape(t, tuple(shape)), out_shape))
    return tuple(grids)


# ---------------------------------------------------------------------- more shapes
def diag_embed(input, offset=0, dim1=-2, dim2=-1):
    """Each vector along the last dimension placed on diagonal ``offset`` of a square
    matrix spanning (``dim1``, ``dim2``) of the output. Differentiable.

    >>> import shendu as sd
    >>> sd.diag_embed(sd.tensor([[1.0, 2.0]])).shape
    (1, 2, 2)
    """
    from .einsum import einsum
    from .movement import movedim

    n_in = input.shape[-1]
    n = n_in + abs(offset)
    xp = xp_of(input._data)
    rows, cols = _diag_index(xp, n, n, offset)
    basis = xp.zeros((n_in, n, n), input._data.dtype)
    basis[xp.arange(n_in), rows, cols] = 1
    out = einsum("...l,lij->...ij", input, Tensor._wrap(basis))
    nd = out.ndim
    d1, d2 = norm_dim(dim1, nd, "diag_embed"), norm_dim(dim2, nd, "diag_embed")
    if d1 == d2:
        raise ArgumentError(f"diag_embed: dim1 and dim2 must differ, both are {d1}")
    return movedim(out, (nd - 2, nd - 1), (d1, d2))


def block_diag(*tensors):
    """A block-diagonal matrix from 0-D, 1-D (one row) or 2-D blocks. Differentiable."""
    from .movement import cat, pad

    blocks = [t.reshape(1, 1) if t.ndim == 0 else t.reshape(1, -1) if t.ndim == 1 else t
              for t in tensors]
    for i, b in enumerate(blocks):
        if b.ndim != 2:
            raise ShapeError(f"block_diag: expected tensors with at most 2 dimensions, "
                             f"tensor {i} has shape {tuple(tensors[i].shape)}")
    total = sum(b.shape[1] for b in blocks)
    rows, left = [], 0
    for b in blocks:
        rows.append(pad(b, (left, total - left - b.shape[1])))
        left += b.shape[1]
    return cat(rows, 0) if rows else Tensor._wrap(np.zeros((0, 0), np.float32))


def cartesian_prod(*tensors):
    """All combinations of the elements of 1-D tensors, one per row (a single tensor is
    returned as it is)."""
    from .movement import stack

    if len(tensors) == 1:
        return tensors[0]
    grids = meshgrid(*tensors, indexing="ij")
    return stack([g.reshape(-1) for g in grids], 1)


def _tri_indices(op, fn, row, col, offset):
    rows, cols = fn(row, offset, col)
    return Tensor._wrap(np.stack([rows, cols]).astype(np.int64).reshape(2, -1))


def tril_indices(row, col, offset=0, *, dtype=None, device=None):
    """The (2, N) indices of the lower triangle (diagonal ``offset`` and below) of a
    ``row`` x ``col`` matrix, row by row."""
    return _tri_indices("tril_indices", np.tril_indices, row, col, offset)


def triu_indices(row, col, offset=0, *, dtype=None, device=None):
    """The (2, N) indices of the upper triangle (diagonal ``offset`` and above)."""
    return _tri_indices("triu_indices", np.triu_indices, row, col, offset)


def diff(input, n=1, dim=-1, prepend=None, append=None):
    """The ``n``-th forward difference along ``dim`` (``prepend``/``append`` are joined on
    first). Differentiable; for bool tensors, ``!=`` of neighbours.

    >>> import shendu as sd
    >>> sd.diff(sd.tensor([1.0, 4.0, 9.0, 16.0]))
    tensor([3., 5., 7.])
    """
    from .movement import cat, narrow

    d = norm_dim(dim, input.ndim, "diff")
    parts = [p if isinstance(p, Tensor) else Tensor._wrap(_asarray(p))
             for p in (prepend, input, append) if p is not None]
    x = cat(parts, d) if len(parts) > 1 else input
    for _ in range(n):
        m = x.shape[d]
        if m == 0:
            break
        hi, lo = narrow(x, d, 1, m - 1), narrow(x, d, 0, m - 1)
        x = hi != lo if x._data.dtype == np.bool_ else hi - lo
    return x


def rot90(input, k=1, dims=(0, 1)):
    """Rotate by 90 degrees ``k`` times in the plane of ``dims``, from the first dimension
    towards the second (as ``np.rot90``). Differentiable."""
    from .movement import flip, transpose

    if len(dims) != 2:
        raise ArgumentError(f"rot90: dims must name two dimensions, got {dims}")
    d0, d1 = (norm_dim(d, input.ndim, "rot90") for d in dims)
    if d0 == d1:
        raise ArgumentError(f"rot90: the two dims must differ, got {dims}")
    k %= 4
    if k == 1:
        return transpose(flip(input, d1), d0, d1)
    if k == 2:
        return flip(input, (d0, d1))
    if k == 3:
        return flip(transpose(input, d0, d1), d1)
    return input


# ---------------------------------------------------------------------- index_put / setitem
class IndexPut(Function):
    """Out-of-place ``a[index] = v`` (what ``__setitem__`` records under autograd)."""

    linear_backward = True

    @staticmethod
    def forward(ctx, a, v, index):
        out = a.copy()
        out[index] = v
        ctx.index, ctx.v_shape, ctx.out_shape = index, v.shape, out.shape
        return out

    @staticmethod
    def backward(ctx, g):
        from ._util import unbroadcast

        ga = g.copy()
        ga[ctx.index] = 0
        gv = g[ctx.index]
        return ga, unbroadcast(gv, ctx.v_shape) if gv.ndim >= len(ctx.v_shape) else \
            gv.reshape(ctx.v_shape)

    @staticmethod
    def jvp(ctx, da, dv):
        ref = da if da is not None else dv
        xp = xp_of(ref)
        out = xp.zeros(ctx.out_shape, ref.dtype) if da is None else da.copy()
        out[ctx.index] = 0 if dv is None else dv
        return out


class IndexAccumulate(Function):
    """A tensor of zeros of ``shape`` with ``values`` summed into ``index`` (repeated
    positions accumulate): the ``accumulate=True`` half of ``index_put``."""

    @staticmethod
    def forward(ctx, v, index, shape):
        ctx.index, ctx.v_shape, ctx.shape = index, v.shape, shape
        return _accumulate(v, index, shape)

    @staticmethod
    def backward(ctx, g):
        from ._util import unbroadcast

        return unbroadcast(g[ctx.index], ctx.v_shape)

    @staticmethod
    def jvp(ctx, dv):
        return _accumulate(dv, ctx.index, ctx.shape)


def _accumulate(v, index, shape):
    xp = xp_of(v)
    out = xp.zeros(shape, v.dtype)
    xp.add.at(out, index, xp.broadcast_to(v, out[index].shape))
    return out


def set_region(input, index, values):
    """``input`` with ``input[index] = values``, out of place: ``Tensor.__setitem__`` under
    autograd, and ``index_put`` without ``accumulate``."""
    idx, _ = _convert_index(index, input._data)
    values = as_tensor_like(values, input)
    if values.dtype != input.dtype:
        values = values.type(input.dtype)
    try:
        return IndexPut.apply(input, values, index=idx)
    except IndexError as exc:
        raise IndexError(f"setitem: {exc} (tensor of shape {input.shape})") from None
    except ValueError:
        region = input._data[idx].shape
        raise ShapeError(f"setitem: value of shape {values.shape} cannot be broadcast to the "
                         f"indexed region of shape {region} (tensor of shape {input.shape})"
                         ) from None


def index_put(input, indices, values, accumulate=False):
    """``input`` with ``input[indices] = values`` (``+=`` with ``accumulate=True``, where
    repeated indices add up), out of place. ``indices`` is a tuple of index tensors."""
    if not accumulate:
        return set_region(input, indices, values)
    idx, _ = _convert_index(tuple(indices) if isinstance(indices, list) else indices,
                            input._data)
    v = values if isinstance(values, Tensor) else Tensor._wrap(_asarray(values))
    if v.dtype != input.dtype:
        v = v.type(input.dtype)
    return input + IndexAccumulate.apply(v, index=idx, shape=input.shape)
