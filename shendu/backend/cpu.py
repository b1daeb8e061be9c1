"""One dispatch function per fast CPU op: the compiled kernel or MKL when it can take the
arrays, else the NumPy reference.

The ops in ``shendu/ops`` call these and read like the plain algorithm; the choice of
path is made here and nowhere else, and reported to ``runtime.trace_paths()`` as
``(op, path)`` with ``path`` one of ``'numba'`` (a kernel of ``backend/jit``), ``'mkl'``
(MKL through ctypes), ``'mkl-compiled'`` (MKL called from compiled code) or ``'numpy'``.

Each function runs the op and returns its result: the kernel's, or the NumPy
reference's (also what runs on CuPy arrays). The reference is written beside it here, in a
sibling module when it is long (``maxpool.py``: tiled max pooling; ``rnn.py``: the LSTM's
and GRU's time loops; ``updates.py``: the optimizers' updates), or, for the convolution,
passed in by the op (``conv2d``, ``conv2d_backward``: the batch-chunked im2col + GEMM of
``ops/conv.py``, which its derivatives share).

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
from .scratch import give, take

__all__ = ["matmul", "addmm", "relu", "relu_grad", "fill_rows", "add_rows", "column_sums",
           "bias_relu", "exp_rows", "scale_rows", "conv2d", "conv2d_pool", "conv2d_backward",
           "small_products", "StepProducts", "gelu", "gelu_grad", "layer_norm",
           "layer_norm_backward", "attention", "attention_backward", "batch_norm_stats",
           "batch_norm_forward", "batch_norm_backward"]

# Smaller arrays skip the multi-threaded kernels: starting the threads costs more than it
# saves (row kernels of linear, softmax, cross-entropy).
KERNEL_MIN = 1 << 16
# The product m*n*k below which NumPy's call is cheaper than the ctypes one.
MKL_MIN_WORK = 1 << 15
# Bytes of (wide) patches per chunk of images in the fused convolution: small enough to
# stay in the L2 cache next to MKL's packed blocks (see benchmarks/ for the measurements).
FUSED_CONV_CHUNK_BYTES = 384 << 10
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


# ---------------------------------------------------------------------- convolution
# Three kernels: "wide" (``jit/conv.py``, stride 1), "taps" (``jit/conv_taps.py``, stride
# 1, one GEMM per tap over the padded image) and "compact" (``jit/conv_compact.py``, any
# stride). The wide and taps kernels compute Wp - OW wasted columns per output row, which
# their contiguous patches repay where the waste is small (or, for the wide kernel, the
# patch rows are short: C*kh*kw < FUSED_CONV_LONG_PATCH); taps where there are enough
# channels for its K = C products to run at full speed, so no patch matrix is written.
# Elsewhere (ResNet's 3x3 layers on 8x8 and 4x4 maps, waste 1.25x and 1.5x, and every
# strided convolution) the compact kernel, whose GEMM does no wasted work
# (benchmarks/results/resnet18-layers-*.json).
FUSED_CONV_LONG_PATCH = 1024
FUSED_CONV_MAX_WASTE = 1.2
TAPS_CONV_MIN_CHANNELS = 64
# Compact kernel: columns (output pixels) per chunk at least this many, so that MKL's GEMM
# runs at full speed on 4x4 maps, and patches of at most COMPACT_CONV_CHUNK_BYTES beyond that.
COMPACT_CONV_MIN_COLUMNS = 512
COMPACT_CONV_CHUNK_BYTES = 1 << 20
# Winograd's F(2x2, 3x3) (``jit/conv_winograd.py``) runs the forward of stride-1 3x3
# convolutions with at least this many input and output channels: 2.25 times fewer
# multiplications, whose saving its transforms eat below that (ResNet's 64-channel layer
# on 32x32 maps ran slower than the taps kernel), and of their input gradients; the weight
# gradients stay with the direct kernels.
WINOGRAD_MIN_CHANNELS = 64
# Tiles per chunk: enough for MKL's products (O, C) @ (C, tiles) to run at full speed
# (16 tiles took twice as long as 64 on ResNet's 4x4 maps), few enough that a thread's
# transformed tiles and products stay in its cache.
WINOGRAD_CHUNK_TILES = 64


def _conv_kernel(x, w, stride, groups, dilation, ow, pads) -> str | None:
    """Which kernel runs the forward of a convolution whose output rows are ``ow`` wide:
    ``'winograd'``, or the direct kernel that also runs its backward."""
    if (w.shape[2:] == (3, 3) and stride == (1, 1) and dilation == (1, 1) and groups == 1
            and min(w.shape[:2]) >= WINOGRAD_MIN_CHANNELS and runtime.winograd_on()
            and jit.on_all(x, w) and runtime.mkl_loaded()):
        return "winograd"
    return _direct_kernel(x, w, stride, groups, dilation, ow, pads)


def _direct_kernel(x, w, stride, groups, dilation, ow, pads) -> str | None:
    """Which direct kernel runs a convolution (forward and backward) whose output rows are
    ``ow`` wide: ``'wide'``, ``'taps'``, ``'compact'``, or None (the NumPy reference)."""
    if not (groups == 1 and jit.on_all(x, w) and runtime.mkl_loaded()):
        return None
    if stride != (1, 1):
        return "compact"
    _, c, kh, kw = w.shape
    waste = (ow + (kw - 1) * dilation[1]) / max(ow, 1)
    # (taps: the last tap's reads past a plane's end land in the next plane's padding)
    if (c >= TAPS_CONV_MIN_CHANNELS and waste <= FUSED_CONV_MAX_WASTE
            and (pads[0][0] > 0 or pads[1][0] >= (kw - 1) * dilation[1])):
        return "taps"
    return "wide" if _wide_takes(x, w, stride, groups, dilation, ow) else "compact"


def _wide_takes(x, w, stride, groups, dilation, ow) -> bool:
    """Whether the wide kernel (and its conv + pool) may run a convolution whose output
    rows are ``ow`` wide."""
    if not (stride == (1, 1) and groups == 1 and jit.on_all(x, w) and runtime.mkl_loaded()):
        return False
    _, c, kh, kw = w.shape
    waste = (ow + (kw - 1) * dilation[1]) / max(ow, 1)
    return c * kh * kw < FUSED_CONV_LONG_PATCH or waste <= FUSED_CONV_MAX_WASTE


def _storage(x):
    """``(src, channel_major)``: the C-contiguous array holding ``x``'s elements."""
    if x.flags.c_contiguous:
        return x, False
    if x.transpose(1, 0, 2, 3).flags.c_contiguous:
        return x.transpose(1, 0, 2, 3), True
    return np.ascontiguousarray(x), False


def _conv_plan(x, w, out_hw, dilation, backward=False, whole_images=False):
    """``(chunk, rows, threads, scratch size)`` of the wide kernel: as many images per
    chunk as keep its patches within FUSED_CONV_CHUNK_BYTES, or, when one image's exceed
    that (and not ``whole_images``), one image ``rows`` output rows at a time."""
    n, c = x.shape[:2]
    o, _, kh, kw = w.shape
    oh, ow = out_hw
    hp, wp = oh + (kh - 1) * dilation[0], ow + (kw - 1) * dilation[1]
    per_row = c * kh * kw * wp * x.itemsize
    chunk = max(1, min(n, FUSED_CONV_CHUNK_BYTES // (per_row * oh)))
    rows = oh if whole_images else max(1, min(oh, FUSED_CONV_CHUNK_BYTES // per_row))
    threads = max(1, min(jit.parts(), -(-n // chunk)))
    size = jit.scratch_size(c, o, c * kh * kw, chunk, rows, hp, wp, threads, backward)
    return chunk, rows, threads, size


def _compact_plan(x, w, out_hw, backward):
    """``(chunk, threads, scratch size)`` of the compact kernel: chunks of at least
    COMPACT_CONV_MIN_COLUMNS output pixels, up to COMPACT_CONV_CHUNK_BYTES of patches, and
    no bigger than a thread's share of the batch."""
    n = x.shape[0]
    o, c, kh, kw = w.shape
    p = out_hw[0] * out_hw[1]
    k = c * kh * kw
    chunk = max(-(-COMPACT_CONV_MIN_COLUMNS // p), COMPACT_CONV_CHUNK_BYTES // (k * p * x.itemsize))
    threads = max(1, min(jit.parts(), n))
    chunk = max(1, min(chunk, -(-n // threads)))
    threads = max(1, min(threads, -(-n // chunk)))
    return chunk, threads, jit.compact_scratch_size(k, o, chunk, p, threads, backward)


def _taps_plan(x, w, out_hw, dilation, backward):
    """``(threads, scratch size)`` of the taps kernel: whole images per thread."""
    o, c, kh, kw = w.shape
    oh, ow = out_hw
    hp, wp = oh + (kh - 1) * dilation[0], ow + (kw - 1) * dilation[1]
    threads = max(1, min(jit.parts(), x.shape[0]))
    return threads, jit.taps_scratch_size(c, o, hp, wp, oh, kw, dilation[1], threads, backward)


def _tap_major(w):
    """(O, C, kh, kw) weights as (kh*kw, O, C): one (O, C) matrix per tap."""
    o, c, kh, kw = w.shape
    return np.ascontiguousarray(w.transpose(2, 3, 0, 1)).reshape(kh * kw, o, c)


def conv2d(x, w, bias, stride, pads, dilation, groups, out_hw, relu, numpy_conv, *args):
    """``(out, kernel)``: the (O, N, OH, OW) C-contiguous output of the convolution (then a
    ReLU if ``relu``), by the wide kernel (``jit/conv.py``: stride 1, where its wide patches
    pay) or the compact one (``jit/conv_compact.py``: any stride), both for one group with
    MKL loaded, ``kernel`` naming it; else by the op's NumPy reference ``numpy_conv(x, w,
    bias, stride, pads, dilation, groups, out_hw, relu, *args)`` (the batch-chunked im2col
    + GEMM of ``ops/conv.py``, too long to live here), ``kernel`` None."""
    runtime.tick()
    kind = _conv_kernel(x, w, stride, groups, dilation, out_hw[1], pads)
    if kind is None:
        _note("conv2d", "numpy")
        return numpy_conv(x, w, bias, stride, pads, dilation, groups, out_hw, relu, *args), None
    _note("conv2d", "winograd" if kind == "winograd" else "numba")
    o, _, kh, kw = w.shape
    out = np.empty((o, x.shape[0]) + tuple(out_hw), x.dtype)
    b = bias if bias is not None else np.empty(0, x.dtype)
    if kind == "winograd":
        _winograd(x, w, False, b, relu, pads[0][0], pads[1][0], out_hw, out.reshape(o, -1))
        return out, kind
    src, cm = _storage(x)
    w2 = np.ascontiguousarray(w.reshape(o, -1))  # MKL reads it with row stride C*kh*kw
    if kind == "taps":
        threads, size = _taps_plan(x, w, out_hw, dilation, False)
        scratch = take(np, size, x.dtype)
        jit.conv2d_forward_taps(src, cm, _tap_major(w), b, relu, kh, kw, *dilation, pads[0][0],
                                pads[1][0], *out_hw, threads, scratch, out.reshape(o, -1))
    elif kind == "compact":
        chunk, threads, size = _compact_plan(x, w, out_hw, False)
        scratch = take(np, size, x.dtype)
        jit.conv2d_forward_compact(src, cm, w2, b, relu, kh, kw, *stride, *dilation,
                                   pads[0][0], pads[1][0], *out_hw, chunk, threads, scratch,
                                   out.reshape(o, -1))
    else:
        chunk, rows, threads, size = _conv_plan(x, w, out_hw, dilation)
        scratch = take(np, size, x.dtype)
        jit.conv2d_forward(src, cm, w2, b, relu, kh, kw, *dilation, pads[0][0],
                           pads[1][0], *out_hw, chunk, rows, threads, scratch,
                           out.reshape(o, -1))
    give(scratch)
    return out, kind


def _winograd(x, w, turned, bias, relu, pt, pl, out_hw, out):
    """``out`` (channels, N*OH*OW) = the stride-1 3x3 convolution of ``x`` (padded ``pt``
    above, ``pl`` left) by ``w``'s filters, or (``turned``) by them turned 180 degrees
    with their channels swapped, by Winograd's F(2x2, 3x3)."""
    src, cm = _storage(x)
    o, c = w.shape[:2]
    c_in, c_out = (o, c) if turned else (c, o)
    u_buffer = take(np, 16 * o * c, x.dtype)
    u = u_buffer[:16 * o * c].reshape(16, c_in, c_out)
    jit.winograd_filter(np.ascontiguousarray(w), turned, u)
    n = x.shape[0]
    per_image = ((out_hw[0] + 1) // 2) * ((out_hw[1] + 1) // 2)
    chunk = max(1, min(-(-WINOGRAD_CHUNK_TILES // per_image), -(-n // jit.parts())))
    threads = max(1, min(jit.parts(), -(-n // chunk)))
    scratch = take(np, jit.winograd_scratch_size(c_in, c_out, chunk, *out_hw, threads), x.dtype)
    jit.conv2d_forward_winograd(src, cm, u, bias, relu, pt, pl, *out_hw, chunk, threads,
                                scratch, out)
    give(scratch)
    give(u_buffer)


def conv2d_pool(x, w, bias, stride, pads, dilation, groups, out_hw, pool_hw, relu,
                numpy_conv, *args):
    """``(out, code, kernel)``: the convolution followed by 2x2 max pooling (then a ReLU if
    ``relu``), ``out`` and the pooling's ``code`` as (N, O, PH, PW) views. Where the wide
    convolution kernel runs, one kernel pools each chunk of the convolution's result as it
    leaves the thread's scratch (the full-size output is never written); else the two ops,
    :func:`conv2d` (with ``numpy_conv`` and ``args``) and tiled max pooling."""
    runtime.tick()
    if not _wide_takes(x, w, stride, groups, dilation, out_hw[1]):
        from .maxpool import max_pool_tiled  # maxpool imports this module

        full, kind = conv2d(x, w, bias, stride, pads, dilation, groups, out_hw, False,
                            numpy_conv, *args)
        out, code = max_pool_tiled(full.transpose(1, 0, 2, 3), (2, 2), pool_hw, relu)
        return out, code, kind
    _note("conv2d_pool", "numba")
    src, cm = _storage(x)
    o, _, kh, kw = w.shape
    chunk, _, threads, size = _conv_plan(x, w, out_hw, dilation, whole_images=True)
    shape = (o, x.shape[0]) + tuple(pool_hw)
    out, code = np.empty(shape, x.dtype), np.empty(shape, np.uint8)
    b = bias if bias is not None else np.empty(0, x.dtype)
    scratch = take(np, size, x.dtype)
    w2 = np.ascontiguousarray(w.reshape(o, -1))
    jit.conv2d_pool_forward(src, cm, w2, b, relu, kh, kw, *dilation, pads[0][0], pads[1][0],
                            *out_hw, chunk, threads, scratch, *pool_hw, out.reshape(o, -1),
                            code.reshape(o, -1))
    give(scratch)
    return out.transpose(1, 0, 2, 3), code.transpose(1, 0, 2, 3), "wide"


def conv2d_backward(x, w, gt, stride, pads, dilation, groups, needs, y, kind, numpy_grads,
                    *args):
    """``(gx, gw, gb)`` of the convolution from the channel-major output gradient ``gt``
    (O, N, OH, OW): gx as (C, N, H, W) (None unless ``needs[0]``), gw shaped like ``w``
    (None unless ``needs[1]``), gb the bias gradient (the kernels always form it; the
    reference only when a third input needs it); ``y`` the forward's output when it ended in
    a ReLU. By the kernel the forward ran (``kind``: ``'wide'``, ``'taps'`` or ``'compact'``;
    after ``'winograd'``, dX by Winograd and dW by the direct kernel) when it takes ``gt``,
    else by the op's NumPy reference ``numpy_grads(x, w, gt, stride, pads,
    dilation, groups, needs, y, *args)``."""
    runtime.tick()
    if kind == "winograd":  # dX by Winograd too where its padding allows, dW directly
        kind = _direct_kernel(gt, w, stride, groups, dilation, gt.shape[3], pads)
        if (needs[0] and max(pads[0] + pads[1]) <= 2  # (and the switches still let it)
                and _conv_kernel(x, w, stride, groups, dilation, x.shape[3], pads) == "winograd"):
            if y is not None:  # the fused ReLU's mask, applied once for both gradients
                gt, y = relu_grad(gt, y), None
            gx = _winograd_input_grad(x, w, gt, pads)
            if not needs[1]:  # frozen weights: no dW pass
                wants_b = len(needs) > 2 and needs[2]
                return gx, None, gt.reshape(gt.shape[0], -1).sum(axis=1) if wants_b else None
            _, gw, gb = conv2d_backward(x, w, gt, stride, pads, dilation, groups,
                                        (False,) + tuple(needs[1:]), None, kind, numpy_grads,
                                        *args)
            return gx, gw, gb
    takes = (_wide_takes(gt, w, stride, groups, dilation, gt.shape[3]) if kind == "wide" else
             kind and _direct_kernel(gt, w, stride, groups, dilation, gt.shape[3], pads) == kind)
    if not takes:
        _note("conv2d_backward", "numpy")
        return numpy_grads(x, w, gt, stride, pads, dilation, groups, needs, y, *args)
    _note("conv2d_backward", "numba")
    src, cm = _storage(x)
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    out_hw = gt.shape[2:]
    want_x = needs[0]
    gx = np.empty((c, n, h, wd) if want_x else (0, 0, 0, 0), x.dtype)
    mask = np.empty((0, 0), x.dtype) if y is None else y.reshape(o, -1)
    if kind == "taps":
        threads, size = _taps_plan(x, w, out_hw, dilation, True)
        parts = np.empty((threads, kh * kw, o, c), x.dtype)
        bias_parts = np.empty((threads, o), x.dtype)
        scratch = take(np, size, x.dtype)
        jit.conv2d_backward_taps(src, cm, _tap_major(w), gt.reshape(o, -1), mask, kh, kw,
                                 *dilation, pads[0][0], pads[1][0], *out_hw, scratch, parts,
                                 bias_parts, want_x, gx)
        give(scratch)
        gw = (parts[0] if threads == 1 else parts.sum(axis=0)).reshape(kh, kw, o, c)
        gw = np.ascontiguousarray(gw.transpose(2, 3, 0, 1))
        return (gx if want_x else None), (gw if needs[1] else None), bias_parts.sum(axis=0)
    if kind == "compact":
        chunk, threads, size = _compact_plan(x, w, out_hw, True)
    else:
        chunk, rows, threads, size = _conv_plan(x, w, out_hw, dilation, backward=True)
    parts = np.empty((threads, o, c * kh * kw), x.dtype)
    bias_parts = np.empty((threads, o), x.dtype)
    w2 = np.ascontiguousarray(w.reshape(o, -1))
    scratch = take(np, size, x.dtype)
    if kind == "compact":
        jit.conv2d_backward_compact(src, cm, w2, gt.reshape(o, -1), mask, kh, kw, *stride,
                                    *dilation, pads[0][0], pads[1][0], *out_hw, chunk,
                                    scratch, parts, bias_parts, want_x, gx)
    else:
        jit.conv2d_backward(src, cm, w2, gt.reshape(o, -1), mask, kh, kw, *dilation,
                            pads[0][0], pads[1][0], *out_hw, chunk, rows, scratch, parts,
                            bias_parts, want_x, gx)
    give(scratch)
    gw = (parts[0] if threads == 1 else parts.sum(axis=0)).reshape(w.shape)
    return (gx if want_x else None), (gw if needs[1] else None), bias_parts.sum(axis=0)


def _winograd_input_grad(x, w, gt, pads):
    """dX (C, N, H, W) of a stride-1 3x3 convolution from its channel-major output gradient
    ``gt``: the convolution of ``gt``, padded by 2 - p, with the filters turned and their
    channels swapped."""
    _note("conv2d_backward", "winograd")
    n, c, h, wd = x.shape
    gx = np.empty((c, n, h, wd), x.dtype)
    _winograd(gt.transpose(1, 0, 2, 3), w, True, np.empty(0, x.dtype), False,
              2 - pads[0][0], 2 - pads[1][0], (h, wd), gx.reshape(c, -1))
    return gx


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
