"""One dispatch function per fast CPU op: the compiled kernel or MKL when it can take the
arrays, else the NumPy reference.

The ops in ``shendu/ops`` call these and read like the plain algorithm; the choice of
path is made here and nowhere else, and reported to ``runtime.trace_paths()`` as
``(op, path)`` with ``path`` one of ``'numba'`` (a kernel of ``backend/jit``), ``'mkl'``
(MKL through ctypes), ``'mkl-compiled'`` (MKL called from compiled code) or ``'numpy'``.

Each function runs the op and returns its result: the kernel's, or the NumPy
reference's (also what runs on CuPy arrays). The reference is written beside it here, in a
sibling module when it is long (``maxpool.py``: tiled max pooling; ``rnn.py``: the LSTM's
and GRU's time loops; ``updates.py``: the optimizers' updates). The convolution, whose
choice among five kernels is the longest, dispatches in its own sibling,
``convolution.py``.

The kernels apply to NumPy float32/float64 arrays when numba is importable and the
kernels are on (``runtime.kernels_on``); those that call MKL also need MKL loaded.

>>> import numpy as np
>>> from shendu.backend import cpu, runtime
>>> with runtime.trace_paths() as log:
...     y = cpu.relu(np.array([-1.0, 2.0]))
>>> y, log[0][0]
(array([0., 2.]), 'relu')
"""
from __future__ import annotations

import contextlib
import math

import numpy as np

from . import blas, jit, pool, runtime

__all__ = ["matmul", "addmm", "relu", "relu_grad", "fill_rows", "add_rows", "column_sums",
           "bias_relu", "exp_rows", "scale_rows", "small_products", "StepProducts", "gelu",
           "gelu_grad", "layer_norm", "layer_norm_backward", "attention", "attention_backward",
           "batch_norm_stats", "batch_norm_forward", "batch_norm_backward"]

# Smaller arrays skip the multi-threaded kernels: starting the threads costs more than it
# saves (row kernels of linear, softmax, cross-entropy).
KERNEL_MIN = 1 << 16
# The product m*n*k below which NumPy's call is cheaper than the ctypes one.
MKL_MIN_WORK = 1 << 15
# Elements per ``np.maximum`` call in the NumPy ReLU (walked against a block of zeros).
RELU_BLOCK = 1 << 16
SPLIT_MIN = pool.SPLIT_MIN  # arrays below this many elements stay in the caller's thread
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _note(op: str, path: str) -> None:
    if runtime.trace is not None:
        runtime.record(op, path)


def _xp(a):
    from . import get_array_module

    return np if type(a) is np.ndarray else get_array_module(a)


# ---------------------------------------------------------------------- matmul
def matmul(a, b, out=None, accumulate: bool = False):
    """``a @ b`` for matrices (``out += a @ b`` with ``accumulate``), into ``out`` if given
    (it may be a view with unit-stride rows, such as a column block of a bigger matrix, and
    may overlap ``a`` or ``b``, as with ``np.matmul``).

    MKL takes float32/float64 NumPy matrices when it is loaded and the product is not tiny
    (called from compiled code when the kernels are on: a lower call overhead); everything
    else (other dtypes, CuPy arrays, stacks of matrices) goes to the array module's
    ``matmul``. For float32/float64 NumPy matrices a bad ``out`` (another shape or dtype,
    read-only) raises ``ValueError`` whichever path the product takes.

    >>> a, b = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)
    >>> matmul(a, b)
    array([[3., 3., 3., 3.],
           [3., 3., 3., 3.]], dtype=float32)
    >>> out = np.ones((2, 4), np.float32)
    >>> float(matmul(a, b, out, accumulate=True)[0, 0])   # out += a @ b
    4.0
    """
    if (type(a) is not np.ndarray or type(b) is not np.ndarray or a.ndim != 2 or b.ndim != 2
            or a.dtype not in _FLOATS or b.dtype != a.dtype):
        return _numpy_matmul(a, b, out, accumulate)
    runtime.tick()  # a unit of CPU work: the thread count may follow the load here
    m, k = a.shape
    n = b.shape[1]
    if b.shape[0] != k:
        return _numpy_matmul(a, b, out, accumulate)  # NumPy's error names the mismatch
    if out is not None:
        # Checked before the size test so that a bad ``out`` fails for small products too
        # (NumPy would silently cast it to another float dtype, or broadcast into it).
        if out.shape != (m, n) or out.dtype != a.dtype:
            raise ValueError(f"matmul: out has shape {out.shape} and dtype {out.dtype}, "
                             f"expected {(m, n)} and {a.dtype}")
        if not out.flags.writeable:
            raise ValueError("matmul: out is read-only")
    if m * n * k < MKL_MIN_WORK or not runtime.mkl_loaded():
        return _numpy_matmul(a, b, out, accumulate)
    if out is None:
        out = np.empty((m, n), a.dtype)
        accumulate = False
    item = out.itemsize
    if (not (out.strides[1] == item and out.strides[0] % item == 0
             and (m == 1 or out.strides[0] >= n * item))
            or np.may_share_memory(out, a) or np.may_share_memory(out, b)):
        # gemm writes C while it still reads A and B: an overlapping out gets a copy
        tmp = matmul(a, b)
        out[...] = out + tmp if accumulate else tmp
        return out
    beta = 1.0 if accumulate else 0.0
    if runtime.kernels_on() and jit.gemm(a, b, out, beta):
        _note("matmul", "mkl-compiled")
        return out
    _note("matmul", "mkl")
    blas.gemm(a, b, out, beta)
    return out


def addmm(a, b, bias=None):
    """``a @ b + bias`` for matrices and a row vector (or None). With MKL, the product is
    added onto rows of ``bias`` inside the GEMM, as PyTorch's ``addmm``; else the bias is
    added afterwards, the rows of a large result split between shendu's threads."""
    if bias is None:
        return matmul(a, b)
    if blas.takes(a, b):
        out = np.empty((a.shape[0], b.shape[1]), a.dtype)
        fill_rows(out, bias)
        return matmul(a, b, out, accumulate=True)
    out = matmul(a, b)
    add_rows(out, bias)  # e.g. a vocabulary-sized output: threaded
    return out


def _numpy_matmul(a, b, out, accumulate):
    _note("matmul", "numpy")
    if out is None:
        return a @ b
    if accumulate:
        prod = a @ b
        if prod.shape != out.shape:  # ``out += prod`` would broadcast a smaller product
            raise ValueError(f"matmul: out has shape {out.shape}, the product {prod.shape}")
        out += prod
        return out
    return _xp(a).matmul(a, b, out=out)


# ---------------------------------------------------------------------- add, relu
def add(a, b):
    """``a + b``. Two large float arrays of one shape, dtype and layout (C-contiguous, or
    both channel-major, as convolutions leave them) are added by a kernel on every
    thread; anything else (broadcasting, mixed layouts, CuPy) by NumPy's ``+``."""
    # (cheapest tests first: every add of small tensors passes through here)
    if (type(a) is np.ndarray and a.size >= KERNEL_MIN and type(b) is np.ndarray
            and a.shape == b.shape and a.strides == b.strides and jit.on_all(a, b)):
        fa, fb = _flat(a), _flat(b)
        if fa is not None and fb is not None:
            _note("add", "numba")
            out = np.empty_like(a)  # a's layout: its flat view lines up with fa's
            jit.add_forward(fa, fb, _flat(out))
            return out
    _note("add", "numpy")
    return a + b


def _flat(a):
    """A 1-D view of ``a`` in storage order, when it is C-contiguous or a channel-major
    (N, C, H, W) array (stored as (C, N, H, W)); else None."""
    if a.flags.c_contiguous:
        return a.reshape(-1)
    if (a.ndim == 4 and a.transpose(1, 0, 2, 3).flags.c_contiguous):
        return a.transpose(1, 0, 2, 3).reshape(-1)
    return None


_zeros: dict = {}  # dtype -> read-only block of RELU_BLOCK zeros


def relu(a):
    """``max(a, 0)`` in a fresh array of ``a``'s layout.

    NumPy reference: ``np.maximum(x, 0)`` broadcasts a scalar, which NumPy runs far slower
    than the maximum of two arrays, so a contiguous array is walked in blocks against a
    block of zeros (the same result, bit for bit)."""
    xp = _xp(a)
    # (CuPy's maximum is fast as it is: only NumPy arrays take the flat paths)
    src = _flat(a) if xp is np and a.dtype.kind == "f" else None
    if src is None:
        _note("relu", "numpy")
        return xp.maximum(a, 0)
    out = np.empty_like(a)  # same layout as a, so its flat view lines up with src's
    dst = _flat(out)
    if jit.on(src):
        _note("relu", "numba")
        jit.relu_forward(src, dst)
        return out
    _note("relu", "numpy")
    zeros = _zeros.get(src.dtype)
    if zeros is None:
        zeros = _zeros[src.dtype] = np.zeros(RELU_BLOCK, src.dtype)
        zeros.flags.writeable = False
    for s in range(0, src.size, RELU_BLOCK):
        e = min(src.size, s + RELU_BLOCK)
        np.maximum(src[s:e], zeros[:e - s], out=dst[s:e])
    return out


def relu_grad(g, y):
    """The gradient through a ReLU whose output is ``y``: ``g`` where ``y > 0``, else 0
    (PyTorch's rule: a NaN gradient at a unit that is off is dropped)."""
    if jit.on_all(g, y) and g.strides == y.strides:
        gf, yf = _flat(g), _flat(y)
        if gf is not None and yf is not None:
            _note("relu_grad", "numba")
            gx = np.empty_like(y)
            jit.relu_backward(gf, yf, _flat(gx))
            return gx
    _note("relu_grad", "numpy")
    xp = _xp(g)
    return xp.where(y > 0, g, xp.zeros((), g.dtype))


# ---------------------------------------------------------------------- rows (linear, losses)
def fill_rows(out, row) -> None:
    """``out[...] = row`` for a matrix ``out`` and a row vector."""
    if out.size >= KERNEL_MIN and jit.on_all(out, row):
        _note("fill_rows", "numba")
        jit.fill_rows(out, row)
        return
    _note("fill_rows", "numpy")
    out[...] = row


def add_rows(out, row) -> None:
    """``out += row`` (a row vector) in place, the rows of a large array split between
    shendu's threads."""
    _note("add_rows", "numpy")
    if _xp(out) is not np or out.size < SPLIT_MIN:
        out += row
        return

    def rows(a, c):
        out[a:c] += row

    pool.split_rows(rows, out.shape[0], out.size)


def column_sums(g2):
    """``g2.sum(axis=0)`` (a bias gradient); on every thread for a large matrix."""
    if g2.size < KERNEL_MIN or not g2.flags.c_contiguous or not jit.on(g2):
        _note("column_sums", "numpy")
        return g2.sum(axis=0)
    _note("column_sums", "numba")
    threads = min(jit.parts(), g2.shape[0])
    parts = np.empty((threads, g2.shape[1]), g2.dtype)
    jit.column_sums(g2, parts, threads)
    return parts[0] if threads == 1 else parts.sum(axis=0)


def bias_relu(out, bias) -> None:
    """``out = relu(out + bias)`` in place, for a matrix and a row vector (or None)."""
    if jit.on_all(out, out if bias is None else bias):
        _note("bias_relu", "numba")
        jit.bias_relu_rows(out, out[0, :0] if bias is None else bias)
        return
    _note("bias_relu", "numpy")
    if bias is not None:
        out += bias
    _xp(out).maximum(out, 0, out=out)


def exp_rows(x):
    """``(e, m, s)`` for (M, C) scores: ``e = exp(x - m)``, ``s`` the row sums of ``e``, so
    that logsumexp is ``m + log(s)`` and ``e / s`` the softmax.

    Large NumPy scores take the compiled kernel when MKL is there (``jit/loss.py``: the
    same choice of shift, made row by row, with MKL's vector exp on every thread).
    The NumPy reference takes the cheapest shift ``m`` that avoids overflow and underflow
    (exp's relative precision does not depend on it):

    * first none: ``e = exp(x)``, one pass. It is kept when every row sum is finite and at
      least ``C * tiny / eps`` (all that underflowed is then below the float precision of
      its row sum): the usual case for logits;
    * else the global maximum, one scalar;
    * else (a row far below the others, infinities, nan) the finite row maxima (0 for a
      row with none), which is always safe.
    """
    if (x.size >= KERNEL_MIN and x.flags.c_contiguous and jit.on(x)
            and runtime.mkl_loaded()):
        _note("exp_rows", "numba")
        e, m, s = np.empty_like(x), np.empty(x.shape[0], x.dtype), np.empty(x.shape[0], x.dtype)
        fi = np.finfo(x.dtype)
        jit.softmax_rows(x, e, m, s, fi.tiny / fi.eps * x.shape[1], jit.parts())
        return e, m, s
    _note("exp_rows", "numpy")
    xp = _xp(x)
    e, s = _exp_and_sums(xp, x)
    if _sums_ok(s, x.shape[1]):
        return e, 0.0, s
    with np.errstate(over="ignore"):  # an overflow shows in the sums, and is retried
        m = x.max() if x.size else 0.0
        if math.isfinite(m):
            xp.subtract(x, m, out=e)
            xp.exp(e, out=e)
            s = _row_sums(xp, e)
            if _sums_ok(s, x.shape[1]):
                return e, m, s
    m = x.max(axis=1)
    if not math.isfinite(m.sum()):  # a row of infinities (or nan): shift it by 0 instead
        m = xp.where(xp.isfinite(m), m, 0)
    xp.subtract(x, m[:, None], out=e)
    xp.exp(e, out=e)
    return e, m, _row_sums(xp, e)


def _exp_and_sums(xp, x):
    """``exp(x)`` and its row sums, the rows of a large array split between threads."""
    if xp is not np or x.size < SPLIT_MIN:
        with np.errstate(over="ignore"):  # an overflow shows in the sums, and is retried
            e = xp.exp(x)
            return e, _row_sums(xp, e)
    e, s = np.empty_like(x), np.empty(x.shape[0], x.dtype)

    def rows(a, b):
        with np.errstate(over="ignore"):
            np.exp(x[a:b], out=e[a:b])
            e[a:b].sum(axis=1, out=s[a:b])  # (not a BLAS product: no BLAS in worker threads)

    pool.split_rows(rows, x.shape[0], x.size)
    return e, s


def _sums_ok(s, n_classes):
    """Row sums finite (no overflow, no nan) and large enough that the at most
    ``n_classes`` terms below the smallest normal number weigh less than one ulp."""
    if not s.size:
        return True
    fi = np.finfo(s.dtype)
    return float(s.max()) < math.inf and float(s.min()) >= fi.tiny / fi.eps * n_classes


def _row_sums(xp, e):
    # numpy's axis-1 sum pays per row: a matrix-vector product is faster for short rows
    if e.shape[1] <= 64:
        return e @ xp.ones(e.shape[1], e.dtype)
    return e.sum(axis=1)


def scale_rows(e, c) -> None:
    """``e *= c[:, None]`` in place, the rows of a large array split between threads."""
    if e.size >= KERNEL_MIN and e.flags.c_contiguous and jit.on_all(e, c):
        _note("scale_rows", "numba")
        jit.scale_rows(e, c)
        return
    _note("scale_rows", "numpy")
    if _xp(e) is not np or e.size < SPLIT_MIN:
        e *= c[:, None]
        return

    def rows(a, b):
        e[a:b] *= c[a:b, None]

    pool.split_rows(rows, e.shape[0], e.size)


# ---------------------------------------------------------------------- GELU
def _gelu_takes(*arrays) -> bool:
    return (jit.on_all(*arrays) and runtime.mkl_loaded()
            and all(a.flags.c_contiguous for a in arrays))


def _threads_for(size: int) -> int:
    """Threads for an elementwise kernel: one for a small array (starting the others costs
    more than they save)."""
    return 1 if size < KERNEL_MIN else jit.parts()


def gelu(x, reference):
    """Exact GELU ``x * Phi(x)``: the compiled kernel (``jit/activation.py``, MKL's vector
    ``erf`` on every thread) for contiguous NumPy floats when MKL is loaded, else the op's
    NumPy reference ``reference(x)`` (its ``erf`` is SciPy's, where it is installed)."""
    if not _gelu_takes(x):
        _note("gelu", "numpy")
        return reference(x)
    _note("gelu", "numba")
    out = np.empty_like(x)
    jit.gelu_forward(x.reshape(-1), out.reshape(-1), _threads_for(x.size))
    return out


def gelu_grad(g, x, reference):
    """``g * GELU'(x)``, by the kernel as :func:`gelu`, else ``g * reference(x)``."""
    if not (_gelu_takes(g, x) and g.shape == x.shape):
        _note("gelu_grad", "numpy")
        return g * reference(x)
    _note("gelu_grad", "numba")
    out = np.empty_like(x)
    jit.gelu_backward(g.reshape(-1), x.reshape(-1), out.reshape(-1), _threads_for(x.size))
    return out


# ---------------------------------------------------------------------- layer norm
def _layer_norm_takes(x, w) -> bool:
    return jit.on_all(x, *(() if w is None else (w,))) and x.size > 0


def layer_norm(x, w, b, n_axes: int, eps: float):
    """``(out, xhat, invstd)`` of LayerNorm over the last ``n_axes`` dims of ``x``:
    ``xhat = (x - mean) * invstd``, ``invstd = 1 / sqrt(var + eps)`` (kept dims), ``out =
    xhat * w + b`` (``xhat`` itself when ``w`` is None).

    The kernel (``jit/layer_norm.py``: rows split between threads, each row's passes in cache)
    takes NumPy floats; else the NumPy reference, a pass per operation."""
    lead, n = x.shape[:x.ndim - n_axes], math.prod(x.shape[x.ndim - n_axes:])
    kept = lead + (1,) * n_axes
    if not _layer_norm_takes(x, w):
        _note("layer_norm", "numpy")
        xp = _xp(x)
        axes = tuple(range(x.ndim - n_axes, x.ndim))
        xc = x - x.mean(axis=axes, keepdims=True)
        invstd = 1 / xp.sqrt((xc * xc).mean(axis=axes, keepdims=True) + eps)
        xhat = xc * invstd
        return (xhat if w is None else xhat * w + b), xhat, invstd
    _note("layer_norm", "numba")
    x2 = np.ascontiguousarray(x).reshape(-1, n)
    xhat, invstd = np.empty_like(x2), np.empty(x2.shape[0], x.dtype)
    affine = w is not None
    out = np.empty_like(x2) if affine else xhat
    wf = w.reshape(-1) if affine else x2[0, :0]
    bf = b.reshape(-1) if affine else x2[0, :0]
    jit.layer_norm_forward(x2, wf, bf, affine, eps, out, xhat, invstd)
    return out.reshape(x.shape), xhat.reshape(x.shape), invstd.reshape(kept)


def layer_norm_backward(g, xhat, invstd, w, n_axes: int, needs):
    """``(gx, gw, gb)`` of :func:`layer_norm` from the output gradient ``g`` (only ``gx``'s
    place filled when there is no ``w``; None where ``needs`` says no gradient is wanted):
    ``gx = (gh - mean(gh) - xhat * mean(gh * xhat)) * invstd`` with ``gh = g * w``,
    ``gw = sum(g * xhat)``, ``gb = sum(g)`` over the leading dims."""
    needs = tuple(needs) + (False,) * (3 - len(needs))
    if not _layer_norm_takes(g, w) or g.shape != xhat.shape or not jit.on(xhat):
        _note("layer_norm_backward", "numpy")
        axes = tuple(range(g.ndim - n_axes, g.ndim))
        gh = g if w is None else g * w
        gx = None
        if needs[0]:
            gx = (gh - gh.mean(axis=axes, keepdims=True)
                  - xhat * (gh * xhat).mean(axis=axes, keepdims=True)) * invstd
        lead = tuple(range(g.ndim - n_axes))
        gw = (g * xhat).sum(axis=lead) if needs[1] else None
        gb = g.sum(axis=lead) if needs[2] else None
        return gx, gw, gb
    _note("layer_norm_backward", "numba")
    n = math.prod(g.shape[g.ndim - n_axes:])
    g2 = np.ascontiguousarray(g).reshape(-1, n)
    h2 = xhat.reshape(-1, n)
    affine = w is not None
    threads = max(1, min(_threads_for(g.size), g2.shape[0]))
    gx = np.empty_like(g2)
    gw, gb = np.empty((threads, n), g.dtype), np.empty((threads, n), g.dtype)
    jit.layer_norm_backward(g2, h2, invstd.reshape(-1), w.reshape(-1) if affine else h2[0, :0],
                            affine, gx, gw, gb, threads)
    shape = g.shape[g.ndim - n_axes:]
    gw = gw[0] if threads == 1 else gw.sum(axis=0)
    gb = gb[0] if threads == 1 else gb.sum(axis=0)
    return ((gx.reshape(g.shape) if needs[0] else None),
            (gw.reshape(shape) if needs[1] else None), (gb.reshape(shape) if needs[2] else None))


# ---------------------------------------------------------------------- attention
def _swap(a):
    return a.swapaxes(-1, -2)


def _attention_reference(q, k, v, mask, causal, scale):
    xp = _xp(q)
    s = (q @ _swap(k)) * q.dtype.type(scale)
    if mask is not None:
        s = s + mask
    if causal:
        s = xp.where(xp.tril(xp.ones(s.shape[-2:], bool)), s, q.dtype.type(-np.inf))
    p = xp.exp(s - s.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return p @ v, p


def _unit_rows(*arrays) -> bool:
    return all(a.strides[-1] == a.itemsize for a in arrays)


def _attention_takes(q, k, v, mask) -> bool:
    return (jit.on_all(q, k, v, *(() if mask is None else (mask,))) and runtime.mkl_loaded()
            and _unit_rows(q, k, v) and min(q.shape[2], k.shape[2], q.shape[3]) > 0)


def _heads_last(shape, dtype):
    """An uninitialised (B, H, L, D) array stored as (B, L, H, D): heads side by side, as
    ``MultiheadAttention`` joins them afterwards (a free reshape)."""
    b, h, n, d = shape
    return np.empty((b, n, h, d), dtype).transpose(0, 2, 1, 3)


def attention(q, k, v, mask, causal: bool, scale: float):
    """``(o, p)`` of scaled dot-product attention on (B, H, L, D) ``q``, (B, H, S, D) ``k``
    and (B, H, S, Dv) ``v``: ``p = softmax(scale * q k^T + mask)`` over S (``mask`` None or
    an array broadcastable to (B, H, L, S); ``causal`` hides the positions after the
    diagonal) and ``o = p v``.

    The kernel (``jit/attention.py``: per (batch, head) pair, single-threaded MKL products
    on blocks read in place, pairs split between the threads) takes NumPy floats whose
    rows have unit stride, when MKL is loaded; its ``o`` is stored heads-last. Else the
    NumPy reference: batched products and softmax over the whole score array."""
    if not _attention_takes(q, k, v, mask):
        _note("attention", "numpy")
        return _attention_reference(q, k, v, mask, causal, scale)
    _note("attention", "numba")
    b, h, lq, _ = q.shape
    lk = k.shape[2]
    p = np.empty((b, h, lq, lk), q.dtype)
    o = _heads_last((b, h, lq, v.shape[3]), q.dtype)
    m = np.broadcast_to(q.dtype.type(0) if mask is None else mask, p.shape)
    threads = min(_threads_for(p.size), b * h)
    jit.attention_forward(q, k, v, m, mask is not None, causal, scale, p, o, threads)
    return o, p


def attention_backward(go, q, k, v, p, causal: bool, scale: float, needs):
    """``(dq, dk, dv)`` of :func:`attention` from the output gradient ``go`` and the kept
    probabilities ``p`` (None where ``needs`` says no gradient is wanted; ``causal``: ``p``
    is 0 above the diagonal, which the kernel's products skip):
    ``dv = p^T go``, ``ds = p * (dp - rowsum(dp * p))`` with ``dp = go v^T``,
    ``dq = scale * ds k``, ``dk = scale * ds^T q``."""
    needs = tuple(needs[:3]) + (False,) * (3 - len(needs[:3]))
    if not (_attention_takes(q, k, v, None) and jit.on_all(q, go, p)):
        _note("attention_backward", "numpy")
        dv = _swap(p) @ go if needs[2] else None
        dq = dk = None
        if needs[0] or needs[1]:
            dp = go @ _swap(v)
            ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
            dq = (ds @ k) * q.dtype.type(scale) if needs[0] else None
            dk = (_swap(ds) @ q) * q.dtype.type(scale) if needs[1] else None
        return dq, dk, dv
    _note("attention_backward", "numba")
    if not _unit_rows(go):
        go = np.ascontiguousarray(go)
    grads = [_heads_last(a.shape, a.dtype) if need else a[:0, :0]
             for a, need in zip((q, k, v), needs)]
    threads = min(_threads_for(p.size), q.shape[0] * q.shape[1])
    jit.attention_backward(go, q, k, v, p, causal, scale, *grads, *needs, threads)
    return tuple(g if need else None for g, need in zip(grads, needs))


# ---------------------------------------------------------------------- batch norm
# Arrays with fewer values per channel than this stay on NumPy: one kernel call per channel
# block costs more than NumPy's passes over so little (BatchNorm1d on (N, C) inputs).
BN_KERNEL_MIN_PER_CHANNEL = 16


def _channel_blocks(a):
    """An (A, C, B) C-contiguous view of an (N, C, ...) array, channel c's values being A
    runs of B: (1, C, N*...) when it is stored channel-major (as convolutions hand over
    their outputs), (N, C, ...) when C-contiguous; else None."""
    if a.ndim < 3:
        return None
    c = a.shape[1]
    if np.moveaxis(a, 1, 0).flags.c_contiguous:
        return np.moveaxis(a, 1, 0).reshape(1, c, -1)
    if a.flags.c_contiguous:
        return a.reshape(a.shape[0], c, -1)
    return None


def _bn_blocks(x):
    """``x``'s channel blocks when the batch-norm kernels take it, else None."""
    if not jit.on(x) or x.size < BN_KERNEL_MIN_PER_CHANNEL * max(x.shape[1], 1):
        return None
    return _channel_blocks(x)


def batch_norm_stats(x, axes):
    """``(mean, var)`` of each channel of ``x`` over ``axes`` (every axis but 1), the
    variance biased, both of ``x``'s dtype: one kernel pass per channel block, or NumPy's
    ``mean`` and ``var``."""
    x3 = _bn_blocks(x)
    if x3 is None:
        _note("batch_norm_stats", "numpy")
        return x.mean(axis=axes), x.var(axis=axes)
    _note("batch_norm_stats", "numba")
    mean, var = np.empty(x.shape[1], x.dtype), np.empty(x.shape[1], x.dtype)
    jit.batch_norm_stats(x3, mean, var)
    return mean, var


def batch_norm_forward(x, mean, invstd, weight, bias):
    """``(x - mean) * invstd * weight + bias`` per channel (axis 1; ``weight`` and ``bias``
    None for no affine), in ``x``'s layout: one kernel pass, or NumPy's three."""
    x3 = _bn_blocks(x)
    if x3 is None:
        _note("batch_norm_forward", "numpy")
        shape = [1] * x.ndim
        shape[1] = x.shape[1]
        out = (x - mean.reshape(shape)) * invstd.reshape(shape)
        if weight is not None:
            out = out * weight.reshape(shape) + bias.reshape(shape)
        return out
    _note("batch_norm_forward", "numba")
    out = np.empty_like(x)  # same layout, so its blocks line up with x3's
    scale = invstd if weight is None else invstd * weight
    shift = np.zeros_like(mean) if bias is None else bias
    jit.channel_affine(x3, mean, scale, shift, _channel_blocks(out))
    return out


def batch_norm_backward(g, x, mean, invstd, weight, training, want_x):
    """``(gx, gsum, gxhat_sum)`` of batch norm from the output gradient ``g`` and the input
    ``x``: ``gsum`` and ``gxhat_sum`` (sum of ``g * xhat``, ``xhat = (x - mean) * invstd``)
    per channel are the bias and weight gradients, ``gx`` the input's (None unless
    ``want_x``; through the batch statistics when ``training``). One kernel pass per
    channel for the sums and one for ``gx``, or the NumPy reference."""
    x3 = _bn_blocks(x)
    scale = invstd if weight is None else invstd * weight
    if x3 is None or not jit.on_all(g, x):
        _note("batch_norm_backward", "numpy")
        shape = [1] * x.ndim
        shape[1] = x.shape[1]
        axes = (0,) + tuple(range(2, x.ndim))
        xhat = (x - mean.reshape(shape)) * invstd.reshape(shape)
        gsum = g.sum(axis=axes)
        gxhat_sum = (g * xhat).sum(axis=axes)
        gx = None
        if want_x and training:
            n = g.size // g.shape[1]
            gx = (g - (gsum / n).reshape(shape) - xhat * (gxhat_sum / n).reshape(shape)) \
                * scale.reshape(shape)
        elif want_x:
            gx = g * scale.reshape(shape)
        return gx, gsum, gxhat_sum
    _note("batch_norm_backward", "numba")
    g3 = _channel_blocks(g)
    if g3 is None or g3.shape != x3.shape:  # another layout (or a broadcast): x's
        gc = np.empty_like(x)
        gc[...] = g
        g3 = _channel_blocks(gc)
    gx = np.empty_like(x) if want_x else np.empty((0, 0, 0), x.dtype)
    c = x.shape[1]
    gsum, gxhat_sum = np.empty(c, x.dtype), np.empty(c, x.dtype)
    jit.batch_norm_backward(g3, x3, mean, invstd, scale, training,
                            _channel_blocks(gx) if want_x else gx, gsum, gxhat_sum)
    return (gx if want_x else None), gsum, gxhat_sum


# ---------------------------------------------------------------------- recurrent steps
def small_products(xp):
    """A ``with`` block choosing the threads for a recurrent layer's per-step GEMMs
    (batch-sized, ~17 MFLOP for N=32, H=256): all of them when MKL does the products, one
    (with threadpoolctl) under OpenBLAS.

    OpenBLAS: when the cores are shared, a BLAS thread left waiting for its partner stalled
    every step, so one thread is the robust choice. MKL (on GNU OpenMP, see
    ``backend.blas``): on an idle machine two threads ran the step's product and the
    ``lstm_lm_train`` step faster; beside a CPU-bound process the LSTM layer alone was
    slower on two threads but the whole step was not, since its large products and the
    kernels use both threads anyway, so one thread here no longer buys robustness
    (numbers: benchmarks/README.md, "Measurements behind the code")."""
    if xp is np and not runtime.mkl_loaded():
        return runtime.one_blas_thread()
    return contextlib.nullcontext()


class StepProducts:
    """The per-step products ``a @ b`` of a recurrent layer's forward time loop, which all
    reuse one right operand ``b`` (its recurrent weight): ``products(a, out, accumulate)`` does
    ``out = a @ b`` (``out += a @ b`` with ``accumulate``) for ``a`` of ``rows`` rows.

    With MKL, ``b`` is packed once into MKL's internal GEMM layout (``blas.pack``), so that
    no step re-packs it: for h @ W_hh^T at N=32, H=256 that took the step's product from
    67 to 59 us on two threads, and the LSTM and GRU layer steps ~1% faster, the pack
    (~0.2 ms) included. The backward loops' ``dg @ W_hh`` (32x1024 @ 1024x256) was slower
    packed, so they call ``matmul`` (benchmarks/README.md). The packed products are issued
    from compiled code when the kernels are on (a fraction of a ctypes call's overhead),
    else through ctypes. Without MKL, or for products ``matmul`` leaves to NumPy (tiny
    ones, other dtypes, CuPy arrays), each step calls ``matmul``. ``out`` must not overlap
    ``a`` (true of every loop in ``backend/rnn.py``)."""

    __slots__ = ("b", "packed", "compiled")

    def __init__(self, b, rows: int):
        self.b = b
        k, n = b.shape
        self.packed = blas.pack(b) if rows * k * n >= MKL_MIN_WORK else None
        self.compiled = self.packed is not None and runtime.kernels_on()

    def __call__(self, a, out, accumulate: bool = False):
        packed = self.packed
        if (packed is None or type(a) is not np.ndarray or a.dtype != packed.dtype
                or packed.threads != runtime.mkl_threads()):
            # MKL asks for the packing's thread count: a changed count goes unpacked
            return matmul(a, self.b, out, accumulate=accumulate)
        beta = 1.0 if accumulate else 0.0
        if self.compiled and jit.gemm_packed(a, packed, out, beta):
            _note("matmul", "mkl-packed-compiled")
            return out
        _note("matmul", "mkl-packed")
        blas.gemm_packed(a, packed, out, beta)
        return out
